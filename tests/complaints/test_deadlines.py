"""Deadlines in working days on China's calendar: holidays, 调休 make-up days, the sweep."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.audit.models import StaffAudit
from registry.complaints import deadlines, routing, services
from registry.complaints.models import Complaint, ComplaintRoute
from registry.config import Settings
from tests.conftest import Api
from tests.factories import HOLDER

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Tuesday 30 September 2025: the National Day holiday runs 1 to 8 October, and
# Saturday 11 October is worked in exchange (调休).
FILED = datetime(2025, 9, 30, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)


def test_working_days_skip_the_holiday_and_count_the_make_up_saturday() -> None:
    assert deadlines.is_workday(date(2025, 10, 11))  # a Saturday, worked
    assert not deadlines.is_workday(date(2025, 10, 6))  # a Monday, holiday
    # 9, 10, 11 (Saturday, worked), 13, 14 October.
    assert deadlines.due(FILED, 5, SHANGHAI) == date(2025, 10, 14)
    # Sunday 28 September was worked too: filed on the Saturday before, day 1 is that Sunday.
    assert deadlines.add_working_days(date(2025, 9, 27), 1) == date(2025, 9, 28)


def _filed_on_30_september(session: Session, settings: Settings) -> Complaint:
    complaint = services.file_complaint(
        session, HOLDER, "10690001", "sms", FILED - timedelta(hours=1)
    )
    complaint.created_at = FILED
    complaint.acknowledged_at = FILED  # acknowledged at once: only the answer's deadline runs
    routing.route(session, settings, complaint)
    session.commit()
    return complaint


def test_an_unanswered_route_is_flagged_the_day_after_its_deadline(
    session: Session, settings: Settings, acme: Api
) -> None:
    s = replace(settings, complaint_org_days=5)
    complaint = _filed_on_30_september(session, s)
    merchant = session.scalar(select(ComplaintRoute).where(
        ComplaintRoute.complaint_id == complaint.id, ComplaintRoute.role == "merchant"))  # fmt: skip
    assert merchant is not None
    assert merchant.due_on == date(2025, 10, 14)
    last_minute = datetime(2025, 10, 14, 23, 59, tzinfo=SHANGHAI).astimezone(UTC)
    assert merchant.id not in routing.sweep(session, s, last_minute).routes
    next_day = datetime(2025, 10, 15, 0, 1, tzinfo=SHANGHAI).astimezone(UTC)
    swept = routing.sweep(session, s, next_day)
    assert merchant.id in swept.routes
    assert complaint.id in swept.escalated
    session.commit()
    assert routing.sweep(session, s, next_day + timedelta(days=1)).routes == []  # flagged once
    actions = session.scalars(select(StaffAudit.action).where(
        StaffAudit.subject == f"complaint:{complaint.id}")).all()  # fmt: skip
    assert "complaint.overdue" in actions
    assert "complaint.escalate" in actions


def test_an_unacknowledged_complaint_is_escalated_after_its_acknowledgement_day(
    session: Session, settings: Settings, acme: Api
) -> None:
    complaint = _filed_on_30_september(session, settings)
    complaint.acknowledged_at = None
    session.commit()
    assert complaint.ack_due == date(2025, 10, 9)  # 1 working day after 30 September
    on_the_day = datetime(2025, 10, 9, 18, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert routing.sweep(session, settings, on_the_day).escalated == []
    after = datetime(2025, 10, 10, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert routing.sweep(session, settings, after).escalated == [complaint.id]


def test_an_answer_after_the_deadline_is_kept_and_marked_late(
    session: Session, settings: Settings, acme: Api
) -> None:
    acme.check(HOLDER)
    complaint = routing.lodge(session, settings, HOLDER, "10690001", "sms",
                              datetime.now(UTC))  # fmt: skip
    session.commit()
    session.execute(update(ComplaintRoute).where(ComplaintRoute.complaint_id == complaint.id)
                    .values(due_on=date(2025, 10, 14)))  # fmt: skip
    session.commit()
    resp = acme.post(f"/complaints/{complaint.id}/answer",
                     {"found": "our campaign", "action": "stopped_contacting"})  # fmt: skip
    assert resp.status_code == 201
    assert resp.get_json()["late"] is True
    view = acme.get("/compliance").get_json()
    assert view["late"] == 1
    assert view["answers_due"] == 0


def test_the_sweep_command_reports_what_it_flagged(app: object, session: Session,
                                                   settings: Settings, acme: Api) -> None:  # fmt: skip
    from click.testing import CliRunner

    complaint = _filed_on_30_september(session, settings)
    result = CliRunner().invoke(app.cli, ["complaints", "sweep"])  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    assert "answers newly overdue" in result.output
    session.expire_all()
    assert session.get(Complaint, complaint.id).escalated_at is not None  # type: ignore[union-attr]
