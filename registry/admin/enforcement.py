"""Sanctions: suspend and lift senders and organizations; the trigger's flags."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _

from registry.admin import bp
from registry.admin.forms import ConfirmForm, LiftForm, SuspendForm
from registry.admin.measures import version_of
from registry.admin.session import current, officer_required, record, staff_required
from registry.db import get_session
from registry.errors import Conflict, RegistryError
from registry.orgs.models import Organization
from registry.orgs.services import get_org, slug_of
from registry.sanctions import measures
from registry.sanctions import services as sanctions
from registry.timeutil import utcnow


@bp.get("/sanctions")
@staff_required
def sanctions_index() -> Any:
    """List running suspensions and the trigger's recent flags."""
    session = get_session()
    now = utcnow()
    orgs, senders = sanctions.suspended_now(session, now)
    return render_template(
        "admin/sanctions.html",
        orgs=orgs,
        senders=senders,
        flags=sanctions.flags(session, now),
        register=sanctions.public_register(session, now, kinds=sanctions.PUBLIC_KINDS),
        overdue=measures.overdue(session, now),
        listed=sanctions.credit_list(session, now),
        confirm=ConfirmForm(),
        now=now,
    )


@bp.post("/senders/<code>/suspend")
@officer_required
def suspend_sender(code: str) -> Any:
    """Suspend a sender: its next check answers ``sender_suspended``."""
    session = get_session()
    sender = sanctions.by_code(session, code)
    form = SuspendForm()
    if not form.validate_on_submit():
        flash(_errors(form), "error")
        return redirect(url_for("admin.org_detail", slug=_slug(sender.organization_id)))
    try:
        measures.claim(session, _org(sender.organization_id), _version(form))
        row = sanctions.suspend_sender(
            session, sender, form.reason.data or "", form.days.data or 0, current().email, utcnow()
        )
    except RegistryError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        record("sender.suspend", f"sender:{code}", reason=row.reason, until=row.ends_at)
        session.commit()
        flash(_("Sender %(code)s is suspended until %(until)s UTC.", code=code,
                until=f"{row.ends_at:%Y-%m-%d %H:%M}"))  # fmt: skip
    return redirect(url_for("admin.org_detail", slug=_slug(sender.organization_id)))


@bp.post("/senders/<code>/lift")
@officer_required
def lift_sender(code: str) -> Any:
    """End a sender's suspension now."""
    session = get_session()
    sender = sanctions.by_code(session, code)
    form = LiftForm()
    if not form.validate_on_submit():
        flash(_("Lifting a measure early needs a reason."), "error")
    else:
        try:
            measures.claim(session, _org(sender.organization_id), _version(form))
            rows = sanctions.lift_sender(session, sender, utcnow())
            _reason(rows, form.lift_reason.data or "")
        except RegistryError as exc:
            session.rollback()
            flash(exc.message, "error")
        else:
            record("sender.lift", f"sender:{code}", reason=form.lift_reason.data)
            session.commit()
            flash(_("Sender %(code)s may be checked again.", code=code))
    return redirect(url_for("admin.org_detail", slug=_slug(sender.organization_id)))


@bp.post("/orgs/<slug>/suspend")
@officer_required
def suspend_org(slug: str) -> Any:
    """Suspend a whole organization: every one of its senders is refused."""
    session = get_session()
    org = get_org(session, slug)
    form = SuspendForm()
    if not form.validate_on_submit():
        flash(_errors(form), "error")
        return redirect(url_for("admin.org_detail", slug=slug))
    try:
        measures.claim(session, org, _version(form))
        row = sanctions.suspend_org(
            session, org, form.reason.data or "", form.days.data or 0, current().email, utcnow()
        )
    except RegistryError as exc:
        session.rollback()
        flash(exc.message, "error")
    else:
        record("org.suspend", f"org:{slug}", reason=row.reason, until=row.ends_at)
        session.commit()
        flash(_("%(name)s is suspended until %(until)s UTC.", name=org.name,
                until=f"{row.ends_at:%Y-%m-%d %H:%M}"))  # fmt: skip
    return redirect(url_for("admin.org_detail", slug=slug))


@bp.post("/orgs/<slug>/lift")
@officer_required
def lift_org(slug: str) -> Any:
    """End an organization's suspension now."""
    session = get_session()
    org = get_org(session, slug)
    form = LiftForm()
    if not form.validate_on_submit():
        flash(_("Lifting a measure early needs a reason."), "error")
    else:
        try:
            measures.claim(session, org, _version(form))
            rows = sanctions.lift_org(session, org, utcnow())
            _reason(rows, form.lift_reason.data or "")
        except RegistryError as exc:
            session.rollback()
            flash(exc.message, "error")
        else:
            record("org.lift", f"org:{slug}", reason=form.lift_reason.data)
            session.commit()
            flash(_("%(name)s may be checked again.", name=org.name))
    return redirect(url_for("admin.org_detail", slug=slug))


def _errors(form: Any) -> str:
    messages = [
        f"{getattr(form, name).label.text}: {'; '.join(errs)}" for name, errs in form.errors.items()
    ]
    return " ".join(messages) or _("The form was not valid; try again.")


def _slug(org_id: int) -> str:
    return slug_of(get_session(), org_id)


def _org(org_id: int) -> Any:
    org = get_session().get(Organization, org_id)
    if org is None:
        raise Conflict(f"no organization {org_id}")
    return org


def _version(form: Any) -> int | None:
    return version_of(form)


def _reason(rows: list[Any], reason: str) -> None:
    for row in rows:
        row.lift_reason = reason.strip()
        row.lifted_by = current().email
