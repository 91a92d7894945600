"""Database mechanisms below ``registry.db`` (the app's engine and per-request sessions).

naming.py: the constraint naming convention and shared column types;
statements.py: ``table_of``, ``Prepared``, ``Direct``, ``fingerprint``;
writerlock.py: SQLite's writer lock, ``one_transaction``; engines.py: creating
SQLite and PostgreSQL engines; standby.py: PostgreSQL standbys' health and choice.
"""

# The naming convention is set on the metadata before any table is defined.
from registry.database import naming  # noqa: F401
