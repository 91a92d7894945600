"""The range of measures on an organization's page: take, lift early, complete; the credit code.

Each form carries the organization's ``version`` as the page showed it; the
service claims it (``registry.sanctions.measures.claim``), so an officer who
acted on an outdated page gets 409 and the page as it is now, never a lost update.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, url_for
from flask_babel import gettext as _

from registry.admin import bp
from registry.admin.directory import _detail
from registry.admin.forms import IdentityForm, LiftForm, MeasureForm, VersionForm
from registry.admin.session import current, officer_required, record
from registry.db import get_session
from registry.errors import Conflict, RegistryError
from registry.orgs import services as orgs
from registry.sanctions import measures
from registry.timeutil import utcnow


def version_of(form: Any) -> int | None:
    """Return the version a form was drawn from (None when it carries none)."""
    text = (form.version.data or "").strip()
    return int(text) if text.isdigit() else None


def _stale(slug: str, exc: RegistryError) -> Any:
    get_session().rollback()
    flash(exc.message, "error")
    return _detail(slug, 409)


@bp.post("/orgs/<slug>/identity")
@officer_required
def org_identity(slug: str) -> Any:
    """Set the organization's unified social credit code and region."""
    session = get_session()
    org = orgs.get_org(session, slug)
    form = IdentityForm()
    if not form.validate_on_submit():
        return _detail(slug, 422, identity_form=form)
    try:
        measures.claim(session, org, version_of(form))
        orgs.set_identity(session, org, form.credit_code.data, form.region.data)
    except Conflict as exc:
        if exc.details and exc.details[0].get("field") == "version":
            return _stale(slug, exc)
        session.rollback()
        form.credit_code.errors = [*form.credit_code.errors, exc.message]
        return _detail(slug, 422, identity_form=form)
    except RegistryError as exc:
        session.rollback()
        target = (
            form.region if exc.details and exc.details[0]["field"] == "region" else form.credit_code
        )
        target.errors = [*target.errors, exc.message]
        return _detail(slug, 422, identity_form=form)
    record("org.identity", f"org:{slug}", credit_code=org.credit_code, region=org.region)
    session.commit()
    flash(_("Saved the credit code and region of %(slug)s.", slug=slug))
    return redirect(url_for("admin.org_detail", slug=slug))


@bp.post("/orgs/<slug>/measures")
@officer_required
def measure_create(slug: str) -> Any:
    """Take one measure against the organization (or one of its addresses)."""
    session = get_session()
    org = orgs.get_org(session, slug)
    form = MeasureForm()
    if not form.validate_on_submit():
        return _detail(slug, 422, measure_form=form)
    now = utcnow()
    kind = form.kind.data
    try:
        measures.claim(session, org, version_of(form))
    except Conflict as exc:
        return _stale(slug, exc)
    try:
        basis = measures.basis(
            session, org, form.reason.data or "", form.complaints.data or "",
            form.checks.data or "", current().email, now,
        )  # fmt: skip
        if kind == "notice":
            row = measures.notice(session, org, basis)
        elif kind == "interview":
            row = measures.interview(
                session, org, basis, _utc(form.meets_at.data), form.minutes.data or ""
            )
        elif kind == "rectification":
            row = measures.rectification(session, org, basis, _utc(form.deadline.data))
        elif kind == "fine":
            row = measures.fine(session, org, basis, form.illegal_gains.data, form.amount.data)
        elif kind == "listing":
            row = measures.listing(session, org, basis, form.days.data or 0)
        else:
            row = measures.suspend_address(
                session, org, basis, form.address.data or "", form.days.data or 0
            )
    except RegistryError as exc:
        session.rollback()
        name = exc.details[0]["field"] if exc.details else "reason"
        target = getattr(form, name, None) or form.reason
        target.errors = [*target.errors, exc.message]
        return _detail(slug, 422, measure_form=form)
    record(f"measure.{row.kind}", f"org:{slug}", id=row.id, reason=row.reason,
           evidence=row.evidence, address=row.address, amount=row.amount,
           illegal_gains=row.illegal_gains, deadline=row.deadline, until=row.ends_at,
           meets_at=row.meets_at)  # fmt: skip
    session.commit()
    flash(_("Recorded measure %(id)s against %(slug)s.", id=row.id, slug=slug))
    return redirect(url_for("admin.org_detail", slug=slug))


@bp.post("/orgs/<slug>/measures/<int:sanction_id>/lift")
@officer_required
def measure_lift(slug: str, sanction_id: int) -> Any:
    """End a measure before its time, with the reason why."""
    session = get_session()
    org = orgs.get_org(session, slug)
    row = measures.measure_of(session, org, sanction_id)
    form = LiftForm()
    if not form.validate_on_submit():
        flash(_("Lifting a measure early needs a reason."), "error")
        return _detail(slug, 422)
    try:
        measures.claim(session, org, version_of(form))
    except Conflict as exc:
        return _stale(slug, exc)
    try:
        measures.lift(session, org, row, form.lift_reason.data or "", current().email, utcnow())
    except RegistryError as exc:
        session.rollback()
        flash(exc.message, "error")
        return _detail(slug, 409 if isinstance(exc, Conflict) else 422)
    record("measure.lift", f"org:{slug}", id=sanction_id, kind=row.kind, reason=row.lift_reason)
    session.commit()
    flash(_("Lifted measure %(id)s.", id=sanction_id))
    return redirect(url_for("admin.org_detail", slug=slug))


@bp.post("/orgs/<slug>/measures/<int:sanction_id>/complete")
@officer_required
def measure_complete(slug: str, sanction_id: int) -> Any:
    """Record a fine paid or a rectification carried out."""
    session = get_session()
    org = orgs.get_org(session, slug)
    row = measures.measure_of(session, org, sanction_id)
    form = VersionForm()
    if not form.validate_on_submit():
        return redirect(url_for("admin.org_detail", slug=slug))
    try:
        measures.claim(session, org, version_of(form))
        measures.complete(session, org, row, utcnow())
    except Conflict as exc:
        return _stale(slug, exc)
    action = "measure.paid" if row.kind == "fine" else "measure.rectified"
    record(action, f"org:{slug}", id=sanction_id)
    session.commit()
    flash(_("Recorded: measure %(id)s is completed.", id=sanction_id))
    return redirect(url_for("admin.org_detail", slug=slug))


def _utc(value: Any) -> Any:
    """The form's naive date and time, read as UTC."""
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None else None
