"""Per-process copies of API keys, senders and delegations, verified where they are used.

Every check (and every opt-out) needs the caller's key and organization and the
sender it acts for, with the delegation when it acts for another organization.
Those rows change rarely; reading them costs a check two statements of its
three. So each worker process keeps a copy of what it read, and a request that
uses a copy proves it is still exact **in a statement it runs anyway**:

- the checks' facts query (``checks/facts.py``) also selects, from the same
  snapshot, the *fingerprint* of the key, sender and grant rows as the
  database holds them now (``VERIFY``); the request compares them with the
  fingerprints its copies were made with (``Copies.verify``);
- the opt-out's insert is conditional on the same fingerprints (``HOLD``), so
  it writes nothing unless the copies still match.

A fingerprint is one text value the database computes from every column a
copy depends on (``database.statements.fingerprint``; the lookups that make copies select it:
``orgs.services.KEY_FINGERPRINT``, ``senders.services.SENDER_FINGERPRINT`` and
``DELEGATION_FINGERPRINT``). A revoked key no longer matches its lookup at
all; a suspension, a renamed slug or a changed grant changes the text.

When they differ, ``StaleCopy`` is raised before anything is answered or
written; the service that used the copies calls ``afresh``, which forgets them
and reads key and sender again as any request would (a revoked key is 401
then, a withdrawn delegation 403) and answers with those. A change is thus
honoured from the next request on, in every process, with no message between
processes. A refusal is never served from a copy.

Callers use this module only: ``caller`` and ``sender`` to get (and keep)
copies, ``copies_of`` for what to verify, ``afresh`` after ``StaleCopy``
(``forget`` drops copies without reading again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam
from sqlalchemy.orm import Session
from sqlmodel import col

from registry.errors import Forbidden
from registry.orgs.services import KEY_FINGERPRINT, KEY_LOOKUP, Caller, authenticate
from registry.senders.models import Sender
from registry.senders.services import (
    DELEGATION_FINGERPRINT,
    GRANTS_LOOKUP,
    SENDER_FINGERPRINT,
    SENDER_LOOKUP,
    SenderRef,
    SenderRows,
    grant_sender,
    lookup_sender,
    resolve_sender,
)


class StaleCopy(Exception):
    """A per-process copy of a key, sender or delegation no longer matches the database."""


# Keep at most this many copies of each kind (a full store is emptied, not evicted).
CACHE_SIZE = 10_000
# sha256 of a bearer key -> its caller; (caller organization, sender code) -> the rows read.
_CALLERS: dict[str, Caller] = {}
_SENDERS: dict[tuple[int, str], SenderRows] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def caller(reads: Callable[[], Session], key: str) -> Caller:
    """Return the caller for a bearer key from this process's copy, else as ``authenticate``.

    ``reads`` opens the session to read with, only when there is no copy.
    """
    digest = _digest(key)
    found = _CALLERS.get(digest)
    if found is None:
        found = authenticate(reads(), key)  # a refusal raises: nothing is kept
        if len(_CALLERS) >= CACHE_SIZE:
            _CALLERS.clear()
        _CALLERS[digest] = found
    return found


def sender(
    reads: Callable[[], Session], who: Caller, code: str, scope: str, now: datetime
) -> SenderRef:
    """Return what ``resolve_sender`` would, from this process's copy of the rows when it has one.

    Suspensions and expiries are judged at ``now``, from the copied rows;
    ``reads`` opens the session to read with, only when there is no copy.
    """
    key = (who.org_id, code)
    rows = _SENDERS.get(key)
    if rows is not None:
        try:
            return grant_sender(rows, who, code, scope, now)
        except Forbidden:
            _SENDERS.pop(key, None)  # a refusal is never served from a copy: read again
    rows = lookup_sender(reads(), who, code)  # an unknown sender raises: nothing is kept
    ref = grant_sender(rows, who, code, scope, now)
    if len(_SENDERS) >= CACHE_SIZE:
        _SENDERS.clear()
    _SENDERS[key] = rows
    return ref


def forget(key: str, org_id: int, code: str) -> None:
    """Drop this process's copies of the key's caller and of sender ``code`` as it resolved it."""
    _SENDERS.pop((org_id, code), None)
    _CALLERS.pop(_digest(key), None)


def afresh(
    session: Session, key: str, who: Caller, code: str, scope: str, now: datetime
) -> tuple[Caller, SenderRef]:
    """Forget this process's copies of the key and of sender ``code``; read both again."""
    forget(key, who.org_id, code)
    fresh = authenticate(session, key)
    return fresh, resolve_sender(session, fresh, code, scope, now)


@dataclass(frozen=True, slots=True)
class Copies:
    """The key, sender and grant rows a request took from copies, as fingerprints to verify."""

    key_prefix: str
    key_fingerprint: str
    agent_id: int | None
    sender_fingerprint: tuple[str, ...]

    def params(self) -> dict[str, Any]:
        """Return the parameters of the ``VERIFY`` selects."""
        return {"prefix": self.key_prefix, "agent": self.agent_id}

    def verify(self, key: list[str], sender: list[str], grants: list[str]) -> None:
        """Raise StaleCopy unless the database holds exactly these rows (from ``VERIFY``)."""
        if key != [self.key_fingerprint] or [*sender, *sorted(grants)] != list(
            self.sender_fingerprint
        ):
            raise StaleCopy


def copies_of(who: Caller, ref: SenderRef) -> Copies:
    """Return what to verify for a request that took ``who`` and ``ref`` from copies."""
    return Copies(who.key_prefix, who.fingerprint, ref.agent_id, ref.fingerprint)


# The fingerprints as the database holds them now, by what they verify: the
# live key ``:prefix``, the sender ``:sender`` (with its owner), and the live
# grants of the agent ``:agent`` for it (none for an owner).
KEY_NOW = KEY_LOOKUP.with_only_columns(KEY_FINGERPRINT)
SENDER_NOW = SENDER_LOOKUP.where(col(Sender.id) == bindparam("sender")).with_only_columns(
    SENDER_FINGERPRINT
)
GRANTS_NOW = GRANTS_LOOKUP.with_only_columns(DELEGATION_FINGERPRINT)
VERIFY: dict[str, Select[Any]] = {"key": KEY_NOW, "sender": SENDER_NOW, "grant": GRANTS_NOW}

# A condition that holds while the caller's key and its own sender are as
# copied (parameters from ``hold_params``). A write that takes both from copies
# is made conditional on it (INSERT ... SELECT ... WHERE), in the same
# statement. Owners only: a delegated call has more rows to compare and reads
# them afresh.
HOLD: ColumnElement[bool] = and_(
    KEY_NOW.scalar_subquery() == bindparam("copy_key"),
    SENDER_NOW.scalar_subquery() == bindparam("copy_sender"),
)


def hold_params(who: Caller, ref: SenderRef) -> dict[str, Any]:
    """Return the parameters of ``HOLD`` for this caller and (owned) sender."""
    return {
        "prefix": who.key_prefix,
        "copy_key": who.fingerprint,
        "sender": ref.id,
        "copy_sender": ref.fingerprint[0],
    }
