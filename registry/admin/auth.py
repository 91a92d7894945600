"""Sign in (password + TOTP), sign out, the language, the dashboard and the audit trail."""

from __future__ import annotations

from typing import Any

from flask import (
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie_session
from flask_babel import gettext as _

from registry.admin import bp
from registry.admin.accounts import AccountLocked, SignInFailed, sign_in, sign_out_everywhere
from registry.admin.forms import STATUS_LABELS, ConfirmForm, LoginForm
from registry.admin.overview import dashboard_data
from registry.admin.session import (
    current,
    end,
    load_staff,
    record,
    refuse_nul,
    safe_next,
    staff_required,
    start,
)
from registry.audit import services as audit
from registry.config import current_settings
from registry.db import get_session
from registry.extensions import limiter
from registry.i18n import LOCALES
from registry.timeutil import utcnow

bp.before_request(refuse_nul)
bp.before_request(load_staff)


@bp.context_processor
def console_labels() -> dict[str, Any]:
    """Return the labels of stored codes shown to staff, in their language."""
    # Stored codes shown to staff in their language (the codes themselves stay English).
    return {
        "status_labels": STATUS_LABELS,
        "role_labels": {"officer": _("officer"), "viewer": _("viewer")},
    }


def _login_limit() -> str:
    # Per client address, on top of the per-account lock-out: slows password
    # spraying across many accounts, which the lock-out alone does not.
    return current_settings().ratelimit_staff_login


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> Any:
    """Sign in with email, password and the authenticator code."""
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        session = get_session()
        email = form.email.data or ""
        try:
            user = sign_in(session, email, form.password.data or "", form.code.data or "", utcnow())
        except AccountLocked as exc:
            audit.record(session, None, "login.locked", f"staff:{email[:200]}", actor=email[:254],
                         ip=request.remote_addr)  # fmt: skip
            session.commit()
            form.form_errors.append(
                _("Too many failed attempts: the account is locked until %(until)s UTC.",
                  until=f"{exc.until:%H:%M}")
            )  # fmt: skip
            status = 429
        except SignInFailed:
            audit.record(session, None, "login.failed", None, {"email": email[:254]},
                         actor="anonymous", ip=request.remote_addr)  # fmt: skip
            session.commit()
            # The service says only this (never which of the three was wrong).
            form.form_errors.append(_("the email, password or code is wrong"))
            status = 401
        else:
            audit.record(session, user, "login", f"staff:{user.id}", ip=request.remote_addr)
            session.commit()
            response = make_response(redirect(safe_next(request.args.get("next"))))
            return start(response, user)
    elif request.method == "POST":
        status = 400
    return render_template("admin/login.html", form=form), status


@bp.post("/logout")
@staff_required
def logout() -> Any:
    """Sign out here and on every other device."""
    if ConfirmForm().validate_on_submit():
        session = get_session()
        sign_out_everywhere(session, current())
        record("logout", f"staff:{current().id}")
        session.commit()
    flash(_("Signed out."))
    return end(make_response(redirect(url_for("admin.login"))))


@bp.post("/lang/<code>")
def set_language(code: str) -> Any:
    """Remember the language, as the site does (the same choice serves both)."""
    if ConfirmForm().validate_on_submit() and code in LOCALES:
        cookie_session["lang"] = code
    return redirect(safe_next(request.form.get("next")))


@bp.get("/")
@staff_required
def dashboard() -> Any:
    """Show what needs attention: open and overdue complaints, flags, suspensions."""
    data = dashboard_data(get_session(), current_settings(), utcnow())
    return render_template("admin/dashboard.html", **data)


@bp.get("/audit")
@staff_required
def audit_trail() -> Any:
    """Show the newest staff actions."""
    action = request.args.get("action", "")[:48] or None
    entries = audit.recent(get_session(), action=action, limit=300)
    return render_template("admin/audit.html", entries=entries, action=action or "")
