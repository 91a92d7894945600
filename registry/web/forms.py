"""The citizen site's forms (Flask-WTF: CSRF on every one)."""

from __future__ import annotations

import re
import unicodedata

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    AnyOf,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from registry.form_validators import within_calendar_field
from registry.labels import CATEGORIES as CATEGORY_LABELS
from registry.labels import COMPLAINT_TYPES
from registry.senders.models import CATEGORIES


class PhoneForm(FlaskForm):
    """Step 1 of signing in: the number."""

    phone = StringField(
        _l("Your mobile number"),
        validators=[DataRequired(_l("Enter your mobile number.")), Length(max=40)],
    )


class LookupForm(FlaskForm):
    """Who is calling me: the number that called or texted (GET: a question, nothing changes)."""

    class Meta:
        csrf = False

    number = StringField(
        _l("The number that called or texted you"),
        validators=[DataRequired(_l("Enter the number that contacted you.")), Length(max=64)],
    )


class CodeForm(FlaskForm):
    """Step 2 of signing in: the code we texted."""

    phone = HiddenField(validators=[DataRequired(), Length(max=40)])
    code = StringField(
        _l("The 6-digit code we texted you"),
        validators=[
            DataRequired(_l("Enter the 6-digit code from the text message.")),
            Regexp(r"^\s*\d{6}\s*$", message=_l("Enter the 6 digits of the code.")),
        ],
    )


class MultiCheckbox(SelectMultipleField):
    """Checkboxes for a multiple choice, so the page needs no JavaScript."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


DURATIONS = [
    SelectChoice("forever", _l("Until I lift it")),
    SelectChoice("3m", _l("For 3 months")),
    SelectChoice("1y", _l("For 1 year")),
]
# On a page that shows a refusal already set: leave its end as it is.
KEEP_OR_DURATIONS = [SelectChoice("keep", _l("Keep as it is")), *DURATIONS]


def duration_field(label: str) -> SelectField:
    """Return the "for how long" choice of a refusal."""
    return SelectField(label, choices=KEEP_OR_DURATIONS, default="keep")


class PreferencesForm(FlaskForm):
    """Do-not-disturb, category blocks and quiet hours, each refusal for a time the holder chooses."""

    dnd_sms = BooleanField(_l("No marketing text messages"))
    dnd_voice = BooleanField(_l("No marketing calls"))
    dnd_sms_for = duration_field(_l("Texts refused for"))
    dnd_voice_for = duration_field(_l("Calls refused for"))
    categories = MultiCheckbox(
        _l("Block these kinds of marketing"),
        choices=[SelectChoice(c, CATEGORY_LABELS[c]) for c in CATEGORIES],
    )
    categories_for = duration_field(_l("How long these blocks last"))
    quiet_hours = StringField(
        _l("Quiet hours (for example 12:00-14:00)"),
        validators=[Optional(), Length(max=40)],
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
    )

    def validate_quiet_hours(self, field: StringField) -> None:
        """Accept ``9:00-10:00`` as well as ``09:00-10:00``; say what is wrong otherwise."""
        field.data = quiet_hours(field.data or "")


def quiet_hours(text: str) -> str:
    """Return quiet hours written ``H:MM-H:MM`` as ``HH:MM-HH:MM``, or raise a ValidationError that says what is wrong."""
    text = unicodedata.normalize("NFKC", text).replace(" ", "").replace("–", "-").replace("~", "-")
    if not text:
        return ""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", text)
    if match is None:
        raise ValidationError(
            _l("Write a start and an end time with a dash between them, like 12:00-14:00.")
        )
    start_h, start_m, end_h, end_m = (int(x) for x in match.groups())
    for hour, minute, written in (
        (start_h, start_m, text.split("-")[0]),
        (end_h, end_m, text.split("-")[1]),
    ):
        if hour > 23:
            raise ValidationError(
                _l("%(time)s is not a time of day: hours go from 0 to 23.", time=written)
            )
        if minute > 59:
            raise ValidationError(
                _l("%(time)s is not a time of day: minutes go from 00 to 59.", time=written)
            )
    if (start_h, start_m) == (end_h, end_m):
        raise ValidationError(
            _l("The start and the end are the same time; write two different times.")
        )
    return f"{start_h:02d}:{start_m:02d}-{end_h:02d}:{end_m:02d}"


class ConsentActionForm(FlaskForm):
    """Confirm or revoke one consent (the id is checked against the signed-in number)."""

    consent_id = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,18}$")])
    action = HiddenField(validators=[DataRequired(), Regexp(r"^(confirm|revoke)$")])


class BlockForm(FlaskForm):
    """Block a sender by its code, name, or the number that contacted you."""

    query = StringField(
        _l("Sender name, code, or the number that called or texted you"),
        validators=[
            DataRequired(_l("Enter the sender's name or code, or the number it used.")),
            Length(max=100),
        ],
    )


class TimedBlockForm(BlockForm):
    """Block a sender, for a time the holder chooses."""

    duration = SelectField(_l("For how long"), choices=DURATIONS, default="forever")


def cap_field(label: str) -> IntegerField:
    """Return one limit of the frequency cap (empty: no limit)."""
    return IntegerField(
        label,
        validators=[
            Optional(),
            NumberRange(1, 99, message=_l("Write a whole number from 1 to 99, or leave it empty.")),
        ],
    )


class CapForm(FlaskForm):
    """At most how many marketing contacts, from all senders together, per day and per week."""

    sms_per_day = cap_field(_l("Text messages per day"))
    sms_per_week = cap_field(_l("Text messages per week"))
    voice_per_day = cap_field(_l("Calls per day"))
    voice_per_week = cap_field(_l("Calls per week"))


class ExemptForm(FlaskForm):
    """Let one sender always reach the holder despite the cap, or no longer."""

    sender_id = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,18}$")])
    exempt = HiddenField(validators=[DataRequired(), AnyOf(["1", "0"])])


class UnsubscribeForm(FlaskForm):
    """Stop one sender of the list (its id) or, with ``everyone``, all of them."""

    sender_id = HiddenField(validators=[Optional(), Regexp(r"^\d{1,18}$")])
    everyone = HiddenField(validators=[Optional(), AnyOf(["1"])])


class UnblockForm(FlaskForm):
    """Lift your own block of a sender."""

    sender_id = HiddenField(validators=[DataRequired(), Regexp(r"^\d{1,18}$")])


ONCE_EXPIRED = _l("This form was not sent from its page. Check what you wrote and send it again.")


def once_field() -> HiddenField:
    """Return the hidden one-time token of a form that must not take effect twice."""
    return HiddenField(
        validators=[
            DataRequired(ONCE_EXPIRED),
            Regexp(r"^[A-Za-z0-9_-]{20,64}$", message=ONCE_EXPIRED),
        ]
    )


class ComplaintForm(FlaskForm):
    """Report an unwanted call or text."""

    address = StringField(
        _l("The number or SMS port it came from"),
        validators=[
            DataRequired(_l("Enter the number or SMS port that called or texted you.")),
            Length(max=32),
        ],
    )
    channel = RadioField(
        _l("It was a"),
        choices=[SelectChoice("sms", _l("text message")), SelectChoice("voice", _l("call"))],
        validators=[InputRequired(_l("Choose whether it was a text message or a call."))],
    )
    contacted_at = DateTimeLocalField(
        _l("When (your local time)"),
        validators=[
            InputRequired(_l("Enter the day and time of the call or text.")),
            within_calendar_field,
        ],
        format="%Y-%m-%dT%H:%M",
    )
    type = SelectField(
        _l("What was wrong"),
        choices=[SelectChoice(k, v) for k, v in COMPLAINT_TYPES.items()],
        default="no_consent",
        validators=[Optional()],  # a form sent without it (an older page) is "no consent"
    )
    text = TextAreaField(_l("What happened (optional)"), validators=[Optional(), Length(max=1000)])
    once = once_field()


class ReplyForm(FlaskForm):
    """Add to a complaint's thread."""

    body = TextAreaField(
        _l("Your message"),
        validators=[DataRequired(_l("Write your message before sending it.")), Length(max=1000)],
    )
    once = once_field()


class EmptyForm(FlaskForm):
    """A form with only its CSRF token (sign out, unblock...)."""
