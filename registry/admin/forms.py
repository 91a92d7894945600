"""Console forms (Flask-WTF: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from registry.orgs.models import ROLES
from registry.senders.models import CATEGORIES


class LoginForm(FlaskForm):
    """Email, password and the current TOTP code, in one step."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    code = StringField(
        "Code from your authenticator app",
        validators=[DataRequired(), Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="six digits")],
    )


class ReplyForm(FlaskForm):
    """A reply to the holder; optionally changes the status in the same step."""

    body = TextAreaField("Reply to the holder", validators=[DataRequired(), Length(max=4000)])
    then_status = SelectField(
        "Then set the status to",
        choices=[
            SelectChoice("", "leave as it is"),
            SelectChoice("answered", "answered"),
            SelectChoice("closed", "closed"),
        ],
        validators=[Optional()],
    )


class StatusForm(FlaskForm):
    """Change a complaint's status."""

    status = SelectField(
        "Status",
        choices=[
            SelectChoice("open", "open"),
            SelectChoice("answered", "answered"),
            SelectChoice("closed", "closed"),
        ],
    )


class SuspendForm(FlaskForm):
    """Suspend a sender or organization: reason and duration."""

    reason = TextAreaField("Reason (published)", validators=[DataRequired(), Length(max=500)])
    days = IntegerField(
        "Duration in days", default=30, validators=[DataRequired(), NumberRange(1, 3650)]
    )


class ConfirmForm(FlaskForm):
    """A button that only needs a CSRF token (lift, revoke)."""


class OrgForm(FlaskForm):
    """Create an organization."""

    slug = StringField(
        "Slug",
        validators=[DataRequired(), Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", message="a-z, 0-9, -")],
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    role = SelectField("Role", choices=[SelectChoice(r) for r in ROLES], default="sender")


class SenderForm(FlaskForm):
    """Register a sender for an organization."""

    code = StringField("Code", validators=[DataRequired(), Length(min=2, max=64)])
    name = StringField("Display name", validators=[DataRequired(), Length(max=200)])
    category = SelectField("Category", choices=[SelectChoice(c) for c in CATEGORIES])
    addresses = TextAreaField(
        "Caller numbers and SMS ports (one per line)", validators=[Length(max=2000)]
    )


class KeyForm(FlaskForm):
    """Create an API key."""

    name = StringField("Label", validators=[Optional(), Length(max=100)])


class QueueFilter(FlaskForm):
    """Filters of the complaint queue (GET: no CSRF)."""

    class Meta:
        csrf = False

    status = SelectField(
        "Status",
        choices=[
            SelectChoice("", "any"),
            SelectChoice("open", "open"),
            SelectChoice("answered", "answered"),
            SelectChoice("closed", "closed"),
        ],
        validators=[Optional()],
    )
    org = StringField("Organization (slug)", validators=[Optional(), Length(max=64)])
    sender = StringField("Sender (code)", validators=[Optional(), Length(max=64)])
    older_than = IntegerField("Older than (days)", validators=[Optional(), NumberRange(0, 3650)])
    overdue = SelectField(
        "Unanswered past the deadline",
        choices=[SelectChoice("", "any"), SelectChoice("1", "only overdue")],
        validators=[Optional()],
    )
