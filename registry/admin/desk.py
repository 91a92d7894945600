"""The complaint desk: the queue, one complaint with its verdict, reply, status."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from registry import phones
from registry.admin import bp
from registry.admin.forms import (
    STATUS_LABELS,
    TYPE_LABELS,
    PhoneComplaintForm,
    QueueFilter,
    ReplyForm,
    StatusForm,
)
from registry.admin.session import current, officer_required, record, staff_required
from registry.complaints import desk, routing
from registry.complaints import services as complaints
from registry.config import current_settings
from registry.db import get_session
from registry.errors import RegistryError
from registry.timeutil import to_utc, utcnow


@bp.get("/complaints")
@staff_required
def complaints_index() -> Any:
    """Show the complaint queue, filtered by status, organization, sender and age."""
    form = QueueFilter(request.args)
    days = current_settings().complaint_answer_days
    if not form.validate():
        # Shown as the form's errors, beside the filters (still a 400: the query was wrong).
        page = render_template("admin/complaints.html", form=form, rows=[], answer_days=days)
        return page, 400
    f = desk.QueueFilter(
        status=form.status.data or None,
        org=(form.org.data or "").strip() or None,
        sender=(form.sender.data or "").strip() or None,
        older_than_days=form.older_than.data,
        overdue=form.overdue.data == "1",
    )
    rows = desk.queue(get_session(), f, utcnow(), days)
    return render_template("admin/complaints.html", form=form, rows=rows, answer_days=days)


def _complaint(complaint_id: int) -> Any:
    if not 0 < complaint_id < 2**31:
        abort(404)
    return complaints.get(get_session(), complaint_id)


@bp.get("/complaints/<int:complaint_id>")
@staff_required
def complaint_detail(complaint_id: int) -> Any:
    """Show one complaint: the facts, the verdict as of the contact time, the thread."""
    session = get_session()
    complaint = _complaint(complaint_id)
    verdict = desk.verdict(session, current_settings(), complaint)
    record("complaint.view", f"complaint:{complaint_id}")
    session.commit()
    days = current_settings().complaint_answer_days
    return render_template(
        "admin/complaint.html",
        routes=desk.routes_of(session, current_settings(), complaint, utcnow()),
        type_labels=TYPE_LABELS,
        c=complaint,
        verdict=verdict,
        sender=desk.sender_of(session, complaint),
        agent=desk.agent_of(session, verdict, complaint),
        thread=complaints.thread(session, complaint_id),
        overdue=desk.is_overdue(complaint, utcnow(), days),
        answer_days=days,
        reply_form=ReplyForm(),
        status_form=StatusForm(status=complaint.status),
    )


@bp.post("/complaints/<int:complaint_id>/reply")
@officer_required
def complaint_reply(complaint_id: int) -> Any:
    """Reply to the holder (they read it on the site), optionally setting the status."""
    session = get_session()
    complaint = _complaint(complaint_id)
    form = ReplyForm()
    staff, now = current(), utcnow()
    if form.validate_on_submit():
        body = form.body.data or ""
        try:
            if staff.sector is not None:
                # A sector desk answers the complaints referred to it, in the same thread.
                routing.sector_answer(session, current_settings(), complaint, staff.sector, body,
                                      staff.email, now)  # fmt: skip
            elif form.then_status.data == "closed":
                routing.final_reply(session, complaint, body, staff.email, now)
            else:
                complaints.reply(session, complaint, body, author=f"regulator:{staff.email}")
                if form.then_status.data:
                    complaints.set_status(session, complaint, form.then_status.data)
        except RegistryError as exc:
            flash(exc.message, "error")
        else:
            record("complaint.reply", f"complaint:{complaint_id}", status=complaint.status,
                   length=len(body), sector=staff.sector)  # fmt: skip
            session.commit()
            flash(_("Reply sent; the holder sees it on the site."))
    else:
        flash(_("The reply was empty or too long (4000 characters at most)."), "error")
    return redirect(url_for("admin.complaint_detail", complaint_id=complaint_id))


@bp.post("/complaints/<int:complaint_id>/status")
@officer_required
def complaint_status(complaint_id: int) -> Any:
    """Change a complaint's status."""
    session = get_session()
    complaint = _complaint(complaint_id)
    form = StatusForm()
    if form.validate_on_submit():
        before = complaint.status
        complaints.set_status(session, complaint, form.status.data or "")
        record(
            "complaint.status", f"complaint:{complaint_id}", before=before, after=complaint.status
        )
        session.commit()
        flash(
            _("Status: %(status)s.", status=STATUS_LABELS.get(complaint.status, complaint.status))
        )
    else:
        flash(_("Choose open, answered or closed."), "error")
    return redirect(url_for("admin.complaint_detail", complaint_id=complaint_id))


@bp.route("/complaints/new", methods=["GET", "POST"])
@officer_required
def complaint_new() -> Any:
    """Enter a complaint taken by telephone; it records who entered it and is routed at once."""
    form = PhoneComplaintForm()
    cfg = current_settings()
    if form.validate_on_submit():
        session = get_session()
        try:
            phone = phones.to_e164(form.phone.data or "", cfg.default_region)
            how = complaints.Intake(type=form.type.data or "no_consent", intake="staff",
                                    entered_by=current().email)  # fmt: skip
            complaint = routing.lodge(
                session, cfg, phone, form.address.data or "", form.channel.data or "sms",
                to_utc(form.contacted_at.data or utcnow(), cfg.tz), form.text.data, how,
            )  # fmt: skip
        except phones.InvalidPhone:
            form.phone.errors = [_("Enter the holder's number, e.g. 131 0000 1234.")]
        except RegistryError as exc:
            form.contacted_at.errors = [exc.message]
        else:
            record("complaint.enter", f"complaint:{complaint.id}", intake="staff")
            session.commit()
            flash(_("Complaint %(ref)s entered.", ref=complaint.reference))
            return redirect(url_for("admin.complaint_detail", complaint_id=complaint.id))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/complaint_new.html", form=form), status
