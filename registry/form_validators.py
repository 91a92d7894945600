"""WTForms validators shared by the citizen site's and the console's forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField
from wtforms.validators import ValidationError

from registry.timeutil import within_calendar


def within_calendar_field(form: FlaskForm, field: DateTimeLocalField) -> None:
    """Refuse a time the registry cannot compute with (registry.timeutil.within_calendar)."""
    if field.data is None:
        return
    try:
        within_calendar(field.data)
    except ValueError as exc:
        raise ValidationError(_l("Enter a time between the years 1900 and 9000.")) from exc
