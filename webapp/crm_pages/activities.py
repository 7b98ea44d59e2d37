"""Activity entry with follow-ups due, and the daily work report (today's can be rewritten)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from crm.activities.models import ACTIVITY_KINDS
from crm.activities.services import (
    customer_choices,
    daily_reports,
    followups_due,
    log_activity,
    recent_activities,
    save_daily_report,
    todays_report,
)
from crm.errors import InvalidInput, fields_error
from webapp.crm_pages.common import (
    crm_user,
    field_errors,
    form_date,
    form_int,
    form_text,
    request_now,
    require_sign_in,
)
from webapp.extensions import db

bp = Blueprint("crm_activities", __name__)
bp.before_request(require_sign_in)


def _activities_page(status: int = 200, **form_state: Any) -> Any:
    user, now = crm_user(), request_now()
    state = {"errors": {}, "values": {}} | form_state
    return render_template(
        "crm/activities/index.html",
        customers=customer_choices(db.session, user),
        kinds=ACTIVITY_KINDS,
        recent=recent_activities(db.session, user),
        followups=followups_due(db.session, user, until=now.date() + timedelta(days=7)),
        today=now.date(),
        **state,
    ), status


@bp.get("/activities")
def index() -> Any:
    return _activities_page()


@bp.post("/activities")
def create() -> Any:
    try:
        customer_id = form_int(request.form, "customer_id")
        if customer_id is None:
            raise fields_error(customer_id="choose a customer")
        log_activity(
            db.session,
            crm_user(),
            customer_id,
            form_text("kind", 10),
            form_text("subject", 250),
            now=request_now(),
            body=form_text("body", 20_000) or None,
            next_followup_on=form_date(request.form, "next_followup_on"),
        )
    except InvalidInput as exc:
        return _activities_page(422, errors=field_errors(exc), values=request.form)
    flash(_("Activity recorded."))
    return redirect(url_for(".index"))


def _reports_page(status: int = 200, **form_state: Any) -> Any:
    user, now = crm_user(), request_now()
    day_text = request.args.get("day", "")
    try:
        day = form_date(request.args, "day")
    except InvalidInput:
        day, day_text = None, ""
    report = todays_report(db.session, user, now=now)
    state = {"errors": {}, "values": {}} | form_state
    return render_template(
        "crm/activities/reports.html",
        report=report,
        reports=daily_reports(db.session, user, day=day),
        day=day_text,
        today=now.date(),
        **state,
    ), status


@bp.get("/reports/daily")
def reports() -> Any:
    return _reports_page()


@bp.post("/reports/daily")
def save_report() -> Any:
    try:
        save_daily_report(
            db.session,
            crm_user(),
            form_text("summary", 20_000),
            form_text("plan", 20_000),
            now=request_now(),
        )
    except InvalidInput as exc:
        return _reports_page(422, errors=field_errors(exc), values=request.form)
    flash(_("Today's report saved."))
    return redirect(url_for(".reports"))
