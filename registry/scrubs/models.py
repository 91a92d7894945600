"""A scrub job and its chunks: the uploaded list, and the answers as they are made.

The file is kept in the database, not on one machine's disk, so that any
``registry scrub-worker`` on any machine can take a job over. It is cut into
chunks of at most ``REGISTRY``'s batch size when it arrives; a worker answers
one chunk per transaction (its check-log rows, its result text and the job's
counters together), so a chunk is either wholly answered or not at all.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Text
from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow

# queued -> running -> done; running -> waiting (the cold-number budget is spent,
# resumed when its window reopens) -> running; any -> failed (with ``error``).
STATUSES = ("queued", "running", "waiting", "done", "failed")
ACTIVE = ("queued", "running", "waiting")


class ScrubJob(SQLModel, table=True):
    """One uploaded call list: who asked, what about, how far it got, and its hashes."""

    __tablename__ = "scrub_job"
    __table_args__ = (
        Index("ix_scrub_job_organization_id_status", "organization_id", "status"),
        Index("ix_scrub_job_status_lease_until", "status", "lease_until"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    # The organization that uploaded it (an agent, when it acts by delegation):
    # the only one that may see, poll or download it.
    organization_id: int = Field(foreign_key="organization.id")
    key_prefix: str = Field(max_length=16)  # the key it was uploaded with; revoked, the job fails
    sender_id: int = Field(foreign_key="sender.id")
    sender_code: str = Field(max_length=64)
    channel: str = Field(max_length=8)
    purpose: str = Field(max_length=16)
    category: str | None = Field(default=None, max_length=32)  # None: the sender's own
    at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # None: each chunk's now
    status: str = Field(default="queued", max_length=8)
    rows: int  # numbers in the file (a header line is not one)
    chunks: int
    chunks_done: int = 0
    processed: int = 0
    allowed: int = 0
    denied: int = 0
    invalid: int = 0
    input_bytes: int
    input_sha256: str = Field(max_length=64)
    result_sha256: str | None = Field(default=None, max_length=64)
    # The data version (feed position) of the first and of the last chunk's answers.
    first_seq: int | None = Field(default=None, sa_type=BigInteger)
    last_seq: int | None = Field(default=None, sa_type=BigInteger)
    first_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    valid_until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # set when done
    # The claim: which worker holds the job, until when (or, waiting, when to go on).
    worker: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claims: int = 0
    error: str | None = Field(default=None, max_length=500)


class ScrubChunk(SQLModel, table=True):
    """Up to one batch of a job's numbers, and once answered, its lines of the result file."""

    __tablename__ = "scrub_chunk"

    job_id: int = Field(foreign_key="scrub_job.id", primary_key=True, sa_type=BigId)
    n: int = Field(primary_key=True)
    lines: str = Field(sa_type=Text)  # JSON: [[line number, value], ...]
    result: str | None = Field(default=None, sa_type=Text)  # CSV text, formulas defused
    batch_id: int | None = Field(default=None, foreign_key="check_batch.id", sa_type=BigId)
