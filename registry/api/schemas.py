"""Shared pieces of request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from registry.senders.models import CATEGORIES

Channel = Literal["voice", "sms"]
Purpose = Literal["marketing", "service"]
Category = Literal[CATEGORIES]  # type: ignore[valid-type]
Phone = Annotated[str, Field(min_length=1, max_length=64, examples=["+8613812345678"])]
SenderCode = Annotated[str, Field(min_length=1, max_length=64, examples=["acme-bank"])]
Reason = Literal[
    "sender_suspended", "not_marketing", "opted_out", "consent_pending", "reassigned",
    "category_blocked", "dnd", "no_consent", "quiet_hours", "consent", "not_registered",
]  # fmt: skip


class Strict(BaseModel):
    """A request model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ErrorItem(BaseModel):
    """An error in place of one item of a batch."""

    code: str
    message: str


Time = datetime
