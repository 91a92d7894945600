"""Number ranges (号段), connections and disconnections: which carrier speaks for what.

Officers assign ranges to carriers (and, for an MVNO, a sub-range of its host's
range), revoke them, and retract a wrong disconnection, restoring what it
voided; each is an audited staff action. Through the same services as the CLI
and the carriers' API.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from registry import phones
from registry.access import services as access
from registry.admin import bp
from registry.admin.forms import ConfirmForm, NumberLookup, RangeForm, RetractForm
from registry.admin.session import current, officer_required, record, staff_required
from registry.config import current_settings
from registry.db import get_session
from registry.errors import RegistryError
from registry.events.services import Actor
from registry.numbers import ranges, services
from registry.orgs import services as orgs

# In the per-number event log the regulator acts; the staff audit names the officer.
REGULATOR = Actor("regulator", "console")


def _by() -> str:
    """Return who acts, as the range and disconnection rows keep it (100 characters)."""
    return f"staff:{current().email}"[:100]


def _page(
    form: RangeForm | None = None, status: int = 200, retract: RetractForm | None = None
) -> Any:
    session = get_session()
    lookup = NumberLookup(request.args)
    if not lookup.validate():
        abort(400, "the number is not valid")
    phone = holder = None
    found: list[Any] = []
    carriers: dict[int, str] = {}
    raw = (lookup.phone.data or "").strip()
    if raw:
        try:
            phone = phones.to_e164(raw, current_settings().default_region)
        except phones.InvalidPhone as exc:
            lookup.phone.errors = [str(exc)]
        else:
            holder = ranges.holder_of(session, phone)
            found = services.for_phone(session, phone)
            for org_id in {d.organization_id for d in found} | (
                {holder.organization_id} if holder else set()
            ):
                if org_id is not None:
                    carriers[org_id] = orgs.slug_of(session, org_id)
    return render_template(
        "admin/numbers.html",
        rows=ranges.list_ranges(session, include_revoked=request.args.get("all") == "1"),
        form=form or RangeForm(),
        lookup=lookup,
        phone=phone,
        holder=holder,
        disconnections=found,
        carriers=carriers,
        retract=retract or RetractForm(),
        confirm=ConfirmForm(),
        connections=access.list_connections(
            session, include_withdrawn=request.args.get("all") == "1"
        ),
    ), status


@bp.get("/numbers")
@staff_required
def numbers_index() -> Any:
    """List number ranges; look up a number's carrier and disconnections."""
    return _page()


@bp.post("/numbers/ranges")
@officer_required
def range_assign() -> Any:
    """Assign a range to a carrier (or, with a host, sub-assign it to an MVNO)."""
    form = RangeForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    session = get_session()
    host = (form.host.data or "").strip() or None
    carrier = (form.carrier.data or "").strip()
    by = _by()
    try:
        if host is None:
            row = ranges.assign(session, form.prefix.data or "", carrier, by)
        else:
            host_id = orgs.get_org(session, host).id or 0
            row = ranges.sub_assign(session, host_id, form.prefix.data or "", carrier, by)
    except RegistryError as exc:
        field = exc.details[0]["field"] if exc.details else "prefix"
        target = form[field] if field in form else form.prefix  # noqa: SIM401
        target.errors = [*target.errors, exc.message]
        return _page(form, 422)
    record("range.assign", f"range:{row.prefix}", carrier=carrier, host=host)
    session.commit()
    flash(_("Assigned %(prefix)s to %(carrier)s.", prefix=row.prefix, carrier=carrier))
    return redirect(url_for("admin.numbers_index"))


@bp.post("/numbers/ranges/<int:range_id>/revoke")
@officer_required
def range_revoke(range_id: int) -> Any:
    """Revoke a range and the sub-assignments inside it."""
    if not 0 < range_id < 2**63:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(url_for("admin.numbers_index"))
    session = get_session()
    try:
        row = ranges.revoke(session, range_id, _by())
    except RegistryError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.numbers_index"))
    record(
        "range.revoke", f"range:{row.prefix}", carrier=orgs.slug_of(session, row.organization_id)
    )
    session.commit()
    flash(_("Revoked %(prefix)s.", prefix=row.prefix))
    return redirect(url_for("admin.numbers_index"))


@bp.post("/numbers/disconnections/<int:disconnection_id>/retract")
@officer_required
def disconnection_retract(disconnection_id: int) -> Any:
    """Retract a wrong disconnection as the regulator, restoring what it voided."""
    if not 0 < disconnection_id < 2**63:
        abort(404)
    session = get_session()
    try:
        found = services.get_disconnection(session, disconnection_id)
    except RegistryError:
        abort(404)
    back = url_for("admin.numbers_index", phone=found.phone)
    form = RetractForm()
    if not form.validate_on_submit():
        flash(_("Give the reason for the retraction."), "error")
        return redirect(back)
    try:
        done = services.retract(
            session, REGULATOR, found, form.reason.data or "", carrier_id=None, by=_by(),
        )  # fmt: skip
    except RegistryError as exc:
        flash(exc.message, "error")
        return redirect(back)
    carrier = orgs.slug_of(session, found.organization_id) if found.organization_id else None
    record("disconnection.retract", f"disconnection:{found.id}", phone=found.phone,
           disconnected_at=found.disconnected_at, carrier=carrier, reason=form.reason.data,
           restored_consents=done.consents, restored_preferences=done.preferences)  # fmt: skip
    session.commit()
    flash(_("Retracted the disconnection of %(phone)s: %(n)s consents restored.",
            phone=found.phone, n=done.consents))  # fmt: skip
    return redirect(back)
