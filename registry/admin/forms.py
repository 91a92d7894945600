"""Console forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
)
from wtforms.widgets import CheckboxInput, ListWidget

from registry.form_validators import within_calendar_field
from registry.labels import BUSINESS_TYPES as BUSINESS_TYPE_LABELS
from registry.labels import KINDS as KIND_LABELS
from registry.orgs.models import BUSINESS_TYPES, KINDS, ROLES, SCOPES
from registry.senders.models import CATEGORIES

# A complaint's statuses as staff read them (the stored value stays the English code).
STATUS_LABELS = {"open": _l("open"), "answered": _l("answered"), "closed": _l("closed")}


class LoginForm(FlaskForm):
    """Email, password and the current TOTP code, in one step."""

    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1000)])
    code = StringField(
        _l("Code from your authenticator app"),
        validators=[DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_l("six digits"))],
    )


class ReplyForm(FlaskForm):
    """A reply to the holder; optionally changes the status in the same step."""

    body = TextAreaField(_l("Reply to the holder"), validators=[DataRequired(), Length(max=4000)])
    then_status = SelectField(
        _l("Then set the status to"),
        choices=[
            SelectChoice("", _l("leave as it is")),
            SelectChoice("answered", STATUS_LABELS["answered"]),
            SelectChoice("closed", _l("closed: this is the final answer (the holder is texted)")),
        ],
        validators=[Optional()],
    )


# A complaint's types as staff read them (registry/complaints/models.py TYPES).
TYPE_LABELS = {
    "no_consent": _l("marketing without consent"),
    "after_refusal": _l("contacted after a refusal"),
    "outside_hours": _l("outside calling hours"),
    "too_frequent": _l("too frequent"),
    "impersonation": _l("pretending to be someone else"),
    "fraud": _l("fraud (police channel)"),
    "threat": _l("threat (police channel)"),
}


class PhoneComplaintForm(FlaskForm):
    """A complaint taken by telephone, entered by staff for the holder."""

    phone = StringField(_l("The holder's number"), validators=[DataRequired(), Length(max=32)])
    address = StringField(
        _l("The number or SMS port it came from"), validators=[DataRequired(), Length(max=32)]
    )
    channel = SelectField(
        _l("Channel"), choices=[SelectChoice("sms", _l("sms")), SelectChoice("voice", _l("voice"))]
    )
    contacted_at = DateTimeLocalField(
        _l("When (Beijing time)"),
        validators=[DataRequired(), within_calendar_field],
        format="%Y-%m-%dT%H:%M",
    )
    type = SelectField(
        _l("Type"), choices=[SelectChoice(k, label) for k, label in TYPE_LABELS.items()]
    )
    text = TextAreaField(_l("What the holder said"), validators=[Optional(), Length(max=2000)])


class StatusForm(FlaskForm):
    """Change a complaint's status."""

    status = SelectField(
        _l("Status"),
        choices=[SelectChoice(s, label) for s, label in STATUS_LABELS.items()],
    )


class SuspendForm(FlaskForm):
    """Suspend a sender or organization: reason and duration."""

    reason = TextAreaField(_l("Reason (published)"), validators=[DataRequired(), Length(max=500)])
    days = IntegerField(
        _l("Duration in days"), default=30, validators=[DataRequired(), NumberRange(1, 3650)]
    )
    version = HiddenField()


class ConfirmForm(FlaskForm):
    """A button that only needs a CSRF token (lift, revoke)."""


class OrgForm(FlaskForm):
    """Create an organization."""

    slug = StringField(
        _l("Slug"),
        validators=[
            DataRequired(),
            Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", message=_l("a-z, 0-9, -")),
        ],
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r) for r in ROLES], default="sender")
    kind = SelectField(
        _l("Kind (call centers and SMS ports must file each outsourced business)"),
        choices=[SelectChoice(k, KIND_LABELS[k]) for k in KINDS],
        default="merchant",
    )
    credit_code = StringField(
        _l("Unified social credit code (18 characters)"),
        validators=[Optional(), Length(max=40)],
    )
    region = StringField(_l("Province or region"), validators=[Optional(), Length(max=64)])


class KindForm(FlaskForm):
    """What an organization is in the chain: merchant, call center, SMS port..."""

    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, KIND_LABELS[k]) for k in KINDS])


class SenderForm(FlaskForm):
    """Register a sender for an organization."""

    code = StringField(_l("Code"), validators=[DataRequired(), Length(min=2, max=64)])
    name = StringField(_l("Display name"), validators=[DataRequired(), Length(max=200)])
    category = SelectField(_l("Category"), choices=[SelectChoice(c) for c in CATEGORIES])
    addresses = TextAreaField(
        _l("Caller numbers and SMS ports (one per line)"), validators=[Length(max=2000)]
    )


class KeyForm(FlaskForm):
    """Create an API key."""

    name = StringField(_l("Label"), validators=[Optional(), Length(max=100)])


class QueueFilter(FlaskForm):
    """Filters of the complaint queue (GET: no CSRF)."""

    class Meta:
        csrf = False

    status = SelectField(
        _l("Status"),
        choices=[
            SelectChoice("", _l("any")),
            *(SelectChoice(s, label) for s, label in STATUS_LABELS.items()),
        ],
        validators=[Optional()],
    )
    org = StringField(_l("Organization (slug)"), validators=[Optional(), Length(max=64)])
    sender = StringField(_l("Sender (code)"), validators=[Optional(), Length(max=64)])
    older_than = IntegerField(
        _l("Older than (days)"), validators=[Optional(), NumberRange(0, 3650)]
    )
    overdue = SelectField(
        _l("Unanswered past the deadline"),
        choices=[SelectChoice("", _l("any")), SelectChoice("1", _l("only overdue"))],
        validators=[Optional()],
    )


class MultiCheckbox(SelectMultipleField):
    """Checkboxes for a multiple choice, so the page needs no JavaScript."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


SLUG = Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", message=_l("a-z, 0-9, -"))

SCOPE_LABELS = {
    "check": _l("check: ask the registry before contacting"),
    "optout": _l("optout: record opt-outs"),
    "consent": _l("consent: record consents"),
    "changes": _l("changes: read the change feed"),
}


class DelegationForm(FlaskForm):
    """Let an agent organization act for some of a principal's senders (same rules as the API)."""

    principal = StringField(
        _l("Principal (slug of the organization that owns the senders)"),
        validators=[DataRequired(), SLUG],
    )
    agent = StringField(
        _l("Agent (slug of the call center or SMS port)"), validators=[DataRequired(), SLUG]
    )
    senders = TextAreaField(
        _l("Sender codes of the principal (one per line or comma-separated)"),
        validators=[DataRequired(), Length(max=4000)],
    )
    scopes = MultiCheckbox(
        _l("Scopes"),
        choices=[SelectChoice(s, SCOPE_LABELS[s]) for s in SCOPES],
        default=["check"],
        validators=[DataRequired(message=_l("Choose at least one scope."))],
    )
    expires_at = DateTimeLocalField(
        _l("Expires at (UTC, optional)"),
        format="%Y-%m-%dT%H:%M",
        validators=[Optional(), within_calendar_field],
    )
    # The business filing (业务备案): required by the service when the agent is a
    # call center or an SMS port company; filed here on the principal's behalf.
    business_name = StringField(_l("Business name"), validators=[Optional(), Length(max=200)])
    business_type = SelectField(
        _l("Business type"),
        choices=[
            SelectChoice("", _l("choose")),
            *(SelectChoice(t, BUSINESS_TYPE_LABELS[t]) for t in BUSINESS_TYPES),
        ],
        default="",
    )
    addresses = TextAreaField(
        _l("Outbound numbers and SMS ports (addresses of the senders, one per line)"),
        validators=[Optional(), Length(max=4000)],
    )
    targets = TextAreaField(_l("Whom it contacts"), validators=[Optional(), Length(max=1000)])
    content = TextAreaField(_l("What it tells them"), validators=[Optional(), Length(max=2000)])
    contact_name = StringField(_l("Contact person"), validators=[Optional(), Length(max=100)])
    contact_phone = StringField(_l("Contact telephone"), validators=[Optional(), Length(max=64)])

    FILING_FIELDS = ("business_name", "addresses", "targets", "content", "contact_name",
                     "contact_phone")  # fmt: skip

    def filed(self) -> bool:
        """Tell whether any part of the filing was filled in."""
        return any((self[name].data or "").strip() for name in self.FILING_FIELDS)


class DelegationFilter(FlaskForm):
    """Filters of the delegation list (GET: no CSRF)."""

    class Meta:
        csrf = False

    principal = StringField(_l("Principal (slug)"), validators=[Optional(), Length(max=64)])
    agent = StringField(_l("Agent (slug)"), validators=[Optional(), Length(max=64)])
    state = SelectField(
        _l("State"),
        choices=[
            SelectChoice("", _l("any")),
            SelectChoice("active", _l("active")),
            SelectChoice("revoked", _l("revoked")),
            SelectChoice("expired", _l("expired")),
        ],
        validators=[Optional()],
    )


PREFIX = Regexp(r"^\s*\+[0-9 ]{1,20}\s*$", message=_l("+ and digits, e.g. +86138"))


class RangeForm(FlaskForm):
    """Assign a number range (号段) to a carrier, or sub-assign part of a host's range."""

    prefix = StringField(_l("Prefix (E.164, e.g. +86138)"), validators=[DataRequired(), PREFIX])
    carrier = StringField(_l("Carrier (slug)"), validators=[DataRequired(), SLUG])
    host = StringField(
        _l("Host carrier (slug; only for an MVNO's sub-range)"), validators=[Optional(), SLUG]
    )


class NumberLookup(FlaskForm):
    """Look up a number: the range that holds it and its disconnections (GET: no CSRF)."""

    class Meta:
        csrf = False

    phone = StringField(_l("Number"), validators=[Optional(), Length(max=64)])


class RetractForm(FlaskForm):
    """Retract a wrong disconnection: the reason is kept and audited."""

    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class IdentityForm(FlaskForm):
    """An organization's credit code and region."""

    credit_code = StringField(
        _l("Unified social credit code (18 characters)"),
        validators=[Optional(), Length(max=40)],
    )
    region = StringField(_l("Province or region"), validators=[Optional(), Length(max=64)])
    version = HiddenField()


MEASURE_LABELS = {
    "notice": _l("Notice (通报)"),
    "interview": _l("Interview (约谈)"),
    "rectification": _l("Rectification order (责令整改)"),
    "fine": _l("Fine"),
    "listing": _l("Listing on the credit list"),
    "address": _l("Suspension of one address"),
}


class MeasureForm(FlaskForm):
    """One measure against an organization; which fields count depends on the kind."""

    kind = SelectField(
        _l("Measure"), choices=[SelectChoice(k, v) for k, v in MEASURE_LABELS.items()]
    )
    # Own ids: the page's suspension form has fields of the same names.
    reason = TextAreaField(
        _l("Reason (published)"),
        id="measure-reason",
        validators=[DataRequired(), Length(max=500)],
    )
    complaints = StringField(
        _l("Evidence: complaint ids (comma-separated)"), validators=[Optional(), Length(max=1000)]
    )
    checks = StringField(
        _l("Evidence: check ids (comma-separated)"), validators=[Optional(), Length(max=1000)]
    )
    meets_at = DateTimeLocalField(
        _l("Interview date (UTC)"), format="%Y-%m-%dT%H:%M", validators=[Optional()]
    )
    minutes = TextAreaField(_l("Interview minutes"), validators=[Optional(), Length(max=4000)])
    deadline = DateTimeLocalField(
        _l("Rectification deadline (UTC)"), format="%Y-%m-%dT%H:%M", validators=[Optional()]
    )
    illegal_gains = IntegerField(
        _l("Illegal gains (yuan)"), validators=[Optional(), NumberRange(0, 10**9)]
    )
    amount = IntegerField(_l("Fine (yuan)"), validators=[Optional(), NumberRange(1, 10**9)])
    days = IntegerField(
        _l("Duration in days (listing, address)"),
        id="measure-days",
        default=30,
        validators=[Optional(), NumberRange(1, 3650)],
    )
    address = StringField(_l("Address to suspend"), validators=[Optional(), Length(max=32)])
    version = HiddenField()


class LiftForm(FlaskForm):
    """End a measure before its time: the reason is required."""

    lift_reason = TextAreaField(
        _l("Reason for lifting early"), validators=[DataRequired(), Length(max=500)]
    )
    version = HiddenField()


class VersionForm(FlaskForm):
    """A button acting on an organization (a fine paid, a rectification done)."""

    version = HiddenField()


class ReviewForm(FlaskForm):
    """Draft (or redraft) a quarter's public review."""

    quarter = StringField(
        _l("Quarter (e.g. 2026Q3)"),
        validators=[DataRequired(), Regexp(r"^\s*\d{4}[Qq][1-4]\s*$", message=_l("like 2026Q3"))],
    )
    note = TextAreaField(
        _l("The regulator's note (published with the review)"),
        validators=[Optional(), Length(max=4000)],
    )
