"""Organizations, senders and API keys, through the same services as the CLI."""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _

from registry import labels
from registry.admin import bp
from registry.admin.forms import (
    ConfirmForm,
    IdentityForm,
    KeyForm,
    KindForm,
    LiftForm,
    MeasureForm,
    OrgForm,
    SenderForm,
    SuspendForm,
    VersionForm,
)
from registry.admin.session import officer_required, record, staff_required
from registry.db import get_session
from registry.errors import RegistryError
from registry.orgs import delegations
from registry.orgs import services as orgs
from registry.sanctions.measures import running
from registry.sanctions.services import history
from registry.senders import services as senders
from registry.timeutil import utcnow


@bp.get("/orgs")
@staff_required
def orgs_index() -> Any:
    """List organizations; officers see the form to create one."""
    return render_template(
        "admin/orgs.html", rows=orgs.list_orgs(get_session()), form=OrgForm(), now=utcnow()
    )


@bp.post("/orgs")
@officer_required
def org_create() -> Any:
    """Create an organization."""
    form = OrgForm()
    session = get_session()
    if form.validate_on_submit():
        try:
            org = orgs.create_org(
                session, form.slug.data or "", form.name.data or "", form.role.data,
                form.credit_code.data, form.region.data, form.kind.data or "merchant",
            )  # fmt: skip
        except RegistryError as exc:
            field = exc.details[0]["field"] if exc.details else "slug"
            target = getattr(form, field, form.slug)
            target.errors = [*target.errors, exc.message]
        else:
            record("org.create", f"org:{org.slug}", name=org.name, role=org.role, kind=org.kind,
                   credit_code=org.credit_code, region=org.region)  # fmt: skip
            session.commit()
            flash(_("Created %(slug)s.", slug=org.slug))
            return redirect(url_for("admin.org_detail", slug=org.slug))
    rows = orgs.list_orgs(session)
    return render_template("admin/orgs.html", rows=rows, form=form, now=utcnow()), 422


def _detail(slug: str, status: int = 200, **forms: Any) -> Any:
    session = get_session()
    org = orgs.get_org(session, slug)
    sender_rows = senders.list_senders(session, org.id or 0)
    context = {
        "org": org,
        "senders": sender_rows,
        "sender_codes": {s.id: s.code for s, _ in sender_rows},
        "keys": orgs.list_keys(session, org.id or 0),
        "sanctions": history(session, org.id or 0),
        "delegations": delegations.describe(session, delegations.list_for(session, org.id or 0)),
        "sender_form": SenderForm(),
        "key_form": KeyForm(),
        # Prefixed: the measure form on the same page has a field "kind" too.
        "kind_form": KindForm(prefix="org", data={"kind": org.kind}),
        "suspend_form": SuspendForm(),
        "confirm": ConfirmForm(),
        "identity_form": IdentityForm(data={"credit_code": org.credit_code, "region": org.region}),
        "measure_form": MeasureForm(),
        "lift_form": LiftForm(),
        "version_form": VersionForm(),
        "running": running,
        "now": utcnow(),
        "new_key": None,
        **forms,
    }
    return render_template("admin/org.html", **context), status


@bp.get("/orgs/<slug>")
@staff_required
def org_detail(slug: str) -> Any:
    """Show an organization: senders, keys, suspensions."""
    return _detail(slug)


@bp.post("/orgs/<slug>/senders")
@officer_required
def sender_create(slug: str) -> Any:
    """Register a sender for the organization."""
    session = get_session()
    org = orgs.get_org(session, slug)
    form = SenderForm()
    if form.validate_on_submit():
        addresses = [a for a in re.split(r"[\s,;]+", form.addresses.data or "") if a]
        try:
            sender, cleaned = senders.create_sender(
                session, org.id or 0, (form.code.data or "").strip(), form.name.data or "",
                form.category.data or "", addresses,
            )  # fmt: skip
        except RegistryError as exc:
            form.code.errors = [*form.code.errors, exc.message]
        else:
            record("sender.create", f"sender:{sender.code}", org=slug, addresses=cleaned)
            session.commit()
            flash(_("Registered sender %(code)s.", code=sender.code))
            return redirect(url_for("admin.org_detail", slug=slug))
    return _detail(slug, 422, sender_form=form)


@bp.post("/orgs/<slug>/keys")
@officer_required
def key_create(slug: str) -> Any:
    """Create an API key and show it once."""
    session = get_session()
    org = orgs.get_org(session, slug)
    form = KeyForm()
    if not form.validate_on_submit():
        return _detail(slug, 422, key_form=form)
    try:
        row, key = orgs.create_key(session, org, form.name.data or "")
    except RegistryError as exc:
        form.name.errors = [*form.name.errors, exc.message]
        return _detail(slug, exc.status, key_form=form)
    record("key.create", f"key:{row.prefix}", org=slug, name=row.name)
    session.commit()
    # Shown in this response only (never stored in clear, never put in the URL).
    return _detail(slug, 201, new_key=key)


@bp.post("/orgs/<slug>/keys/<prefix>/revoke")
@officer_required
def key_revoke(slug: str, prefix: str) -> Any:
    """Revoke an API key at once."""
    session = get_session()
    org = orgs.get_org(session, slug)
    if ConfirmForm().validate_on_submit():
        keys = {k.prefix for k in orgs.list_keys(session, org.id or 0)}
        if prefix not in keys:
            flash(_("%(slug)s has no key %(prefix)s.", slug=slug, prefix=prefix), "error")
        else:
            orgs.revoke_key(session, prefix)
            record("key.revoke", f"key:{prefix}", org=slug)
            session.commit()
            flash(_("Revoked key %(prefix)s.", prefix=prefix))
    return redirect(url_for("admin.org_detail", slug=slug))


@bp.post("/orgs/<slug>/kind")
@officer_required
def org_kind(slug: str) -> Any:
    """Say what the organization is in the chain (a call center must file its businesses)."""
    session = get_session()
    org = orgs.get_org(session, slug)
    form = KindForm(prefix="org")
    if not form.validate_on_submit():
        return _detail(slug, 422, kind_form=form)
    before = org.kind
    orgs.set_kind(session, org, form.kind.data or "")
    record("org.kind", f"org:{slug}", kind=org.kind, was=before)
    session.commit()
    flash(
        _(
            "%(slug)s is now recorded as: %(kind)s.",
            slug=slug,
            kind=labels.label(labels.KINDS, org.kind),
        )
    )
    return redirect(url_for("admin.org_detail", slug=slug))
