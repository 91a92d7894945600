"""The SMS outbox: every message the registry sends, and whether it went."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from registry.database.naming import BigId
from registry.timeutil import UTCDateTime, utcnow


class SmsMessage(SQLModel, table=True):
    """A text to a holder; the gateway backend delivers it and records the outcome.

    Distributed by phone: on PostgreSQL the primary key is (id, phone) (migration 0026).
    """

    __tablename__ = "sms_message"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    phone: str = Field(max_length=16, index=True)
    body: str = Field(max_length=1000)
    kind: str = Field(max_length=32)  # login_code, consent_confirm, consent_otp, reply
    status: str = Field(default="queued", max_length=8)  # queued, sent, failed
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What the gateway's delivery report said last (registry/sms/services.py, DELIVERY):
    # accepted (by the SMSC), delivered, undelivered, rejected; None until a report came.
    # The gateway's own id for the message (an SMS cloud's BizId, SerialNo, smsMsgId or
    # MessageSid, as the ``http`` gateway answered it): the reports that carry only that.
    provider_ref: str | None = Field(default=None, max_length=64, index=True)
    delivery: str | None = Field(default=None, max_length=12)
    delivery_detail: str | None = Field(default=None, max_length=200)
    delivery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
