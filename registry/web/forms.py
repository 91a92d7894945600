"""The citizen site's forms (Flask-WTF: CSRF on every one)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from registry.senders.models import CATEGORIES
from registry.timeutil import within_calendar


def _within_calendar(form: FlaskForm, field: DateTimeLocalField) -> None:
    """Refuse a time the registry cannot compute with (registry.timeutil.within_calendar)."""
    if field.data is None:
        return
    try:
        within_calendar(field.data)
    except ValueError as exc:
        raise ValidationError(_l("Enter a time between the years 1900 and 9000.")) from exc


class PhoneForm(FlaskForm):
    """Step 1 of signing in: the number."""

    phone = StringField(_l("Your mobile number"), validators=[DataRequired(), Length(max=40)])


class CodeForm(FlaskForm):
    """Step 2 of signing in: the code we texted."""

    phone = HiddenField(validators=[DataRequired(), Length(max=40)])
    code = StringField(
        _l("The 6-digit code we texted you"),
        validators=[
            DataRequired(),
            Regexp(r"^\s*\d{6}\s*$", message=_l("Enter the 6 digits of the code.")),
        ],
    )


class MultiCheckbox(SelectMultipleField):
    """Checkboxes for a multiple choice, so the page needs no JavaScript."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


CATEGORY_LABELS = {
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


class PreferencesForm(FlaskForm):
    """Do-not-disturb, category blocks and quiet hours."""

    dnd_sms = BooleanField(_l("No marketing text messages"))
    dnd_voice = BooleanField(_l("No marketing calls"))
    categories = MultiCheckbox(
        _l("Block these kinds of marketing"),
        choices=[SelectChoice(c, CATEGORY_LABELS[c]) for c in CATEGORIES],
    )
    quiet_hours = StringField(
        _l("Quiet hours (for example 12:00-14:00)"),
        validators=[
            Optional(),
            Regexp(
                r"^\s*\d{2}:\d{2}\s*-\s*\d{2}:\d{2}\s*$", message=_l("Write them like 12:00-14:00.")
            ),
        ],
    )


class ConsentActionForm(FlaskForm):
    """Confirm or revoke one consent (the id is checked against the signed-in number)."""

    consent_id = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,18}$")])
    action = HiddenField(validators=[DataRequired(), Regexp(r"^(confirm|revoke)$")])


class BlockForm(FlaskForm):
    """Block a sender by its code, name, or the number that contacted you."""

    query = StringField(
        _l("Sender name, code, or the number that called or texted you"),
        validators=[DataRequired(), Length(max=100)],
    )


class UnblockForm(FlaskForm):
    """Lift your own block of a sender."""

    sender_id = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,18}$")])


class ComplaintForm(FlaskForm):
    """Report an unwanted call or text."""

    address = StringField(
        _l("The number or SMS port it came from"), validators=[DataRequired(), Length(max=32)]
    )
    channel = RadioField(
        _l("It was a"),
        choices=[SelectChoice("sms", _l("text message")), SelectChoice("voice", _l("call"))],
        validators=[DataRequired()],
    )
    contacted_at = DateTimeLocalField(
        _l("When (your local time)"),
        validators=[DataRequired(), _within_calendar],
        format="%Y-%m-%dT%H:%M",
    )
    text = TextAreaField(_l("What happened (optional)"), validators=[Optional(), Length(max=1000)])


class ReplyForm(FlaskForm):
    """Add to a complaint's thread."""

    body = TextAreaField(_l("Your message"), validators=[DataRequired(), Length(max=1000)])


class EmptyForm(FlaskForm):
    """A form with only its CSRF token (sign out, unblock...)."""
