"""Shared pieces of request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from registry.senders.models import CATEGORIES
from registry.timeutil import within_calendar

Channel = Literal["voice", "sms"]
Purpose = Literal["marketing", "service"]
Category = Literal[CATEGORIES]  # type: ignore[valid-type]
Phone = Annotated[str, Field(min_length=1, max_length=64, examples=["+8613812345678"])]
# A calling number or SMS port a contact is made from (a sender's address), spaces and dashes allowed.
Address = Annotated[
    str,
    Field(
        min_length=3,
        max_length=32,
        pattern=r"^\+?[0-9][0-9 \-]{2,31}$",
        examples=["+8657188880000"],
    ),
]
SenderCode = Annotated[str, Field(min_length=1, max_length=64, examples=["acme-bank"])]
Reason = Literal[
    "sender_suspended", "unregistered_caller", "not_marketing", "opted_out", "consent_pending", "reassigned",
    "category_blocked", "dnd", "no_consent", "quiet_hours", "consent", "not_registered",
    "frequency_capped",  # SPEC §3 step 9, issue 19
]  # fmt: skip


class Strict(BaseModel):
    """A request model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="after")
    def _no_nul(self) -> Self:
        # PostgreSQL cannot store NUL in text; refuse it here, as a 422, for
        # every string of every request on both databases alike.
        # The fields' own names are the model's: only their values are walked.
        for value in self.__dict__.values():
            if _has_nul(value):
                raise ValueError("text must not contain NUL (U+0000) characters")
        return self


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class ErrorItem(BaseModel):
    """An error in place of one item of a batch."""

    code: str
    message: str


# A time in a request: an ISO 8601 string only (a bare number is not silently read
# as a Unix timestamp), in the years 1900 to 9000 (registry.timeutil.within_calendar).
Time = Annotated[
    datetime,
    Field(strict=True, examples=["2026-11-25T10:00:00+08:00"]),
    AfterValidator(within_calendar),
]
