"""One place that turns domain errors into responses: pages for people, JSON for the API.

Service messages arrive in English; `translate` turns them into the reader's language through the
`messages` catalogue (a `crm.errors.Msg` by its template and values, any other text by itself, and
the few messages with values from the engine and the validators by the patterns below).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _

from crm.errors import Msg
from engine.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound

STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, InvalidInput: 422}

# Messages with values that do not come as a `Msg`: the engine's (plain f-strings), the JSON Schema
# validator's that it passes on per field, and marshmallow's at the API. Each is a catalogue key;
# its pattern is made from it.
PATTERNED_MESSAGES = (
    # Repairs (engine/repair, engine/instances): the specific ones before the general ones.
    "process instance %(id)s changed since you looked at it (version %(seen)s, now "
    "%(now)s): review it again",
    "process instance %(id)s cannot move to version %(version)s: %(reasons)s",
    "process instance %(id)s is already on version %(version)s",
    "process instance %(id)s has no open task at '%(element)s'",
    "process instance %(id)s has no open task",
    "process instance %(id)s is %(status)s: resume it first",
    "process instance %(id)s is %(status)s, not in error",
    "process instance %(id)s is %(status)s, not suspended",
    "process instance %(id)s is already %(status)s",
    "process instance %(id)s is %(status)s",
    "there is no live token at '%(element)s'",
    "no token at '%(element)s'",
    "'%(target)s' is not a task or event of the same process as '%(source)s'",
    "'%(target)s' is a %(kind)s: a token can only move to a task or an intermediate or end event",
    "'%(target)s' is not a valid target here",
    "process version %(id)s does not exist",
    "the chosen version is v%(version)s of '%(process)s', not of '%(own)s'",
    "the boundary events on '%(element)s' differ in version %(version)s",
    "a token waits at '%(element)s', which version %(version)s lacks",
    "the history passes through '%(element)s', which version %(version)s lacks",
    "'%(element)s' is a %(old)s here but a %(new)s in version %(version)s",
    "'%(element)s' calls '%(old)s' here, '%(new)s' in version %(version)s",
    "version %(version)s does not contain process '%(process)s'",
    "the open task '%(element)s' is not in version %(version)s",
    "the timer '%(element)s' is not in version %(version)s",
    "the message catch '%(element)s' is not in version %(version)s",
    "the instance is %(status)s",
    "more than %(n)s characters",
    "the data is not valid JSON (%(detail)s)",
    "line %(line)s, column %(column)s: %(detail)s",
    "more than %(n)s keys",
    "not a variable name: %(names)s",
    "unknown action '%(action)s'",
    "%(count)s instances selected, at most %(max)s at once",
    "narrow the filter to at most %(max)s instances",
    "please fill in: %(fields)s",
    "failed again at '%(element)s': %(message)s",
    "it is %(status)s",
    "repair report %(id)s does not exist",
    "please correct: %(fields)s",
    "task %(id)s does not exist",
    "task '%(title)s' was already %(status)s",
    "task '%(title)s' is not yours to complete",
    "task '%(title)s' is not yours",
    "task '%(title)s' is no longer waiting for input",
    "task '%(title)s' is already claimed by %(user)s",
    "task '%(title)s' is not offered to you",
    "task '%(title)s' is not claimed by you",
    "task '%(title)s' has no group to return to",
    "its process instance is %(status)s",
    "process instance %(id)s does not exist",
    "no deployed process with id '%(id)s'",
    "%(value)s is not of type %(type)s",
    "%(value)s is not one of %(choices)s",
    "%(value)s is too long",
    "%(value)s is too short",
    "%(value)s is less than or equal to the minimum of %(limit)s",
    "%(value)s is greater than or equal to the maximum of %(limit)s",
    "%(value)s is less than the minimum of %(limit)s",
    "%(value)s is greater than the maximum of %(limit)s",
    "%(value)s does not match %(pattern)s",
    "Must be one of: %(choices)s.",
    "Length must be between %(min)s and %(max)s.",
    "Shorter than minimum length %(min)s.",
    "Longer than maximum length %(max)s.",
    "Must be greater than or equal to %(min)s and less than or equal to %(max)s.",
    "Must be greater than or equal to %(min)s.",
    "Must be less than or equal to %(max)s.",
)
_PLACEHOLDER = re.compile(r"%\\\((\w+)\\\)s")


def _pattern(msgid: str) -> re.Pattern[str]:
    return re.compile(_PLACEHOLDER.sub(r"(?P<\1>.+)", re.escape(msgid)), re.DOTALL)


_PATTERNS = [(_pattern(m), m) for m in PATTERNED_MESSAGES]


def translate(text: Any) -> str:
    """Return a service message in the reader's language (unknown text stays as it is)."""
    if text is None:
        return ""
    if isinstance(text, Msg):
        params = {k: translate(v) if isinstance(v, Msg) else v for k, v in text.params.items()}
        return _(text.msgid, **params) if params else _(text.msgid)
    text = str(text)
    if not text.strip():
        return text  # the empty key is the catalogue's header
    found = _(text)
    if found != text:
        return found
    matched = _match_pattern(text)
    if matched is not None:
        msgid, values = matched
        return _(msgid, **dict(values))
    return text


@lru_cache(maxsize=4096)
def _match_pattern(text: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """Find which message with values `text` is (the same for every language, so remembered)."""
    for pattern, msgid in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            return msgid, tuple(match.groupdict().items())
    return None


def translate_fields(fields: Mapping[str, list[Any]] | None) -> dict[str, list[str]]:
    """Translate every field message of an InvalidInput."""
    return {name: [translate(m) for m in messages] for name, messages in (fields or {}).items()}


def _status_of(error: EngineError) -> int:
    for cls, status in STATUS.items():
        if isinstance(error, cls):
            return status
    return 400


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    from flask_wtf.csrf import CSRFError

    app.add_template_filter(translate, "tr")

    @app.errorhandler(EngineError)
    def domain_error(error: EngineError) -> Any:
        status = _status_of(error)
        message = translate(error.message)
        fields = translate_fields(getattr(error, "fields", None))
        if _wants_json():
            return jsonify({"error": message, "fields": fields}), status
        return render_template(
            "errors/error.html", status=status, message=message, fields=fields
        ), status

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        message = _(
            "The form expired or did not come from this site. Reload the page and try again."
        )
        if _wants_json():
            return jsonify({"error": message}), 400
        return render_template("errors/error.html", status=400, message=message, fields={}), 400

    for status in (403, 404, 405, 413, 429, 500):
        app.register_error_handler(status, _http_error(status))


def _http_error(status: int) -> Any:
    def handle(error: Exception) -> Any:
        message = getattr(error, "description", None) or _("Something went wrong.")
        if _wants_json():
            return jsonify({"error": message}), status
        return render_template(
            "errors/error.html", status=status, message=message, fields={}
        ), status

    return handle
