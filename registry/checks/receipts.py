"""The check receipt: what the registry answered, signed, kept by the customer.

A receipt id is an itsdangerous token (salt ``anning.receipt``) of a JSON
object with short keys: customers store millions of them, and the keys are
part of the wire format, so they are defined once here (``KEYS``) for the
writer (``sign``) and the reader (``verify``). Receipts signed before a claim
existed simply lack it (``registry_seq``, ``agent``, ``caller``: the ``from`` of the check,
``valid_until``).

``registry_seq`` is the registry's *data version*: the change-feed position
(registry/events, ``GET /changes``) every change up to which was part of the
answer. ``valid_until`` is how long the answer may be relied on
(``REGISTRY_RESULT_VALIDITY``): by default the time of the check itself,
"check again before each contact".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from registry.config import Settings
from registry.errors import NotFound
from registry.tokens import Signer


@dataclass(frozen=True, slots=True)
class Claims:
    """What one receipt says: a single check (``log_id``) or a batch (``batch_id``)."""

    sender: str
    channel: str
    purpose: str | None
    checked_at: str  # ISO 8601, UTC
    registry_seq: int | None = None  # the change-feed number the answer rested on
    log_id: int | None = None
    batch_id: int | None = None
    phone: str | None = None
    decision: str | None = None
    reason: str | None = None
    agent: str | None = None
    on_behalf_of: str | None = None
    caller: str | None = None  # the calling address the check named (``from``)
    valid_until: str | None = None  # ISO 8601, UTC; equal to checked_at: check before each contact


# Claim -> its key in the signed JSON. Never change a key: receipts are kept for years.
KEYS = {
    "log_id": "i",
    "batch_id": "b",
    "phone": "p",
    "sender": "s",
    "channel": "c",
    "purpose": "u",
    "decision": "d",
    "reason": "r",
    "checked_at": "t",
    "registry_seq": "q",
    "agent": "a",
    "on_behalf_of": "o",
    "caller": "f",
    "valid_until": "v",
}
if set(KEYS) != {f.name for f in fields(Claims)}:  # one table for every claim
    raise RuntimeError("receipts.KEYS must name every field of Claims")
_NAMES = {key: name for name, key in KEYS.items()}

_SIGNERS: dict[str, Signer] = {}


def _signer(settings: Settings) -> Signer:
    """Return this secret's receipt signer, built once per process."""
    signer = _SIGNERS.get(settings.secret_key)
    if signer is None:
        signer = _SIGNERS[settings.secret_key] = Signer(settings.secret_key, "receipt")
    return signer


def sign(settings: Settings, claims: Claims) -> str:
    """Return the receipt id for ``claims``."""
    payload = {
        key: value for name, key in KEYS.items() if (value := getattr(claims, name)) is not None
    }
    return _signer(settings).dumps(payload)


def verify(settings: Settings, check_id: str) -> Claims:
    """Return the claims of a genuine receipt; raise InvalidToken for a forged id."""
    payload: Any = _signer(settings).loads(check_id)
    if not isinstance(payload, dict) or not {"s", "c", "t"} <= payload.keys():
        raise NotFound("no such receipt")
    return Claims(**{_NAMES[key]: value for key, value in payload.items() if key in _NAMES})
