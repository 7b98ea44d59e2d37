"""Field messages in the reader's language."""

from __future__ import annotations

from flask_babel import gettext as _

from webapp.errors import translate
from webapp.taskforms.values import FieldMessage


def describe(message: FieldMessage) -> str:
    """Return the message for a field problem, translated."""
    params = message.params
    limit = params.get("limit")
    texts = {
        "required": lambda: _("This field is required."),
        "not_number": lambda: _("“%(text)s” is not a number.", text=params.get("text", "")),
        "not_integer": lambda: _("“%(text)s” is not a whole number.", text=params.get("text", "")),
        "not_date": lambda: _(
            "“%(text)s” is not a date (use YYYY-MM-DD).", text=params.get("text", "")
        ),
        "not_option": lambda: _("Choose one of the options."),
        "minimum": lambda: _("Must be at least %(limit)s.", limit=limit),
        "maximum": lambda: _("Must be at most %(limit)s.", limit=limit),
        "exclusiveMinimum": lambda: _("Must be more than %(limit)s.", limit=limit),
        "exclusiveMaximum": lambda: _("Must be less than %(limit)s.", limit=limit),
        "minLength": lambda: (
            _("This field is required.")
            if limit == 1
            else _("Use at least %(limit)s characters.", limit=limit)
        ),
        "maxLength": lambda: _("Use at most %(limit)s characters.", limit=limit),
        "minItems": lambda: _("Give at least %(limit)s.", limit=limit),
        "maxItems": lambda: _("Give at most %(limit)s.", limit=limit),
        "multipleOf": lambda: _("Must be a multiple of %(limit)s.", limit=limit),
        "pattern": lambda: _("Does not have the expected form."),
        "format": lambda: _("Not a valid %(limit)s.", limit=limit),
        "uniqueItems": lambda: _("Give each value only once."),
        "type": lambda: _("Has the wrong kind of value."),
    }
    text = texts.get(message.code)
    if text:
        return text()
    # The engine's and the JSON Schema validator's own messages (English text).
    return translate(params.get("text")) or _("This value is not valid.")
