"""Task forms of the working copy: list, read, check (as a deploy does) and save them.

A `*.schema.json` file must be a valid JSON Schema (draft 2020-12 meta-schema, the check a deploy
runs) describing an object; a `*.uischema.json` file must be a JSON object. The next deploy reads
the saved file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy.orm import Session

from crm.designer.access import require_designer
from crm.designer.workspace import Workspace, list_files, record_change, resolve, sha256, write_file
from crm.directory.models import User
from crm.errors import InvalidInput, msg

FORM_SUFFIXES = (".schema.json", ".uischema.json")
UI_SUFFIX = ".uischema.json"
MAX_FORM_BYTES = 256 * 1024


@dataclass(frozen=True)
class FormPair:
    """A form's JSON Schema and UI schema, as the task form renderer takes them."""

    schema: dict[str, Any]
    ui: dict[str, Any]


def list_forms(actor: User, workspace: Workspace) -> list[str]:
    """Return the names of the form files below forms/."""
    require_designer(actor)
    return list_files(workspace.forms_dir, FORM_SUFFIXES)


def read_form(actor: User, workspace: Workspace, name: str) -> str:
    require_designer(actor)
    return resolve(workspace.forms_dir, name, FORM_SUFFIXES).read_text("utf-8")


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, {"content": [message]})


def parse_form(name: str, text: str) -> dict[str, Any]:
    """Return the parsed form file, or raise InvalidInput naming what is wrong and where."""
    if len(text.encode("utf-8")) > MAX_FORM_BYTES:
        raise _invalid(msg("the form is larger than %(size)s KiB", size=MAX_FORM_BYTES // 1024))
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _invalid(msg("not valid JSON: %(detail)s", detail=str(exc))) from exc
    if not isinstance(document, dict):
        raise _invalid("the form must be a JSON object")
    if name.endswith(UI_SUFFIX):
        return document
    try:
        Draft202012Validator.check_schema(document)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or msg("top level")
        raise _invalid(
            msg("not a valid JSON Schema at %(where)s: %(detail)s", where=where, detail=exc.message)
        ) from exc
    if document.get("type", "object") != "object":
        raise _invalid('a task form\'s schema must describe an object ("type": "object")')
    return document


def _sibling(workspace: Workspace, name: str) -> dict[str, Any]:
    if name.endswith(UI_SUFFIX):
        other = name[: -len(UI_SUFFIX)] + ".schema.json"
    else:
        other = name[: -len(".schema.json")] + UI_SUFFIX
    path = workspace.forms_dir / other
    try:
        found = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    except ValueError:
        found = {}
    return found if isinstance(found, dict) else {}


def preview_form(actor: User, workspace: Workspace, name: str, text: str) -> FormPair:
    """Check an edited form file and pair it with its saved partner file for a preview."""
    require_designer(actor)
    resolve(workspace.forms_dir, name, FORM_SUFFIXES)
    document = parse_form(name, text)
    if name.endswith(UI_SUFFIX):
        return FormPair(_sibling(workspace, name), document)
    return FormPair(document, _sibling(workspace, name))


def save_form(
    session: Session, actor: User, workspace: Workspace, name: str, text: str, now: datetime
) -> None:
    """Write a checked form file to forms/ and audit it.

    :raises InvalidInput: naming the problem; nothing is written.
    """
    require_designer(actor)
    path = resolve(workspace.forms_dir, name, FORM_SUFFIXES)
    parse_form(name, text)
    content = text.encode("utf-8")
    before = sha256(path.read_bytes())
    record_change(session, actor, "save_form", name, now, before=before, after=sha256(content))
    write_file(path, content)
