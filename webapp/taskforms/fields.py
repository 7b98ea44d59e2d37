"""Read a JSON Schema and its UI schema into a tree of form fields bound to submitted text.

Input names are dotted paths (`address.city`, `lines.0.qty`). Each row of an array of objects
sends a hidden `<path>.<n>.__row__` marker, so an empty row is still a row. Rows are numbered by
position when the tree is built, whatever numbers the browser sent, so paths in the tree are the
paths in the typed value and in its validation messages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

RawValues = dict[str, list[str]]
ROW_MARK = "__row__"
MAX_ROWS = 200
_ROW_KEY = re.compile(r"(\d+)\." + ROW_MARK + "$")


@dataclass(frozen=True)
class Option:
    value: str  # the text the browser sends
    title: str
    const: Any


@dataclass
class FormField:
    """One input (or fieldset) of a task form, with what the user typed into it."""

    name: str
    path: str
    kind: str
    label: str
    description: str | None = None
    required: bool = False
    schema: dict[str, Any] = field(default_factory=dict)
    ui: dict[str, Any] = field(default_factory=dict)
    raw: list[str] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    children: list[FormField] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.raw[0] if self.raw else ""

    @property
    def input_id(self) -> str:
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.path)

    @property
    def checked(self) -> bool:
        return self.text.lower() in ("on", "true", "1", "yes")

    @property
    def rows(self) -> int:
        options = self.ui.get("ui:options") or {}
        rows = options.get("rows", 4) if isinstance(options, dict) else 4
        return rows if isinstance(rows, int) and 1 <= rows <= 40 else 4

    @property
    def placeholder(self) -> str | None:
        value = self.ui.get("ui:placeholder")
        return str(value) if value is not None else None

    @property
    def autofocus(self) -> bool:
        return self.ui.get("ui:autofocus") is True


def resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (`#/$defs/...`); anything else is returned as it is."""
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 10:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
            if not isinstance(target, dict):
                return {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema if isinstance(schema, dict) else {}


def option_text(const: Any) -> str:
    """Return the text an option is sent as: strings as they are, other values as JSON."""
    return const if isinstance(const, str) else json.dumps(const)


def options_of(schema: dict[str, Any], ui: dict[str, Any]) -> list[Option]:
    """List a field's choices from `oneOf`/`anyOf` consts with titles, or from `enum`."""
    for key in ("oneOf", "anyOf"):
        choices = schema.get(key)
        if (
            isinstance(choices, list)
            and choices
            and all(isinstance(c, dict) and "const" in c for c in choices)
        ):
            return [
                Option(option_text(c["const"]), str(c.get("title", c["const"])), c["const"])
                for c in choices
            ]
    enum = schema.get("enum")
    if isinstance(enum, list):
        names = ui.get("ui:enumNames")
        names = names if isinstance(names, list) and len(names) == len(enum) else enum
        return [Option(option_text(v), str(n), v) for v, n in zip(enum, names, strict=True)]
    return []


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def field_kind(schema: dict[str, Any], ui: dict[str, Any], root: dict[str, Any]) -> str:
    """Decide which widget a schema gets."""
    widget = ui.get("ui:widget")
    kind = _type(schema)
    if kind == "array":
        items = resolve(schema.get("items", {}), root)
        if options_of(items, ui):
            return "multiselect" if widget == "select" else "checkboxes"
        return "rows" if _type(items) == "object" else "list"
    if kind == "object":
        return "object"
    if options_of(schema, ui):
        return "radio" if widget == "radio" else "select"
    if kind == "boolean":
        return "boolean"
    if kind == "integer":
        return "integer"
    if kind == "number":
        money = schema.get("format") == "money" or schema.get("multipleOf") == 0.01
        return "money" if money or widget == "money" else "number"
    if schema.get("format") == "date" or widget == "date":
        return "date"
    return "textarea" if widget == "textarea" else "string"


def ordered_properties(schema: dict[str, Any], ui: dict[str, Any]) -> list[str]:
    """Return property names in `ui:order` (with `*` for the rest), else in schema order."""
    names = list((schema.get("properties") or {}).keys())
    order = ui.get("ui:order")
    if not isinstance(order, list):
        return names
    listed = [n for n in order if n in names]
    rest = [n for n in names if n not in listed]
    if "*" not in order:
        return listed + rest
    star = order.index("*")
    before = [n for n in order[:star] if n in names]
    after = [n for n in order[star + 1 :] if n in names]
    return before + [n for n in rest if n not in after] + after


def _row_numbers(raw: RawValues, path: str) -> list[int]:
    prefix = path + "."
    numbers = set()
    for key in raw:
        if key.startswith(prefix):
            match = _ROW_KEY.fullmatch(key[len(prefix) :])
            if match:
                numbers.add(int(match.group(1)))
    return sorted(numbers)[:MAX_ROWS]


def _row_raw(raw: RawValues, sent: str, path: str) -> RawValues:
    """Return a row's values renamed from the path the browser sent to the row's position."""
    return {path + k[len(sent) :]: v for k, v in raw.items() if k.startswith(sent + ".")}


def build_fields(
    schema: dict[str, Any],
    ui: dict[str, Any] | None,
    raw: RawValues | None,
    *,
    prefix: str = "",
    root: dict[str, Any] | None = None,
) -> list[FormField]:
    """Return the fields of an object schema; `raw` None means a fresh form with defaults."""
    root = root if root is not None else schema
    schema, ui = resolve(schema, root), ui or {}
    required = set(schema.get("required") or [])
    fields = []
    for name in ordered_properties(schema, ui):
        sub = resolve(schema["properties"][name], root)
        sub_ui = ui.get(name) if isinstance(ui.get(name), dict) else {}
        if sub_ui.get("ui:widget") == "hidden":
            continue
        path = prefix + name
        kind = field_kind(sub, sub_ui, root)
        item = resolve(sub.get("items", {}), root) if kind in ("multiselect", "checkboxes") else {}
        item_ui = sub_ui.get("items") if isinstance(sub_ui.get("items"), dict) else {}
        node = FormField(
            name=name,
            path=path,
            kind=kind,
            label=str(sub.get("title") or name.replace("_", " ").capitalize()),
            description=sub.get("description") or sub_ui.get("ui:help"),
            required=name in required,
            schema=sub,
            ui=sub_ui,
            raw=_initial(sub, raw, path),
            options=options_of(item or sub, item_ui if item else sub_ui),
        )
        if kind == "object":
            node.children = build_fields(sub, sub_ui, raw, prefix=path + ".", root=root)
        elif kind == "rows":
            node.children = _rows(node, raw, root)
        fields.append(node)
    return fields


def _initial(schema: dict[str, Any], raw: RawValues | None, path: str) -> list[str]:
    if raw is not None:
        return raw.get(path, [])
    default = schema.get("default")
    if default is None:
        return []
    return [option_text(v) for v in default] if isinstance(default, list) else [_text(default)]


def _rows(node: FormField, raw: RawValues | None, root: dict[str, Any]) -> list[FormField]:
    item = resolve(node.schema.get("items", {}), root)
    item_ui = node.ui.get("items") if isinstance(node.ui.get("items"), dict) else {}
    if raw is None:
        minimum = node.schema.get("minItems")
        count = minimum if isinstance(minimum, int) else int(node.required)
        sent: list[int | None] = [None] * min(count, MAX_ROWS)
    else:
        sent = list(_row_numbers(raw, node.path))
    rows = []
    for position, number in enumerate(sent):
        path = f"{node.path}.{position}"
        row_raw = None if number is None else _row_raw(raw or {}, f"{node.path}.{number}", path)
        rows.append(
            FormField(
                name=str(position),
                path=path,
                kind="row",
                label=str(position + 1),
                schema=item,
                ui=item_ui,
                children=build_fields(item, item_ui, row_raw, prefix=path + ".", root=root),
            )
        )
    return rows


def add_row(raw: RawValues, path: str) -> RawValues:
    """Return the values with one more (empty) row in the array at `path`."""
    numbers = _row_numbers(raw, path)
    if len(numbers) >= MAX_ROWS:
        return dict(raw)
    return {**raw, f"{path}.{(numbers[-1] + 1) if numbers else 0}.{ROW_MARK}": ["1"]}


def remove_row(raw: RawValues, row_path: str) -> RawValues:
    """Return the values without the row at `row_path` (e.g. `lines.2`)."""
    return {k: v for k, v in raw.items() if not k.startswith(row_path + ".")}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value)


def raw_from_values(
    schema: dict[str, Any],
    ui: dict[str, Any] | None,
    values: dict[str, Any] | None,
    *,
    prefix: str = "",
    root: dict[str, Any] | None = None,
) -> RawValues:
    """Turn typed values (a saved draft) back into the text a form shows."""
    root = root if root is not None else schema
    schema, ui = resolve(schema, root), ui or {}
    raw: RawValues = {}
    for name in ordered_properties(schema, ui):
        if not isinstance(values, dict) or name not in values or values[name] is None:
            continue
        sub = resolve(schema["properties"][name], root)
        sub_ui = ui.get(name) if isinstance(ui.get(name), dict) else {}
        path, value = prefix + name, values[name]
        kind = field_kind(sub, sub_ui, root)
        if kind == "object":
            raw.update(raw_from_values(sub, sub_ui, value, prefix=path + ".", root=root))
        elif kind == "rows" and isinstance(value, list):
            item = resolve(sub.get("items", {}), root)
            item_ui = sub_ui.get("items") if isinstance(sub_ui.get("items"), dict) else {}
            for n, row in enumerate(value[:MAX_ROWS]):
                raw[f"{path}.{n}.{ROW_MARK}"] = ["1"]
                raw.update(raw_from_values(item, item_ui, row, prefix=f"{path}.{n}.", root=root))
        elif kind in ("multiselect", "checkboxes") and isinstance(value, list):
            raw[path] = [option_text(v) for v in value]
        elif kind == "list" and isinstance(value, list):
            raw[path] = ["\n".join(_text(v) for v in value)]
        elif kind in ("select", "radio"):
            raw[path] = [option_text(value)]
        else:
            raw[path] = [_text(value)]
    return raw
