"""What the CRM pages share: the sign-in guard, the acting user, the clock, form and CSV helpers,
and locale-aware formatting for templates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask_babel import format_currency, format_date, format_datetime, format_decimal
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.directory.models import User
from crm.errors import InvalidInput, fields_error
from crm.sales.board import weighted_amount
from engine.db import utcnow
from webapp.errors import translate, translate_fields

# Labels for the stored codes people see: stages, roles, kinds, statuses.
LABELS: dict[str, Any] = {
    "": _l("Not started"),
    "qualification": _l("Qualification"),
    "needs_analysis": _l("Needs analysis"),
    "proposal": _l("Proposal"),
    "negotiation": _l("Negotiation"),
    "closing": _l("Closing"),
    "renewal_review": _l("Renewal review"),
    "renewal_quote": _l("Renewal quote"),
    "renewal_signed": _l("Renewal signed"),
    "won": _l("Won"),
    "lost": _l("Lost"),
    "new_business": _l("New business"),
    "renewal": _l("Renewal"),
    "decision_maker": _l("Decision maker"),
    "user": _l("User"),
    "technical_owner": _l("Technical owner"),
    "coach": _l("Coach"),
    "call": _l("Call"),
    "visit": _l("Visit"),
    "email": _l("E-mail"),
    "note": _l("Note"),
    "open": _l("Open"),
    "paid": _l("Paid"),
    "due": _l("Not yet due"),
    "overdue": _l("Overdue"),
    "draft": _l("Draft"),
    "pending": _l("Pending approval"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "accepted": _l("Accepted"),
    "withdrawn": _l("Withdrawn"),
    "superseded": _l("Superseded"),
    "running": _l("Running"),
    "waiting": _l("Waiting"),
    "suspended": _l("Suspended"),
    "error": _l("Error"),
    "completed": _l("Completed"),
    "terminated": _l("Terminated"),
    "create": _l("Created"),
    "convert": _l("Converted from a lead"),
    "claim": _l("Claimed from the pool"),
    "allocation": _l("Allocated"),
    "recycle": _l("Recycled to the pool"),
    "handover": _l("Handover"),
    "release": _l("Released to the pool"),
    "started": _l("Started"),
    "task_completed": _l("Task completed"),
    "timer_fired": _l("Timer fired"),
    "message_received": _l("Message received"),
    "moved": _l("Token moved"),
    "migrated": _l("Migrated"),
    "retried": _l("Retried"),
    "resumed": _l("Resumed"),
    "task_reassigned": _l("Task reassigned"),
    "errored": _l("Failed"),
    "event_unhandled": _l("Event nobody caught"),
    # Roles, as the lane a task waits in.
    "rep": _l("Sales rep"),
    "supervisor": _l("Supervisor"),
    "manager": _l("Sales manager"),
    "director": _l("Sales director"),
    "finance": _l("Finance"),
    "marketing": _l("Marketing"),
    "admin": _l("Administrator"),
    "ops": _l("Operations"),
}


def label(code: str | None) -> str:
    """Return the reader's word for a stored code (the code itself when it has none)."""
    if code is None:
        return ""
    found = LABELS.get(code)
    return str(found) if found is not None else code.replace("_", " ")


def crm_user() -> User:
    """Return the signed-in person's CRM record."""
    return current_user.user  # type: ignore[no-any-return]


def request_now() -> datetime:
    """Return the time of this request (the one place pages read the clock)."""
    return utcnow()


def require_sign_in() -> Any:
    """Send anonymous visitors to the sign-in page (a blueprint's before_request)."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    return None


def field_errors(error: InvalidInput) -> dict[str, list[str]]:
    """Return the error's messages per field, in the reader's language."""
    return translate_fields(error.fields) or {"form": [translate(error.message)]}


def form_text(name: str, limit: int = 5000) -> str:
    return (request.form.get(name) or "").strip()[:limit]


def form_date(values: Mapping[str, Any], name: str) -> date | None:
    """Read an optional YYYY-MM-DD field, naming it when it is not a date."""
    text = str(values.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fields_error(**{name: f"'{text}' is not a date (YYYY-MM-DD)"}) from None


def form_int(values: Mapping[str, Any], name: str) -> int | None:
    text = str(values.get(name) or "").strip()
    if not text:
        return None
    if not text.lstrip("-").isdigit() or len(text) > 9:
        raise fields_error(**{name: f"'{text}' is not a whole number"})
    return int(text)


def page_number() -> int:
    text = request.args.get("page", "1")
    return int(text) if text.isdigit() and 0 < len(text) < 7 else 1


def csv_download(text: str, filename: str) -> Response:
    return Response(
        text.encode("utf-8"),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


def _money(amount: Decimal | int | float | None, currency: str = "CNY") -> str:
    if amount is None:
        return ""
    return format_currency(amount, currency)


def _number(value: Decimal | int | float | None) -> str:
    return "" if value is None else format_decimal(value)


def _day(value: date | datetime | None) -> str:
    return "" if value is None else format_date(value, "medium")


def _moment(value: datetime | None) -> str:
    return "" if value is None else format_datetime(value, "short")


def install_template_helpers(bp: Blueprint) -> None:
    """Give every template (macros too) the CRM's formatting and label helpers."""
    helpers = {
        "fmt_money": _money,
        "fmt_number": _number,
        "fmt_day": _day,
        "fmt_moment": _moment,
        "code_label": label,
        "weighted": weighted_amount,
    }
    for name, helper in helpers.items():
        bp.add_app_template_global(helper, name)
