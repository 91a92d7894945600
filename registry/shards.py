"""How each table would be distributed over shards (docs/scaling.md, "A schema to distribute by phone").

One place that says it, read by the readiness test (tests/api/test_shard_ready.py)
and the suite's hash-partitioned mode (``REGISTRY_TEST_HASH_PARTITIONED``).
A distributed table's primary key and every unique key hold its distribution
column, and no foreign key links two distributed tables: a shard holds all of
a key and never points into another shard. Foreign keys to reference tables
(copied to every shard) stay.
"""

from __future__ import annotations

# Tables that grow with the population, by the column that names their shard.
# On PostgreSQL the surrogate ids' primary keys are (id, phone) (check_log:
# (id, checked_at, phone)): phone appended, so inserts stay at the index's end
# and a lookup by id alone still uses it (migration 0026). SQLite keeps the
# one-column ``INTEGER PRIMARY KEY`` (its rowid alias assigns the ids).
DISTRIBUTED: dict[str, str] = {
    "consent": "phone",
    "opt_out": "phone",
    "event": "phone",
    "consent_request": "phone",
    "disconnection": "phone",
    "check_log": "phone",
    "contact_tally": "phone",
    "subscriber": "phone",
    "cap_exemption": "phone",
    "refusal_notice": "phone",
    "watch": "phone",
    "login_code": "phone",
    "sms_message": "phone",
    # A number's (or calling address's) latest fact changes, for standby checks (0025).
    "fact_change": "phone",
    # A push's retry names the organization and its external_id, never the phone.
    "consent_key": "organization_id",
    # Found by the cookie's token alone.
    "holder_session": "token_hash",
}

# Small tables every check or write reads: copied to every shard.
REFERENCE: tuple[str, ...] = (
    "organization", "api_key", "sender", "sender_address", "delegation", "delegation_sender",
    "delegation_filing", "delegation_filing_address", "webhook", "number_range", "connection",
    "address_proof", "sanction", "public_review", "sanction_appeal", "staff_user",
)  # fmt: skip

# Left on the coordinator: one row per request or per case, read across holders
# (a desk's queue, an organization's jobs, the statistics), never on the check path.
COORDINATOR: tuple[str, ...] = (
    "check_batch", "scrub_job", "scrub_chunk", "complaint", "complaint_message",
    "complaint_route", "complaint_submission", "lookup_log", "stat_daily", "stat_watermark",
    "stat_gap", "staff_audit", "check_spool",
)  # fmt: skip
