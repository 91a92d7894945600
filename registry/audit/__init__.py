"""The staff audit trail: who did what to which subject, appended in the action's transaction.

Its own domain, below every layer that acts: the console's views, the CLI, the
sanctions trigger and the complaint routing all record through
``registry.audit.services.record``; the console reads it with ``recent``.
Not the per-phone hash chains of the event log (``registry.events.audit``,
``registry audit verify``): this trail has no phone and no chain.
"""
