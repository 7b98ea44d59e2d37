"""CSV import of customers and of leads into a pool: upload, check every row, then confirm.

The checked file travels back with the confirmation (a hidden field) and is checked again before
anything is written, so nothing depends on server-side state between the two steps.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import NotFound

from crm.csv_import import (
    CHECKS,
    IMPORTS,
    LEAD_IMPORT_ROLES,
    MAX_IMPORT_BYTES,
    ImportCheck,
    ImportRejected,
    decode_upload,
    pools_of_kind,
)
from crm.errors import InvalidInput
from webapp.crm_pages.common import crm_user, field_errors, form_int, request_now, require_sign_in
from webapp.extensions import db

bp = Blueprint("crm_imports", __name__)
bp.before_request(require_sign_in)
POOL_KIND = {"customers": "customer", "leads": "lead"}
PREVIEW_ROWS = 50


def _kind(kind: str) -> str:
    if kind not in CHECKS:
        raise NotFound()
    return kind


def _page(
    kind: str,
    *,
    check: ImportCheck | None = None,
    text: str = "",
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Any:
    return render_template(
        "crm/imports/import.html",
        kind=kind,
        pools=pools_of_kind(db.session, POOL_KIND[kind]),
        check=check,
        text=text,
        errors=errors or {},
        pool_id=request.form.get("pool_id", ""),
        allow_duplicates=bool(request.form.get("allow_duplicates")),
        preview_rows=PREVIEW_ROWS,
        max_kb=MAX_IMPORT_BYTES // 1000,
        may_import_leads=bool(crm_user().roles & LEAD_IMPORT_ROLES),
    ), status


def _options() -> dict[str, Any]:
    return {
        "pool_id": form_int(request.form, "pool_id"),
        "allow_duplicates": bool(request.form.get("allow_duplicates")),
    }


@bp.get("/import/<kind>")
def upload_form(kind: str) -> Any:
    return _page(_kind(kind))


@bp.post("/import/<kind>")
def check_upload(kind: str) -> Any:
    kind = _kind(kind)
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise InvalidInput("no file", {"file": [_("Choose a CSV file.")]})
        text = decode_upload(upload.stream.read(MAX_IMPORT_BYTES + 1))
        check = CHECKS[kind](db.session, crm_user(), text, **_options())
    except InvalidInput as exc:
        return _page(kind, errors=field_errors(exc), status=422)
    return _page(kind, check=check, text=text, status=200 if check.ok else 422)


@bp.post("/import/<kind>/confirm")
def confirm(kind: str) -> Any:
    kind = _kind(kind)
    text = request.form.get("csv_text", "")
    try:
        text = decode_upload(text.encode("utf-8"))
        count = IMPORTS[kind](db.session, crm_user(), text, now=request_now(), **_options())
    except ImportRejected as exc:
        return _page(kind, check=exc.check, text=text, status=422)
    except InvalidInput as exc:
        return _page(kind, errors=field_errors(exc), status=422)
    if kind == "customers":
        flash(_("%(count)d customers imported.", count=count))
        return redirect(url_for("crm_customers.index", sort="created", order="desc"))
    flash(_("%(count)d leads imported into the pool.", count=count))
    return redirect(url_for(".upload_form", kind=kind))
