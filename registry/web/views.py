"""The holder's pages: sign in by SMS code, preferences, senders, checks, complaints, data.

Views parse the form, call one service, and render; every change commits here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import wraps
from typing import Any

from flask import (
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _

from registry import labels, phones
from registry.checks.history import checks_for_phone
from registry.complaints import desk, routing
from registry.complaints import services as complaints
from registry.complaints.steps import steps as complaint_steps
from registry.config import current_settings
from registry.consent import holders, optouts, records
from registry.consent import services as consents
from registry.consent import unsubscribe as unsubscribing
from registry.db import get_reader, get_session
from registry.errors import RegistryError, ValidationFailed
from registry.events import services as events
from registry.events.services import Actor
from registry.extensions import limiter
from registry.i18n import LOCALES
from registry.lookup import services as lookups
from registry.orgs import filings
from registry.senders.services import find_sender
from registry.subscribers import login
from registry.subscribers import services as subscribers
from registry.subscribers.models import Subscriber
from registry.timeutil import to_utc, utcnow
from registry.web import bp
from registry.web.forms import (
    ONCE_EXPIRED,
    CapForm,
    CodeForm,
    ComplaintForm,
    ConsentActionForm,
    EmptyForm,
    ExemptForm,
    LookupForm,
    PhoneForm,
    PreferencesForm,
    ReplyForm,
    TimedBlockForm,
    UnblockForm,
    UnsubscribeForm,
)

HOLDER = Actor("subscriber", "site")


def holder_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let only a signed-in holder through, with a session still valid for the number."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        phone = session.get("phone")
        if phone:
            db = get_session()
            holder = db.get(Subscriber, phone)
            # Signed out (here or everywhere), or the number was disconnected since: start again.
            if (
                holder is not None
                and holder.session_epoch == session.get("epoch")
                and login.session_phone(db, session.get("sid")) == phone
            ):
                g.phone = phone
                return view(*args, **kwargs)
        for key in ("phone", "epoch", "sid"):
            session.pop(key, None)
        return redirect(url_for("web.sign_in"))

    return wrapped


def _phone_key() -> str:
    raw = request.form.get("phone", "")
    try:
        return "login-phone:" + phones.to_e164(raw, current_settings().default_region)
    except phones.InvalidPhone:
        return "login-phone:invalid"


@bp.route("/lang/<code>", methods=["POST"])
def set_language(code: str) -> Any:
    """Remember the holder's language."""
    form = EmptyForm()
    if form.validate_on_submit() and code in LOCALES:
        session["lang"] = code
    return redirect(request.referrer or url_for("web.index"))


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_settings().ratelimit_login_number,
    key_func=_phone_key,
    methods=["POST"],
    error_message=lambda: _(
        "Too many codes were asked for this number. Wait a few minutes, then try again."
    ),
)
@limiter.limit(
    lambda: current_settings().ratelimit_login_client,
    methods=["POST"],
    error_message=lambda: _(
        "Too many sign-in attempts from this connection. Wait a while, then try again."
    ),
)
def sign_in() -> Any:
    """Ask for the number and text it a code."""
    form = PhoneForm()
    if form.validate_on_submit():
        try:
            phone = phones.to_e164(form.phone.data or "", current_settings().default_region)
        except phones.InvalidPhone:
            form.phone.errors = [
                _("That is not a mobile number we can text. Check it and try again.")
            ]
        else:
            db = get_session()
            login.send_code(db, current_settings(), phone, session.get("lang"))
            db.commit()
            return redirect(url_for("web.enter_code", phone=phone))
    return render_template("web/sign_in.html", form=form)


@bp.route("/sign-in/code", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_settings().ratelimit_code_client,
    methods=["POST"],
    error_message=lambda: _("Too many codes were tried. Wait ten minutes, then try again."),
)
def enter_code() -> Any:
    """Check the code and start the holder's session."""
    form = CodeForm()
    if request.method == "GET":
        form.phone.data = request.args.get("phone", "")
    if form.validate_on_submit():
        phone = form.phone.data or ""
        db = get_session()
        epoch: int | RegistryError
        try:
            epoch = login.verify_code(db, current_settings(), phone, form.code.data or "")
        except RegistryError as exc:  # refused before a try was counted: nothing written
            epoch = exc
        if isinstance(epoch, RegistryError):
            db.commit()  # a wrong code's counted try (the only write a refusal makes)
            form.code.errors = [_message(epoch)]
        else:
            sid = login.open_session(db, phone)
            db.commit()
            # A new session for the signed-in holder (no fixation), with a new CSRF token;
            # the language chosen before signing in is a choice, not a credential: it stays.
            lang = session.get("lang")
            session.clear()
            g.pop("csrf_token", None)
            session["phone"], session["epoch"], session["sid"] = phone, epoch, sid
            if lang in LOCALES:
                session["lang"] = lang
            session.permanent = False
            return redirect(url_for("web.preferences"))
    return render_template("web/code.html", form=form)


def _submitted(form: Any, field: str) -> bool:
    """Tell which of a page's forms was posted."""
    return request.method == "POST" and field in request.form


def _message(exc: RegistryError) -> str:
    messages = {
        "that code is not right": _(
            "That code is not right. Check the text message and try again."
        ),
        "the code has expired; ask for a new one": _("That code has expired. Ask for a new one."),
        "too many wrong codes; ask for a new one": _("Too many wrong codes. Ask for a new one."),
        "no code is waiting for this number; ask for a new one": _(
            "There is no code waiting for this number. Ask for a new one."
        ),
    }
    return messages.get(exc.message, exc.message)


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Any:
    """End this session, on the server too: a copy of its cookie opens nothing afterwards."""
    if EmptyForm().validate_on_submit():
        db = get_session()
        login.end_session(db, session.get("sid"))
        db.commit()
        for key in ("phone", "epoch", "sid"):
            session.pop(key, None)
    return redirect(url_for("web.index"))


@bp.route("/sign-out-everywhere", methods=["POST"])
@holder_required
def sign_out_everywhere() -> Any:
    """End every session of this number, on every device."""
    if EmptyForm().validate_on_submit():
        db = get_session()
        login.sign_out_everywhere(db, g.phone)
        db.commit()
        for key in ("phone", "epoch", "sid"):
            session.pop(key, None)
    return redirect(url_for("web.index"))


@bp.route("/me", methods=["GET", "POST"])
@holder_required
def preferences() -> Any:
    """Do-not-disturb, category blocks, quiet hours."""
    db = get_session()
    holder = subscribers.get_or_create(db, g.phone)
    form = PreferencesForm()
    if request.method == "GET":
        form.dnd_sms.data, form.dnd_voice.data = holder.dnd_sms, holder.dnd_voice
        form.categories.data = [c for c in holder.blocked_categories.split(",") if c]
        form.quiet_hours.data = holder.quiet_hours or ""
    elif form.validate_on_submit():
        try:
            subscribers.set_preferences(
                db,
                g.phone,
                HOLDER,
                dnd_sms=form.dnd_sms.data,
                dnd_voice=form.dnd_voice.data,
                blocked_categories=list(form.categories.data or []),
                quiet_hours=form.quiet_hours.data or None,
                durations={
                    "sms": form.dnd_sms_for.data or "keep",
                    "voice": form.dnd_voice_for.data or "keep",
                    "categories": form.categories_for.data or "keep",
                },
            )
        except RegistryError:
            db.rollback()
            form.quiet_hours.errors = [_("Write quiet hours like 12:00-14:00.")]
        else:
            db.commit()
            flash(
                _(
                    "Saved. From now on every sender that asks the registry gets this answer, "
                    "except senders you agreed to individually."
                ),
                "ok",
            )
            return redirect(url_for("web.preferences"))
    return render_template(
        "web/preferences.html", form=form, phone=g.phone, ends=subscribers.refusal_ends(holder)
    )


@bp.route("/me/senders", methods=["GET", "POST"])
@holder_required
def senders() -> Any:
    """Every sender that holds a consent or refusal for this number; confirm, revoke, block."""
    db = get_session()
    action, block = ConsentActionForm(prefix="c"), TimedBlockForm(prefix="b")
    exempt = ExemptForm(prefix="x")
    if _submitted(exempt, "x-sender_id") and exempt.validate():
        try:
            subscribers.set_cap_exemption(
                db, g.phone, int(exempt.sender_id.data or 0), exempt.exempt.data == "1", HOLDER
            )
            db.commit()
            flash(_("Saved: your cap on contacts now treats this sender as you chose."), "ok")
        except RegistryError:
            db.rollback()
            flash(_("That sender is not known."), "error")
        return redirect(url_for("web.senders"))
    if _submitted(action, "c-action") and action.validate():
        consent = holders.holder_consent(db, g.phone, int(action.consent_id.data or 0))
        try:
            if action.action.data == "confirm":
                consents.confirm(db, consent, HOLDER)
                flash(_("Confirmed: this sender may now contact you as you agreed."), "ok")
            else:
                consents.revoke(db, consent, HOLDER)
                flash(_("Revoked: this sender may no longer contact you for marketing."), "ok")
            db.commit()
        except RegistryError as exc:
            db.rollback()
            flash(exc.message, "error")
        return redirect(url_for("web.senders"))
    unblock = UnblockForm(prefix="u")
    if _submitted(unblock, "u-sender_id") and unblock.validate():
        try:
            optouts.withdraw_optouts(db, HOLDER, g.phone, int(unblock.sender_id.data or 0))
            db.commit()
            flash(_("Unblocked: this sender is back to what your other settings say."), "ok")
        except RegistryError:
            db.rollback()
            flash(_("That sender is not blocked for your number."), "error")
        return redirect(url_for("web.senders"))
    if _submitted(block, "b-query") and block.validate():
        try:
            now = utcnow()
            sender = find_sender(db, block.query.data or "", now)
            optouts.record_optout(
                db, HOLDER, sender, g.phone, ["sms", "voice"], "site",
                expires_at=subscribers.refusal_end(block.duration.data or "forever", now),
            )  # fmt: skip
            db.commit()
            flash(
                _(
                    "Blocked %(name)s: it may no longer call or text you for marketing.",
                    name=sender.name,
                ),
                "ok",
            )
            return redirect(url_for("web.senders"))
        except RegistryError:
            db.rollback()
            block.query.errors = [
                _("We found no single sender for that. Try its code or the exact number.")
            ]
    rows = holders.for_holder(db, g.phone)
    return render_template(
        "web/senders.html",
        rows=rows,
        block=block,
        form=EmptyForm(),
        exempt=subscribers.cap_exemptions(db, g.phone),
        capped=bool(subscribers.get_or_create(db, g.phone).frequency_caps),
    )


@bp.route("/me/limits", methods=["GET", "POST"])
@holder_required
def limits() -> Any:
    """The cap on marketing contacts from all senders, per channel, per day and per week."""
    db = get_session()
    holder = subscribers.get_or_create(db, g.phone)
    form = CapForm()
    if request.method == "GET":
        for channel, day, week in subscribers.parse_caps(holder.frequency_caps):
            form[f"{channel}_per_day"].data, form[f"{channel}_per_week"].data = day, week
    elif form.validate_on_submit():
        subscribers.set_frequency_caps(
            db,
            g.phone,
            {
                "sms": (form.sms_per_day.data, form.sms_per_week.data),
                "voice": (form.voice_per_day.data, form.voice_per_week.data),
            },
            HOLDER,
        )
        db.commit()
        flash(_("Saved. Senders beyond your cap are now told to wait."), "ok")
        return redirect(url_for("web.limits"))
    return render_template("web/limits.html", form=form, phone=g.phone)


@bp.route("/me/unsubscribe", methods=["GET", "POST"])
@holder_required
def unsubscribe() -> Any:
    """One-tap unsubscribe (一键退订): stop one, or every, sender allowed to contact you lately."""
    db = get_session()
    form = UnsubscribeForm()
    if form.validate_on_submit():
        one = None if form.everyone.data == "1" else int(form.sender_id.data or 0)
        try:
            done = unsubscribing.unsubscribe(db, HOLDER, g.phone, one)
            db.commit()
        except RegistryError:
            db.rollback()
            flash(_("That sender is not on your list."), "error")
        else:
            flash(
                _(
                    "Unsubscribed from %(count)d senders: from now on the registry tells them no.",
                    count=len(done),
                ),
                "ok",
            )
        return redirect(url_for("web.unsubscribe"))
    return render_template(
        "web/unsubscribe.html", rows=unsubscribing.allowed_senders(db, g.phone), form=form
    )


@bp.get("/me/checks")
@holder_required
def checks() -> Any:
    """Who asked the registry about this number, and what it answered."""
    db = get_session()
    rows = checks_for_phone(db, g.phone)
    filings.for_contacts(db, rows)  # the filed business behind an agent's check, in words
    return render_template("web/checks.html", rows=rows)


def _holder_key() -> str:
    return f"lookup-holder:{g.phone}"


def _no_question() -> bool:
    return not request.args.get("number", "").strip()


@bp.get("/me/lookup")
@holder_required
@limiter.limit(
    lambda: current_settings().ratelimit_lookup_holder,
    key_func=_holder_key,
    exempt_when=_no_question,
    error_message=lambda: _(
        "You looked up many numbers in a short time. Wait a while, then try again."
    ),
)
@limiter.limit(
    lambda: current_settings().ratelimit_lookup_client,
    exempt_when=_no_question,
    error_message=lambda: _(
        "Too many numbers were looked up from this connection. Wait a while, then try again."
    ),
)
def lookup() -> Any:
    """Who is calling me: the registered sender behind a number, and what it was told about mine."""
    form = LookupForm(request.args)
    answer = None
    if request.args and form.validate():
        db = get_session()
        try:
            answer = lookups.lookup_for_holder(
                db, g.phone, form.number.data or "", current_settings().default_region
            )
        except ValidationFailed:
            db.rollback()
            form.number.errors = [
                _("That is not a phone number or SMS port. Type it as it was shown to you.")
            ]
        else:
            db.commit()
    return render_template("web/lookup.html", form=form, answer=answer)


@bp.route("/me/complaints", methods=["GET", "POST"])
@holder_required
def complaint_list() -> Any:
    """File a complaint; see every complaint and its status."""
    db = get_session()
    form = ComplaintForm()
    # InputRequired guarantees contacted_at; the test narrows its type without an assert.
    if form.validate_on_submit() and form.contacted_at.data is not None:
        try:
            complaint, made = routing.lodge_once(
                db,
                current_settings(),
                form.once.data or "",
                g.phone,
                form.address.data or "",
                form.channel.data or "",
                to_utc(form.contacted_at.data, labels.zone(g.phone)),
                form.text.data,
                form.type.data or "no_consent",
            )
            db.commit()
        except ValidationFailed:  # another holder's form token is a NotFound: the 404 page
            db.rollback()
            form.contacted_at.errors = [_("The time of the contact cannot be in the future.")]
        else:
            if made:
                flash(
                    _(
                        "Complaint filed. The regulator answers every complaint; you will see the reply here."
                    ),
                    "ok",
                )
            else:
                flash(_("This complaint was already sent; here it is."), "ok")
            return redirect(url_for("web.complaint_detail", complaint_id=complaint.id))
    _fresh_once(form)
    return render_template(
        "web/complaints.html", form=form, items=complaints.for_phone(db, g.phone)
    )


def _fresh_once(form: Any) -> None:
    """Give a form that must take effect once the token of its next sending."""
    if not form.once.data or form.once.errors:
        form.once.data = secrets.token_urlsafe(24)


@bp.route("/me/complaints/<int:complaint_id>", methods=["GET", "POST"])
@holder_required
def complaint_detail(complaint_id: int) -> Any:
    """One complaint: what the check log says, and the thread with the regulator."""
    db = get_session()
    complaint = complaints.get(db, complaint_id)
    if complaint.phone != g.phone:
        abort(404)
    form = ReplyForm()
    if form.validate_on_submit():
        try:
            complaints.reply_once(
                db, form.once.data or "", complaint, form.body.data or "", author="holder"
            )
            db.commit()
        except ValidationFailed:
            db.rollback()
            form.once.errors = [str(ONCE_EXPIRED)]
        else:
            return redirect(url_for("web.complaint_detail", complaint_id=complaint_id))
    _fresh_once(form)
    return render_template(
        "web/complaint.html",
        complaint=complaint,
        thread=complaints.thread(db, complaint_id),
        form=form,
        verdict=desk.verdict(db, current_settings(), complaint),
        sender=desk.sender_of(db, complaint),
        steps=complaint_steps(db, complaint),
        business=filings.for_complaint(
            db,
            complaint.organization_id,
            complaint.agent_id,
            complaint.sender_id,
            complaint.address,
            complaint.contacted_at,
        ),
    )


@bp.get("/me/data")
@holder_required
def my_data() -> Any:
    """Every change to this number's record, newest first, a page at a time (``before``/``after``)."""
    keys, error = _page_keys()
    page = events.history_page(get_reader(), g.phone, **keys)  # reads only: no lock on SQLite
    return render_template(
        "web/data.html", page=page, paged=bool(keys), error=error, size=events.HISTORY_PAGE
    ), (400 if error else 200)


def _page_keys() -> tuple[dict[str, int], str | None]:
    """Read a page link's key (``before`` or ``after`` an event id); a bad one shows the newest."""
    given = {name: request.args[name] for name in ("before", "after") if name in request.args}
    if not given:
        return {}, None
    (name, raw), *others = given.items()
    if (
        others or not (raw.isascii() and raw.isdigit()) or len(raw) > 18
    ):  # ids are BIGINT: at most 18 digits here
        return {}, _("That page link is not valid. These are your newest changes.")
    return {name: int(raw)}, None


@bp.get("/me/data.json")
@holder_required
def my_data_json() -> Response:
    """Download everything the registry holds about this number, every event included.

    Streamed: the events are written a page at a time (events.each_for_phone),
    so a long history is neither cut short nor held in memory at once.
    """
    db = get_session()
    phone = g.phone
    holder = subscribers.get_or_create(db, phone)

    def plain(obj: Any) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in obj.model_dump().items()
        }

    head = {
        "phone": phone,
        "preferences": subscribers.preferences_of(holder),
        "senders": [
            {
                "sender": row["sender"].code if row["sender"] else None,
                "consents": [plain(c) for c in row["consents"]],
                "optouts": [plain(o) for o in row["optouts"]],
            }
            for row in holders.for_holder(db, phone)
        ],
        "checks": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in checks_for_phone(db, phone, 10_000)
        ],
        "complaints": [plain(c) for c in complaints.for_phone(db, phone)],
    }

    def body() -> Iterator[str]:
        # The events are read by a session opened here, while the response is
        # written: the request's own was closed at its teardown, which ran when
        # the view returned. Reused, it would open a transaction that nothing
        # closes (on SQLite, the writer lock held for good: every later write
        # of the process waited). Opened here, it is closed by the teardown
        # that follows the stream; on SQLite the reader takes no lock at all.
        reader = get_reader()
        opening = json.dumps(head, ensure_ascii=False, indent=2)
        yield opening[:-2] + ',\n  "events": ['
        for n, event in enumerate(events.each_for_phone(reader, phone)):
            yield ("," if n else "") + "\n    " + json.dumps(plain(event), ensure_ascii=False)
        yield "\n  ]\n}\n"

    return Response(
        stream_with_context(body()),
        mimetype="application/json",
        headers={"Content-Disposition": "attachment; filename=anning-my-data.json"},
    )


@bp.get("/me/consent-records.json")
@holder_required
def my_consent_records() -> Response:
    """Download this number's consents and refusals as ISO/IEC TS 27560 records (W3C DPV)."""
    doc = records.document(records.for_holder(get_session(), g.phone), phone=g.phone)
    return Response(
        json.dumps(doc, ensure_ascii=False, indent=2),
        mimetype="application/ld+json",
        headers={"Content-Disposition": "attachment; filename=anning-consent-records.jsonld"},
    )
