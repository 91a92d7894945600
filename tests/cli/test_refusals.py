"""``registry refusals run``: the scheduled job that reminds holders and ends timed refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.sms.models import SmsMessage
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from registry.timeutil import utcnow
from tests.factories import HOLDER, HOLDER2


def test_the_job_reminds_a_week_before_and_ends_what_has_ended(
    cli: Callable[..., Result], session: Session
) -> None:
    subscribers.set_preferences(session, HOLDER, dnd_sms=True, durations={"sms": "3m"})
    subscribers.set_preferences(session, HOLDER2, blocked_categories=["finance"])
    session.commit()
    # HOLDER2's block was set to end an hour ago; HOLDER's ends in five days.
    ended = utcnow() - timedelta(hours=1)
    soon = utcnow() + timedelta(days=5)
    session.get(Subscriber, HOLDER).refusal_ends = f"sms={soon.isoformat()}"  # type: ignore[union-attr]
    session.get(Subscriber, HOLDER2).refusal_ends = f"finance={ended.isoformat()}"  # type: ignore[union-attr]
    session.commit()
    result = cli("refusals", "run")
    assert result.exit_code == 0, result.output
    assert "1 reminders sent, 1 refusals ended" in result.output
    (text,) = session.scalars(
        select(SmsMessage.body).where(SmsMessage.kind == "refusal_ending")
    ).all()
    assert "营销短信" in text
    holder2 = session.get(Subscriber, HOLDER2, populate_existing=True)
    assert holder2 is not None
    assert holder2.blocked_categories == ""
    # Run again: nothing more to say or to end.
    assert "0 reminders sent, 0 refusals ended" in cli("refusals", "run").output
