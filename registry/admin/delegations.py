"""Delegations (outsourced contact), through the same service as the API and the CLI.

Every delegation between any two organizations is listed here; officers grant
and revoke them on a principal's behalf (a principal that cannot reach the API,
or a delegation the regulator orders ended), each an audited staff action.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from registry.admin import bp
from registry.admin.forms import ConfirmForm, DelegationFilter, DelegationForm
from registry.admin.session import officer_required, record, safe_next, staff_required
from registry.config import current_settings
from registry.db import get_session
from registry.errors import RegistryError
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.orgs.filings import Filing


def _page(form: DelegationForm | None = None, status: int = 200) -> Any:
    filters = DelegationFilter(request.args)
    session = get_session()
    if not filters.validate():
        # Shown as the filter form's errors (still a 400: the query was wrong).
        found, status = [], 400
    else:
        found = delegations.search(
            session,
            principal=(filters.principal.data or "").strip() or None,
            agent=(filters.agent.data or "").strip() or None,
            state=filters.state.data or None,
        )
    if form is None:
        form = DelegationForm(principal=(filters.principal.data or "").strip() or None)
    return render_template(
        "admin/delegations.html",
        rows=delegations.describe(session, found),
        filters=filters,
        form=form,
        confirm=ConfirmForm(),
    ), status


@bp.get("/delegations")
@staff_required
def delegations_index() -> Any:
    """List delegations, filtered by principal, agent and state; officers see the grant form."""
    return _page()


@bp.post("/delegations")
@officer_required
def delegation_grant() -> Any:
    """Grant a delegation for a principal, with the API's rules."""
    form = DelegationForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    session = get_session()
    codes = [c for c in re.split(r"[\s,;]+", form.senders.data or "") if c]
    expires = form.expires_at.data.replace(tzinfo=UTC) if form.expires_at.data else None
    filing = None
    if form.filed():
        filing = Filing(
            form.business_name.data or "", form.business_type.data or "",
            [a for a in re.split(r"[\n,;]+", form.addresses.data or "") if a.strip()],
            form.targets.data or "", form.content.data or "", form.contact_name.data or "",
            form.contact_phone.data or "",
        )  # fmt: skip
    try:
        principal = orgs.get_org(session, (form.principal.data or "").strip())
        delegation = delegations.grant(
            session, principal.id or 0, (form.agent.data or "").strip(), codes,
            list(form.scopes.data or []), expires, filing, current_settings().default_region,
        )  # fmt: skip
    except RegistryError as exc:
        field = exc.details[0]["field"] if exc.details else "principal"
        # A filing's field ("filing.addresses.0") is the form's field of that name;
        # "filing" alone (missing) is shown on the business name.
        field = {"filing": "business_name"}.get(field, field.removeprefix("filing.").split(".")[0])
        # A form is not a dict (it has no .get): hence the conditional.
        target = form[field] if field in form else form.principal  # noqa: SIM401
        target.errors = [*target.errors, exc.message]
        return _page(form, 422)
    item = delegations.describe(session, [delegation])[0]
    record("delegation.grant", f"delegation:{delegation.id}", principal=item["principal"],
           agent=item["agent"], senders=item["senders"], scopes=item["scopes"],
           expires_at=item["expires_at"], filing=item["filing"])  # fmt: skip
    session.commit()
    flash(_("Granted delegation %(id)s: %(agent)s may act for %(principal)s.",
            id=delegation.id, agent=item["agent"], principal=item["principal"]))  # fmt: skip
    return redirect(url_for("admin.delegations_index"))


@bp.post("/delegations/<id:delegation_id>/revoke")
@officer_required
def delegation_revoke(delegation_id: int) -> Any:
    """Revoke a delegation at once: the agent's next call is refused."""
    if not 0 < delegation_id < 2**63:
        abort(404)
    # Back to where the button was: the list (with its filters) or an organization's page.
    target = safe_next(request.form.get("next") or url_for("admin.delegations_index"))
    if not ConfirmForm().validate_on_submit():
        flash(_("The form expired; please try again."), "error")
        return redirect(target)
    session = get_session()
    try:
        delegation = delegations.revoke_by_regulator(session, delegation_id)
    except RegistryError as exc:
        flash(exc.message, "error")
        return redirect(target)
    item = delegations.describe(session, [delegation])[0]
    record("delegation.revoke", f"delegation:{delegation_id}", principal=item["principal"],
           agent=item["agent"], senders=item["senders"])  # fmt: skip
    session.commit()
    flash(_("Revoked delegation %(id)s: %(agent)s can no longer act for %(principal)s.",
            id=delegation_id, agent=item["agent"], principal=item["principal"]))  # fmt: skip
    return redirect(target)
