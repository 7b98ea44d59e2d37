"""Analytics pages: funnel and stage dwell, forecast (commit, adjustments, accuracy), targets and
the dashboard that combines them. Every table downloads as CSV with `?format=csv&table=...`;
the tables and charts themselves are built in `webapp.analytics.tables`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import format_date, format_datetime, format_decimal
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

import crm.analytics  # noqa: F401  (registers the analytics tables until crm/__init__ does)
from crm.analytics.choices import filter_choices
from crm.analytics.forecast import (
    adjust_forecast,
    adjustable_ids,
    build_forecast,
    forecast_months,
    parse_month,
    set_forecast_entry,
)
from crm.analytics.funnel import build_funnel
from crm.analytics.periods import add_months, quarter_start
from crm.analytics.scope import DealFilter, require_analytics
from crm.analytics.snapshots import forecast_accuracy
from crm.errors import InvalidInput, fields_error
from crm.sales.models import PIPELINES
from crm.targets.listing import list_targets
from crm.targets.models import METRICS, PERIOD_KINDS, SCOPE_KINDS
from crm.targets.services import TargetKey, can_set_target, delete_target, set_target
from webapp.analytics import bp
from webapp.analytics.tables import (
    csv_response,
    forecast_charts,
    forecast_tables,
    funnel_charts,
    funnel_tables,
    table_csv,
    target_label,
    target_table,
)
from webapp.crm_pages.common import (
    crm_user,
    field_errors,
    form_date,
    form_int,
    page_number,
    request_now,
    require_sign_in,
)
from webapp.extensions import db

bp.before_request(require_sign_in)

REPS_PER_PAGE = 50  # rows of the per-rep tables on a page; the CSV has everyone


@bp.context_processor
def table_helpers() -> dict[str, Any]:
    def export_url(endpoint: str, table: str) -> str:
        """Return the CSV download of a table with the page's current filters."""
        args = {**request.args.to_dict(), "format": "csv", "table": table}
        return url_for(endpoint, **args)

    def cell_text(cell: Any) -> str:
        if cell is None:
            return ""
        if isinstance(cell, bool):
            return _("yes") if cell else _("no")
        if isinstance(cell, Decimal | int | float):
            return format_decimal(cell)
        if isinstance(cell, datetime):
            return format_datetime(cell, "short")
        if isinstance(cell, date):
            return format_date(cell, "medium")
        return str(cell)

    return {"export_url": export_url, "cell_text": cell_text, "target_label": target_label}


def deal_filter(values: MultiDict[str, str], *, pipeline: str | None) -> DealFilter:
    """Read the shared filters; the period defaults to the current quarter."""
    chosen = values.get("pipeline", pipeline or "")
    if chosen and chosen not in PIPELINES:
        raise fields_error(pipeline=f"must be one of {', '.join(PIPELINES)}")
    start = form_date(values, "start") or quarter_start(request_now().date())
    end = form_date(values, "end") or add_months(start, 3)
    return DealFilter(
        pipeline=chosen or None,
        period_start=start,
        period_end=end,
        team_id=form_int(values, "team"),
        owner_id=form_int(values, "rep"),
        territory_id=form_int(values, "territory"),
        product_id=form_int(values, "product"),
    )


def months_of(values: MultiDict[str, str], flt: DealFilter) -> list[date]:
    first = parse_month(values.get("month", "")) if values.get("month") else flt.period_start
    assert first is not None
    return forecast_months(first.replace(day=1), form_int(values, "months") or 3)


def _flash_not_saved(exc: InvalidInput) -> None:
    for field, messages in field_errors(exc).items():
        flash(_("Not saved: %(field)s %(reason)s", field=field, reason="; ".join(messages)))


# --- pages ----------------------------------------------------------------------------------


@bp.get("/")
def index() -> Any:
    user = crm_user()
    require_analytics(user)
    if user.roles & {"supervisor", "manager", "director", "admin"}:
        return redirect(url_for("analytics.dashboard"))
    return redirect(url_for("analytics.funnel"))


@bp.get("/funnel")
def funnel() -> Any:
    user = crm_user()
    flt = deal_filter(request.args, pipeline=PIPELINES[0])
    result = build_funnel(db.session, user, flt, now=request_now())
    tables = funnel_tables(result)
    if request.args.get("format") == "csv":
        return table_csv("funnel", tables)
    return render_template(
        "analytics/pages/funnel.html",
        funnel=result,
        flt=flt,
        funnel_tables=tables,
        funnel_charts=funnel_charts(result),
        choices=filter_choices(db.session, user),
        pipelines=PIPELINES,
    )


def _forecast_context(user: Any) -> dict[str, Any]:
    flt = deal_filter(request.args, pipeline=None)
    months = months_of(request.args, flt)
    now = request_now()
    forecast = build_forecast(db.session, user, flt, months, now=now)
    accuracy = forecast_accuracy(db.session, user, flt, months, now=now)
    page, pages = page_number(), max(1, -(-len(forecast.reps) // REPS_PER_PAGE))
    page = min(page, pages)
    shown = None
    if request.args.get("format") != "csv":
        start = (page - 1) * REPS_PER_PAGE
        shown = {r.user_id for r in forecast.reps[start : start + REPS_PER_PAGE]}
    return {
        "flt": flt,
        "forecast": forecast,
        "accuracy": accuracy,
        "tables": forecast_tables(forecast, accuracy, shown),
        "charts": forecast_charts(forecast, accuracy),
        "page": page,
        "pages": pages,
    }


@bp.get("/forecast")
def forecast() -> Any:
    user = crm_user()
    context = _forecast_context(user)
    if request.args.get("format") == "csv":
        return table_csv("forecast", context["tables"])
    adjustable = adjustable_ids(db.session, user, [r.user_id for r in context["forecast"].reps])
    return render_template(
        "analytics/pages/forecast.html",
        choices=filter_choices(db.session, user),
        pipelines=PIPELINES,
        adjustable=adjustable,
        **context,
    )


def _back_to_forecast() -> Any:
    target = request.form.get("next") or ""
    if not target.startswith("/analytics/"):
        target = url_for("analytics.forecast")
    return redirect(target)


@bp.post("/forecast/entry")
def forecast_entry() -> Any:
    user = crm_user()
    require_analytics(user)
    try:
        entry = set_forecast_entry(
            db.session,
            user,
            parse_month(request.form.get("month", "")),
            request.form.get("commit", ""),
            request.form.get("best_case", ""),
            now=request_now(),
        )
    except InvalidInput as exc:
        _flash_not_saved(exc)
        return _back_to_forecast()
    flash(_("Your commit for %(month)s is saved.", month=entry.month.strftime("%Y-%m")))
    return _back_to_forecast()


@bp.post("/forecast/adjust")
def forecast_adjust() -> Any:
    user = crm_user()
    rep_id = form_int(request.form, "rep")
    if rep_id is None:
        raise fields_error(rep="is required")
    try:
        adjustment = adjust_forecast(
            db.session,
            user,
            rep_id,
            parse_month(request.form.get("month", "")),
            request.form.get("amount", ""),
            request.form.get("comment", ""),
            now=request_now(),
        )
    except InvalidInput as exc:
        _flash_not_saved(exc)
        return _back_to_forecast()
    flash(_("Adjustment for %(month)s saved.", month=adjustment.month.strftime("%Y-%m")))
    return _back_to_forecast()


@bp.get("/targets")
def targets() -> Any:
    user = crm_user()
    now = request_now()
    year = form_int(request.args, "year") or now.year
    metric = request.args.get("metric") or None
    if metric is not None and metric not in METRICS:
        raise fields_error(metric=f"must be one of {', '.join(METRICS)}")
    rows = list_targets(db.session, user, year=year, now=now, metric=metric)
    table = target_table(rows)
    if request.args.get("format") == "csv":
        return csv_response(f"targets-{year}", *table)
    may_set = user.roles & {"director", "admin", "manager", "supervisor"}
    return render_template(
        "analytics/pages/targets.html",
        rows=rows,
        table=table,
        year=year,
        metric=metric,
        metrics=METRICS,
        period_kinds=PERIOD_KINDS,
        scope_kinds=[k for k in SCOPE_KINDS if can_set_kind(user, k)],
        may_set=may_set,
        choices=filter_choices(db.session, user),
    )


def can_set_kind(user: Any, scope_kind: str) -> bool:
    if user.roles & {"director", "admin"}:
        return True
    return scope_kind in ("team", "user") and bool(user.roles & {"manager", "supervisor"})


@bp.post("/targets")
def targets_save() -> Any:
    user = crm_user()
    require_analytics(user)
    form = request.form
    scope_kind = form.get("scope_kind", "")
    key = TargetKey(
        form.get("metric", ""),
        form.get("period_kind", ""),
        form_date(form, "period_start") or date.min,
        scope_kind,
        None if scope_kind == "company" else form_int(form, "scope_id"),
    )
    try:
        if key.period_start == date.min:
            raise fields_error(period_start="is required")
        target = set_target(
            db.session,
            user,
            key,
            form.get("amount", ""),
            now=request_now(),
            parent_id=form_int(form, "parent_id"),
        )
    except InvalidInput as exc:
        _flash_not_saved(exc)
        return redirect(
            url_for(
                "analytics.targets",
                year=key.period_start.year if key.period_start != date.min else None,
            )
        )
    flash(_("Target #%(id)s saved.", id=target.id))
    return redirect(url_for("analytics.targets", year=target.period_start.year))


@bp.post("/targets/<int:target_id>/delete")
def targets_delete(target_id: int) -> Any:
    delete_target(db.session, crm_user(), target_id)
    flash(_("Target #%(id)s removed.", id=target_id))
    return redirect(url_for("analytics.targets"))


@bp.get("/dashboard")
def dashboard() -> Any:
    user = crm_user()
    require_analytics(user, dashboard=True)
    flt = deal_filter(request.args, pipeline=PIPELINES[0])
    now = request_now()
    funnel_result = build_funnel(db.session, user, flt, now=now)
    context = _forecast_context(user)
    rows = list_targets(db.session, user, year=now.year, now=now)
    return render_template(
        "analytics/pages/dashboard.html",
        funnel=funnel_result,
        funnel_tables=funnel_tables(funnel_result),
        funnel_charts=funnel_charts(funnel_result),
        target_rows=target_table(rows),
        choices=filter_choices(db.session, user),
        pipelines=PIPELINES,
        may_set_targets=can_set_target(db.session, user, "company", None),
        **context,
    )
