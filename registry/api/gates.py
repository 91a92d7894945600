"""Budgets a view counts itself, in the rate limiter's storage: cold numbers and texts to a number.

Route limits (``@limiter.limit``) count requests. Two budgets count something
else, so the views hand one to the service, which spends it with what it is
about to do and is refused (``RateLimited``, 429 with ``Retry-After``) when
the budget is spent. The interfaces are the domain's (``checks.services.ColdBudget``,
``consent.services.TextGate``); these are their implementations at the edge:

- **cold numbers** (``REGISTRY_RATELIMIT_COLD_CHECK``, per acting organization:
  the agent when there is one): numbers the caller has no record with. Checks,
  ``/sync/compare`` rows and new watchlist entries all draw on this one budget,
  so no way of asking about strangers' numbers is cheaper than another (the
  registry is never a directory of numbers; docs/security.md);
- **texts to one number** (``REGISTRY_RATELIMIT_CONSENT_NUMBER``, per number,
  whoever asks): the one-time codes of ``/consent-requests`` and the
  confirmation texts of pending ``/consents`` and ``/consents/bulk`` items, so
  no holder receives a flood of texts however many senders or keys ask.

Both are counted by ``limiter.limiter``, the same storage (memory or Redis) and
the same style of call as every other limit.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request
from flask_limiter import RequestLimit
from limits import RateLimitItem, parse
from limits.util import WindowStats
from werkzeug.exceptions import TooManyRequests

from registry.api import caller
from registry.config import current_settings
from registry.consent.services import TextGate
from registry.errors import RateLimited
from registry.extensions import limiter, rate_limit_key
from registry.metrics import count_cold_refusal
from registry.ratelimit import hit_with_window

log = logging.getLogger(__name__)
parse_limit = functools.lru_cache(maxsize=16)(parse)  # one parse per setting, not per call
View = TypeVar("View", bound=Callable[..., Any])


class Counted(RequestLimit):
    """A route limit as this request's one hit left it: its window is the hit's, never read again.

    Flask-Limiter's ``after_request`` writes the ``X-RateLimit-*`` headers from
    the request's limit's ``window``; Flask-Limiter's own ``RequestLimit`` reads
    the window from the storage when first asked.
    """

    def __init__(
        self,
        extension: Any,
        item: RateLimitItem,
        bucket: list[str],
        window: WindowStats,
        breached: bool,
    ) -> None:
        super().__init__(extension, item, bucket, breached=breached, shared=False)
        self.hit_window = window

    @property
    def window(self) -> WindowStats:
        """Return the window as the request's hit left it."""
        return self.hit_window


def request_limit(limit: Callable[[], str]) -> Callable[[View], View]:
    """Limit a route's requests as ``@limiter.limit(limit)`` does, in one evaluation per request.

    The same bucket (the caller's key or address, the route's endpoint: the key
    ``limiter.limit`` would count in), the same strategy and storage
    (``limiter.limiter``), the same 429 and the same ``X-RateLimit-*`` and
    ``Retry-After`` headers, which Flask-Limiter's own ``after_request`` writes
    from this evaluation's window. Flask-Limiter's decorator resolved the
    route's limits and parsed the callable's string on every request, and read
    the window again for the headers; for the hot checks that was a quarter
    of a check's instructions (docs/performance.md). The hit and the window
    read are the strategy's, so the counts stay exact across processes.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            if limiter.enabled:
                item = parse_limit(limit())
                strategy = limiter.limiter
                endpoint = request._get_current_object().endpoint  # type: ignore[attr-defined]
                bucket = [rate_limit_key(), endpoint or ""]
                allowed, window = hit_with_window(strategy, item, *bucket)
                counted = Counted(limiter, item, bucket, window, breached=not allowed)
                limiter.context.view_rate_limit = counted
                if not allowed:
                    log.info("ratelimit %s (%s) exceeded at endpoint: %s", item, *bucket)
                    raise TooManyRequests(description=str(item))
            return view(*args, **kwargs)

        return limited  # type: ignore[return-value]

    return decorate


class ColdBudget:
    """The caller's budget of numbers it has no record with (``checks.services.ColdBudget``).

    ``what`` (e.g. ``sender acme-cards``) and ``refusal`` say, in the log and in
    the 429's message, what was asked too often. Every refusal is logged and
    counted in the metrics, so mining attempts are visible.
    """

    def __init__(self, what: str, refusal: str, who: str | None = None) -> None:
        self.what = what
        self.refusal = refusal
        # The acting organization: this request's caller, or the one a scrub job
        # was uploaded by (``registry scrub-worker`` spends that organization's budget).
        self.who = who if who is not None else caller().slug

    def spend(self, numbers: int) -> None:
        """Spend ``numbers`` of the budget; raise RateLimited when it is spent."""
        if numbers <= 0:
            return
        item = parse_limit(current_settings().ratelimit_cold_check)
        if limiter.limiter.hit(item, "cold-check", self.who, cost=numbers):
            return
        reset = limiter.limiter.get_window_stats(item, "cold-check", self.who).reset_time
        count_cold_refusal(self.who)
        log.warning(
            "cold checks refused: organization %s, %s, %d numbers (limit %s)",
            self.who, self.what, numbers, item,
        )  # fmt: skip
        raise RateLimited(
            f"{self.refusal} (limit {item}); the registry is not a directory of numbers",
            retry_after=int(reset - time.time()) + 1,
        )


def check_budget(sender_code: str, channel: str, who: str | None = None) -> ColdBudget:
    """Return the budget for checks of ``sender_code`` on numbers it has no record with.

    The same for a check, a batch and every chunk of a scrub (``who``: the
    organization that uploaded it, when there is no request).
    """
    return ColdBudget(
        f"sender {sender_code}",
        f"too many checks on numbers sender {sender_code!r} has no consent or "
        f"opt-out with ({channel})",
        who,
    )


def cold_gate(what: str, refusal: str) -> ColdBudget:
    """Return the cold-number budget of this request's caller (see ``ColdBudget``)."""
    return ColdBudget(what, refusal)


def text_gate() -> TextGate:
    """Return the gate for a text to a holder on behalf of a sender (codes, confirmations)."""

    def gate(phone: str) -> None:
        item = parse_limit(current_settings().ratelimit_consent_number)
        if limiter.limiter.hit(item, "consent-number", phone):
            return
        reset = limiter.limiter.get_window_stats(item, "consent-number", phone).reset_time
        log.warning("consent texts refused: number's budget spent (limit %s)", item)
        wait = int(reset - time.time()) + 1
        raise RateLimited(
            f"this number was sent too many consent texts (limit {item}, whichever sender "
            f"asks); nothing was recorded, retry in {wait} s",
            retry_after=wait,
        )

    return gate
