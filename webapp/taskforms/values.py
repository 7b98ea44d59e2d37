"""Turn submitted text into typed values per schema, and check them against the schema.

Problems are `FieldMessage`s keyed by field path ("" for the form as a whole): a code and its
parameters, translated only when shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from jsonschema import Draft202012Validator, validators

from webapp.taskforms.fields import FormField, Option

_MISSING = object()
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
_INTEGER = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_TEXT = 100_000


@dataclass(frozen=True)
class FieldMessage:
    code: str
    params: dict[str, Any] = field(default_factory=dict)


FieldErrors = dict[str, list[FieldMessage]]


def _add(errors: FieldErrors, path: str, code: str, **params: Any) -> None:
    errors.setdefault(path, []).append(FieldMessage(code, params))


def parse_decimal(text: str) -> Decimal | None:
    """Read a number as people type it ("1234.5", "1,234.50"); None if it is not one."""
    text = text.strip().replace(" ", "")
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only plain decimals
        return None


def _choice(options: list[Option], text: str) -> Any:
    return next((o.const for o in options if o.value == text), _MISSING)


def _number(node: FormField, text: str, errors: FieldErrors) -> Any:
    if node.kind == "integer":
        cleaned = text.replace(",", "") if _GROUPED.fullmatch(text) else text
        if not _INTEGER.fullmatch(cleaned):
            _add(errors, node.path, "not_integer", text=text)
            return _MISSING
        return int(cleaned)
    number = parse_decimal(text)
    if number is None:
        _add(errors, node.path, "not_number", text=text)
        return _MISSING
    return (
        int(number) if number == number.to_integral_value() and "." not in text else float(number)
    )


def _leaf(node: FormField, errors: FieldErrors) -> Any:
    text = node.text.strip()[:MAX_TEXT]
    if node.kind == "boolean":
        return node.checked
    if not text:
        return _MISSING
    if node.kind in ("select", "radio"):
        value = _choice(node.options, text)
        if value is _MISSING:
            _add(errors, node.path, "not_option")
        return value
    if node.kind in ("number", "money", "integer"):
        return _number(node, text, errors)
    if node.kind == "date":
        try:
            if not _DATE.fullmatch(text):
                raise ValueError(text)
            return date.fromisoformat(text).isoformat()
        except ValueError:
            _add(errors, node.path, "not_date", text=text)
            return _MISSING
    return text


def _list(node: FormField, errors: FieldErrors) -> Any:
    if node.kind == "list":
        lines = [line.strip() for line in node.text.splitlines() if line.strip()]
        item = node.schema.get("items") if isinstance(node.schema.get("items"), dict) else {}
        item_kind = {"number": "number", "integer": "integer"}.get(item.get("type"), "string")
        values = []
        for line in lines:
            probe = FormField(node.name, node.path, item_kind, node.label, raw=[line])
            value = _leaf(probe, errors)
            if value is not _MISSING:
                values.append(value)
    else:
        values = []
        for text in node.raw:
            value = _choice(node.options, text)
            if value is _MISSING:
                _add(errors, node.path, "not_option")
            else:
                values.append(value)
    return values if values or node.required else _MISSING


def _value(node: FormField, errors: FieldErrors) -> Any:
    if node.kind == "object":
        values = coerce(node.children, errors)
        return values if values or node.required else _MISSING
    if node.kind == "rows":
        rows = [coerce(row.children, errors) for row in node.children]
        return rows if rows or node.required else _MISSING
    if node.kind in ("list", "multiselect", "checkboxes"):
        return _list(node, errors)
    return _leaf(node, errors)


def coerce(fields: list[FormField], errors: FieldErrors | None = None) -> dict[str, Any]:
    """Return the typed values of the fields; text that cannot be read is added to `errors`.

    Empty optional fields are left out, so that completing a task never blanks a variable the
    process already has.
    """
    errors = errors if errors is not None else {}
    values = {}
    for node in fields:
        value = _value(node, errors)
        if value is not _MISSING:
            values[node.name] = value
    return values


def _multiple_of(validator: Any, divisor: Any, instance: Any, schema: Any) -> Any:
    # jsonschema divides floats, so 19.99 is "not a multiple of 0.01"; decimals are exact.
    if not validator.is_type(instance, "number") or isinstance(instance, bool):
        return
    quotient = Decimal(str(instance)) / Decimal(str(divisor))
    if quotient != quotient.to_integral_value():
        from jsonschema.exceptions import ValidationError

        yield ValidationError(f"{instance!r} is not a multiple of {divisor}")


FormValidator = validators.extend(Draft202012Validator, {"multipleOf": _multiple_of})
_SIMPLE = {
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "multipleOf",
    "pattern",
    "format",
    "uniqueItems",
    "type",
}
_CHOICE = {"enum", "const", "oneOf", "anyOf"}


def _missing_name(error: Any) -> str:
    instance = error.instance if isinstance(error.instance, dict) else {}
    for name in error.validator_value or []:
        if name not in instance and repr(name) in error.message:
            return str(name)
    return ""


def validate(schema: dict[str, Any] | None, values: dict[str, Any]) -> FieldErrors:
    """Check typed values against the schema (with its `if`/`then` rules) field by field."""
    errors: FieldErrors = {}
    if not schema:
        return errors
    validator = FormValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for error in validator.iter_errors(values):
        parts = [str(p) for p in error.absolute_path]
        if error.validator == "required":
            parts.append(_missing_name(error))
            _add(errors, ".".join(p for p in parts if p), "required")
        elif error.validator in _SIMPLE:
            _add(errors, ".".join(parts), str(error.validator), limit=error.validator_value)
        elif error.validator in _CHOICE:
            _add(errors, ".".join(parts), "not_option")
        else:
            _add(errors, ".".join(parts), "invalid", text=error.message)
    return errors


def check_form(
    schema: dict[str, Any] | None, fields: list[FormField]
) -> tuple[dict[str, Any], FieldErrors]:
    """Coerce and validate; a field whose text could not be read is not also "required"."""
    parse_errors: FieldErrors = {}
    values = coerce(fields, parse_errors)
    errors = dict(parse_errors)
    for path, messages in validate(schema, values).items():
        if path not in parse_errors:
            errors.setdefault(path, []).extend(messages)
    return values, errors


def engine_errors(fields: dict[str, list[str]]) -> FieldErrors:
    """Wrap the engine's own field messages (English text) as field messages."""
    return {path: [FieldMessage("invalid", {"text": m}) for m in ms] for path, ms in fields.items()}
