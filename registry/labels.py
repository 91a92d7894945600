"""What the registry's codes mean, in words of the page's language, and times in the number's zone.

The registry stores and answers in codes (``deny``, ``no_consent``, ``sms,voice``,
``consent.created``, ``no_check``) and in UTC; people read words and their own
clock. This module is the one place a code becomes words (through Flask-Babel,
so each label is translated once in the catalogue) and a stored time becomes
the local time of the number it concerns, with the zone named. Templates reach
it through the filters and globals :func:`init_app` installs; a code that has
no label yet is shown as it is rather than hidden.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, get_timezone_name
from flask import Flask, g
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from registry import phones
from registry.config import current_settings

DECISIONS = {"allow": _l("allowed"), "deny": _l("refused")}

# SPEC §3: every reason a check can give.
REASONS = {
    "sender_suspended": _l("the sender is suspended by the regulator"),
    "unregistered_caller": _l("it called from a number not registered to it"),
    "not_marketing": _l("not marketing (a service message)"),
    "opted_out": _l("you blocked this sender"),
    "consent": _l("you agreed to this sender"),
    "consent_pending": _l("your consent is not confirmed yet"),
    "reassigned": _l("the consent was given by an earlier holder of the number"),
    "category_blocked": _l("you blocked this kind of marketing"),
    "dnd": _l("your do-not-disturb setting"),
    "no_consent": _l("you never agreed to it"),
    "not_registered": _l("nothing is recorded for your number"),
    "quiet_hours": _l("outside the allowed hours"),
    "frequency_capped": _l("over the number of contacts you allow"),
}

CATEGORIES = {
    "finance": _l("Banking, loans and credit cards"),
    "insurance": _l("Insurance"),
    "real_estate": _l("Property and real estate"),
    "education": _l("Education and training courses"),
    "health": _l("Health, medicine and beauty"),
    "employment": _l("Jobs and recruitment"),
    "travel": _l("Travel and hotels"),
    "retail": _l("Shopping and online stores"),
    "automotive": _l("Cars and car services"),
    "telecom": _l("Phone and broadband plans"),
    "food": _l("Food and restaurants"),
    "other": _l("Everything else"),
}

CHANNELS = {"sms": _l("text messages"), "voice": _l("calls")}
CHANNEL = {"sms": _l("text message"), "voice": _l("call")}

CONSENT_STATUSES = {
    "pending": _l("waiting for your confirmation"),
    "active": _l("in force"),
    "revoked": _l("withdrawn"),
    "expired": _l("expired"),
    "void": _l("void (given by an earlier holder of the number)"),
}

COMPLAINT_STATUSES = {
    "open": _l("waiting for an answer"),
    "answered": _l("answered"),
    "closed": _l("closed"),
}

# How a sender says it obtained a consent, and where an opt-out came from
# (free text from the sender; the usual ones have words).
EVIDENCE_METHODS = {
    "web_form": _l("a form on a website"),
    "app": _l("a form in an app"),
    "paper": _l("a paper form"),
    "call": _l("a phone call"),
    "voice_recording": _l("a recorded phone call"),
    "sms": _l("a text message"),
    "sms_reply": _l("your reply by text message"),
    "otp": _l("a code you typed"),
    "site": _l("this site"),
    "synthetic": _l("generated test data"),
}

# Where an opt-out came from (free text from the sender; the usual ones have words).
OPTOUT_SOURCES = {
    "site": _l("you blocked it on this site"),
    "sms_reply": _l("you replied to its text message"),
    "call": _l("you said so on a call"),
    "sms": _l("you said so by text message"),
    "web_form": _l("you said so on its website"),
    "app": _l("you said so in its app"),
    "synthetic": _l("generated test data"),
}

EVENTS = {
    "consent.created": _l("Consent recorded"),
    "consent.confirmed": _l("Consent confirmed"),
    "consent.revoked": _l("Consent withdrawn"),
    "consent.expired": _l("Consent expired"),
    "consent.voided": _l("Consent voided"),
    "optout.recorded": _l("Sender blocked"),
    "optout.withdrawn": _l("Sender unblocked"),
    "preferences.changed": _l("Do-not-disturb settings changed"),
    "number.disconnected": _l("Number reported disconnected"),
}

STATES = {
    **CONSENT_STATUSES,
    "set": _l("saved"),
    "reset": _l("cleared"),
    "opted_out": _l("blocked"),
    "withdrawn": _l("unblocked"),
    "disconnected": _l("disconnected"),
}

VIA = {
    "api": _l("through the registry's API"),
    "site": _l("on this site"),
    "sms": _l("by text message"),
    "otp": _l("with a texted code"),
    "cli": _l("from the command line"),
    "system": _l("automatically"),
}

ACTORS = {
    "subscriber": _l("you"),
    "system": _l("the registry"),
    "demo": _l("the registry's demo data"),
}

# What a holder complains of (registry/complaints/models.py TYPES).
COMPLAINT_TYPES = {
    "no_consent": _l("marketing I never agreed to"),
    "after_refusal": _l("they contacted me after I refused"),
    "outside_hours": _l("outside the allowed calling hours"),
    "too_frequent": _l("too often"),
    "impersonation": _l("they pretended to be someone else"),
    "fraud": _l("fraud or a scam"),
    "threat": _l("a threat"),
}

# How a reporting platform verified that the holder holds the number.
VERIFICATIONS = {
    "sms_code": _l("a code it texted to your number"),
    "carrier_account": _l("your carrier account for this number"),
    "device_sim": _l("the SIM card in your phone"),
}

# The sector desks (registry/complaints/sectors.py), as the holder reads them.
SECTORS = {
    "financial": _l("the financial regulator"),
    "housing": _l("the housing authority"),
    "health": _l("the health authority"),
    "education": _l("the education authority"),
    "employment": _l("the employment authority"),
    "travel": _l("the tourism authority"),
}

VERDICTS = {
    "no_check": _l("the sender did not ask the registry before contacting you"),
    "contacted_despite_deny": _l("the sender contacted you although the registry said no"),
    "allowed": _l("the registry allowed this contact"),
    "unknown_sender": _l("no registered sender uses that number"),
}


def label(table: dict[str, Any], code: str | None) -> str:
    """Return the words for ``code`` in ``table`` (the code itself when it has none)."""
    if code is None:
        return ""
    return str(table.get(code, code))


def channels(codes: str | Iterable[str] | None) -> str:
    """Return ``sms,voice`` as "text messages, calls" in the page's language."""
    if not codes:
        return ""
    items = codes.split(",") if isinstance(codes, str) else list(codes)
    return str(_l(", ")).join(label(CHANNELS, c.strip()) for c in items if c.strip())


def actor(code: str | None, organizations: dict[str, str] | None = None) -> str:
    """Return who made a change: you, the registry, or the organization by name."""
    if code is None:
        return ""
    kind, _, slug = code.partition(":")
    if slug and kind in ("org", "carrier"):
        return (organizations or {}).get(slug, slug)
    return label(ACTORS, code)


def zone(phone: str | None = None) -> ZoneInfo:
    """Return the local zone of ``phone`` (the signed-in number by default), as checks use it."""
    settings = current_settings()
    phone = phone or g.get("phone")
    return phones.zone_of(phone, settings.timezone) if phone else settings.tz


def zone_name(phone: str | None = None) -> str:
    """Return the name of the number's zone in the page's language ("China Time", "中国时间")."""
    return str(get_timezone_name(zone(phone), "long", locale=str(get_locale())))


def local_time(value: datetime | None, phone: str | None = None, *, named: bool = True) -> str:
    """Return a stored (UTC) time as the number's local time, the zone named unless told not to."""
    if value is None:
        return ""
    pattern = "yyyy-MM-dd HH:mm zzzz" if named else "yyyy-MM-dd HH:mm"
    return str(format_datetime(value, pattern, tzinfo=zone(phone), locale=str(get_locale())))


def local_input(value: datetime, phone: str | None = None) -> str:
    """Return a time as a ``datetime-local`` input value in the number's zone."""
    return value.astimezone(zone(phone)).strftime("%Y-%m-%dT%H:%M")


# What an organization is in the chain of responsibility (registry/orgs/models.py KINDS).
KINDS = {
    "merchant": _l("merchant"),
    "call_center": _l("call center"),
    "sms_port": _l("SMS port company"),
    "platform": _l("platform"),
    "carrier": _l("carrier"),
    "other": _l("other organization"),
}

# The business type of a filing (业务备案; registry/orgs/models.py BUSINESS_TYPES).
BUSINESS_TYPES = {
    "marketing": _l("marketing"),
    "customer_service": _l("customer service"),
    "collection": _l("debt collection"),
    "survey": _l("surveys"),
    "notification": _l("notifications"),
    "other": _l("other business"),
}


def chain(business: Any, channel: str | None = None) -> str:
    """Say a filed business in plain words: "Blue Sky Call Center, calling for Acme Bank about credit cards"."""
    names = {
        "agent": business.agent_name,
        "principal": business.principal_name,
        "business": business.business_name,
    }
    if channel == "sms":
        return str(gettext("%(agent)s, texting for %(principal)s about %(business)s", **names))
    return str(gettext("%(agent)s, calling for %(principal)s about %(business)s", **names))


def init_app(app: Flask) -> None:
    """Give templates the labels: ``code|decision``, ``code|reason``, ``t|local_time`` ..."""
    filters = {
        "decision_label": lambda c: label(DECISIONS, c),
        "reason_label": lambda c: label(REASONS, c),
        "channel_label": lambda c: label(CHANNEL, c),
        "category_label": lambda c: label(CATEGORIES, c),
        "channels_label": channels,
        "consent_status_label": lambda c: label(CONSENT_STATUSES, c),
        "complaint_status_label": lambda c: label(COMPLAINT_STATUSES, c),
        "evidence_label": lambda c: label(EVIDENCE_METHODS, c),
        "optout_source_label": lambda c: label(OPTOUT_SOURCES, c),
        "event_label": lambda c: label(EVENTS, c),
        "state_label": lambda c: label(STATES, c),
        "via_label": lambda c: label(VIA, c),
        "actor_label": actor,
        "verdict_label": lambda c: label(VERDICTS, c),
        "complaint_type_label": lambda c: label(COMPLAINT_TYPES, c),
        "verification_label": lambda c: label(VERIFICATIONS, c),
        "sector_label": lambda c: label(SECTORS, c),
        "kind_label": lambda c: label(KINDS, c),
        "business_type_label": lambda c: label(BUSINESS_TYPES, c),
        "local_time": local_time,
    }
    app.jinja_env.filters.update(filters)
    app.jinja_env.globals["zone_name"] = zone_name
    app.jinja_env.globals["time_tag"] = _time_tag
    app.jinja_env.globals["chain"] = chain


def _time_tag(value: datetime | None, phone: str | None = None, *, named: bool = True) -> Markup:
    """Return a ``<time>`` element: local words inside, the exact UTC instant in ``datetime``."""
    if value is None:
        return Markup("")
    return Markup('<time datetime="{}">{}</time>').format(
        value.isoformat().replace("+00:00", "Z"), local_time(value, phone, named=named)
    )
