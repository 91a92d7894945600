"""The event log: every change to what the registry knows about a number."""
