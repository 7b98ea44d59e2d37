"""Render task form fields as HTML (Jinja, autoescaped), with messages beside each field."""

from __future__ import annotations

from flask import render_template
from markupsafe import Markup

from webapp.taskforms.fields import FormField
from webapp.taskforms.messages import describe
from webapp.taskforms.values import FieldErrors


def render_fields(
    fields: list[FormField], errors: FieldErrors | None = None, *, action: str | None = None
) -> Markup:
    """Return the inputs of a form; `action` (the form's URL) lets rows be added in place."""
    return Markup(  # noqa: S704  (the template autoescapes every value)
        render_template(
            "inbox/_fields.html",
            fields=fields,
            errors=errors or {},
            action=action,
            describe=describe,
        )
    )
