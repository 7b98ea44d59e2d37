"""Commission and campaign pages: plans editor, coefficients, runs, statements, campaign ROI.

Endpoints start with `commission_` or `campaign_`; the services decide who sees what. The tables,
CSV downloads and chart data these pages show are built in `commission_tables.py`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

import crm.commission  # noqa: F401  (registers the commission tables and operations)
from crm.campaigns.roi import (
    ALL_CAMPAIGNS_ROLES,
    TEAM_ROLES,
    campaign_channels,
    campaign_report,
)
from crm.commission.plans import (
    COEFFICIENT_ROLES,
    PLAN_EDITORS,
    PlanInput,
    get_plan,
    list_coefficients,
    list_plans,
    plan_choices,
    plan_history,
    save_plan,
    set_coefficient,
)
from crm.commission.runs import RUN_STARTERS, start_run
from crm.commission.statements import get_statement, list_runs, run_summary
from crm.csv_export import to_csv
from crm.errors import InvalidInput
from webapp.analytics import bp
from webapp.analytics.commission_tables import (
    CAMPAIGN_COLUMNS,
    LINE_COLUMNS,
    STATEMENT_COLUMNS,
    campaign_chart,
    campaign_rows,
    coefficients_table,
    month_before,
    parse_month,
    plan_values,
    plans_table,
    run_chart,
    runs_table,
    table_csv,
)
from webapp.crm_pages.common import (
    crm_user,
    csv_download,
    field_errors,
    form_date,
    form_int,
    form_text,
    request_now,
    require_sign_in,
)
from webapp.extensions import db

bp.before_request(require_sign_in)


RUN_STATUS_LABELS = {
    "calculating": _l("Calculating"),
    "in_review": _l("In managers' review"),
    "awaiting_finance": _l("Awaiting finance approval"),
    "issued": _l("Issued"),
}


@bp.app_template_global("commission_status")
def commission_status(code: str) -> str:
    """Return the reader's words for a commission run status."""
    return str(RUN_STATUS_LABELS.get(code, code))


@bp.app_template_global("commission_links")
def commission_links() -> dict[str, bool]:
    """Tell the navigation which commission and campaign pages the signed-in person may open."""
    if not current_user.is_authenticated:
        return {"plans": False, "coefficients": False, "campaigns": False}
    roles = crm_user().roles
    return {
        "plans": bool(roles & PLAN_EDITORS),
        "coefficients": bool(roles & COEFFICIENT_ROLES),
        "campaigns": bool(roles & (ALL_CAMPAIGNS_ROLES | TEAM_ROLES)),
    }


def _last_month() -> date:
    return month_before(request_now().date())


# --- runs and statements -------------------------------------------------------------------


@bp.get("/commission/runs")
def commission_runs() -> Any:
    return _runs_page()


def _runs_page(status: int = 200, errors: dict[str, list[str]] | None = None) -> Any:
    user = crm_user()
    return render_template(
        "analytics/commission/runs.html",
        runs=list_runs(db.session, user),
        may_start=bool(user.roles & RUN_STARTERS),
        may_edit_plans=bool(user.roles & PLAN_EDITORS),
        default_month=f"{_last_month():%Y-%m}",
        errors=errors or {},
    ), status


@bp.post("/commission/runs")
def commission_start_run() -> Any:
    try:
        month = parse_month(request.form) or _last_month()
        run = start_run(db.session, crm_user(), month, now=request_now())
    except InvalidInput as exc:
        return _runs_page(422, field_errors(exc))
    flash(_("The commission run for %(month)s has started.", month=f"{month:%Y-%m}"))
    return redirect(url_for(".commission_run", run_id=run.id))


@bp.get("/commission/runs/export.csv")
def commission_runs_csv() -> Any:
    header, rows = runs_table(list_runs(db.session, crm_user()))
    return csv_download(to_csv(header, rows), "commission-runs.csv")


@bp.get("/commission/runs/<int:run_id>")
def commission_run(run_id: int) -> Any:
    summary = run_summary(db.session, crm_user(), run_id)
    return render_template("analytics/commission/run.html", s=summary, chart=run_chart(summary))


@bp.get("/commission/runs/<int:run_id>/export.csv")
def commission_run_csv(run_id: int) -> Any:
    summary = run_summary(db.session, crm_user(), run_id)
    filename = f"commission-{summary.run.period_start:%Y-%m}.csv"
    return table_csv(STATEMENT_COLUMNS, summary.statements, filename)


@bp.get("/commission/statements/<int:statement_id>")
def commission_statement(statement_id: int) -> Any:
    row = get_statement(db.session, crm_user(), statement_id)
    run = run_summary(db.session, crm_user(), row.statement.run_id).run
    return render_template("analytics/commission/statement.html", r=row, run=run)


@bp.get("/commission/statements/<int:statement_id>/export.csv")
def commission_statement_csv(statement_id: int) -> Any:
    row = get_statement(db.session, crm_user(), statement_id)
    filename = f"commission-statement-{row.statement.id}-{row.rep.username}.csv"
    return table_csv(LINE_COLUMNS, row.statement.lines, filename)


# --- plans and coefficients ----------------------------------------------------------------


@bp.get("/commission/plans")
def commission_plans() -> Any:
    return render_template(
        "analytics/commission/plans.html", plans=list_plans(db.session, crm_user())
    )


@bp.get("/commission/plans/export.csv")
def commission_plans_csv() -> Any:
    header, rows = plans_table(list_plans(db.session, crm_user()))
    return csv_download(to_csv(header, rows), "commission-plans.csv")


def _plan_form(plan_id: int | None, status: int = 200, **state: Any) -> Any:
    user = crm_user()
    plan = get_plan(db.session, user, plan_id) if plan_id is not None else None
    return render_template(
        "analytics/commission/plan_form.html",
        plan=plan,
        choices=plan_choices(db.session, user),
        history=plan_history(db.session, user, plan.id) if plan else [],
        errors=state.get("errors", {}),
        values=state["values"] if "values" in state else plan_values(plan),
    ), status


def _int_list(name: str) -> tuple[int, ...]:
    return tuple(int(v) for v in request.form.getlist(name) if v.isdigit() and len(v) < 10)


def _save(plan_id: int | None) -> Any:
    values = {
        "name": form_text("name", 120),
        "basis": form_text("basis", 8),
        "base_rate": form_text("base_rate", 20),
        "valid_from": form_text("valid_from", 10),
        "valid_to": form_text("valid_to", 10),
        "cap": form_text("cap", 20),
        "tiers": form_text("tiers", 2000),
        "users": list(_int_list("users")),
        "teams": list(_int_list("teams")),
    }
    try:
        plan = save_plan(
            db.session,
            crm_user(),
            plan_id,
            PlanInput(
                name=values["name"],
                basis=values["basis"],
                base_rate_pct=values["base_rate"],
                valid_from=form_date(request.form, "valid_from"),
                valid_to=form_date(request.form, "valid_to"),
                cap=values["cap"],
                tiers=values["tiers"],
                user_ids=tuple(values["users"]),
                team_ids=tuple(values["teams"]),
            ),
            now=request_now(),
        )
    except InvalidInput as exc:
        return _plan_form(plan_id, 422, errors=field_errors(exc), values=values)
    flash(_("Plan %(name)s saved.", name=plan.name))
    return redirect(url_for(".commission_plans"))


@bp.route("/commission/plans/new", methods=["GET", "POST"])
def commission_plan_new() -> Any:
    return _save(None) if request.method == "POST" else _plan_form(None)


@bp.route("/commission/plans/<int:plan_id>", methods=["GET", "POST"])
def commission_plan_edit(plan_id: int) -> Any:
    return _save(plan_id) if request.method == "POST" else _plan_form(plan_id)


def _coefficients_page(month: date, status: int = 200, **state: Any) -> Any:
    return render_template(
        "analytics/commission/coefficients.html",
        month=month,
        rows=list_coefficients(db.session, crm_user(), month),
        errors=state.get("errors", {}),
        values=state.get("values", {}),
    ), status


@bp.get("/commission/coefficients")
def commission_coefficients() -> Any:
    try:
        month = parse_month(request.args) or _last_month()
    except InvalidInput:
        month = _last_month()
    return _coefficients_page(month)


@bp.get("/commission/coefficients/export.csv")
def commission_coefficients_csv() -> Any:
    month = parse_month(request.args) or _last_month()
    header, rows = coefficients_table(list_coefficients(db.session, crm_user(), month), month)
    return csv_download(to_csv(header, rows), f"commission-coefficients-{month:%Y-%m}.csv")


@bp.post("/commission/coefficients")
def commission_set_coefficient() -> Any:
    month = _last_month()
    try:
        month = parse_month(request.form) or month
        rep_id = form_int(request.form, "rep_id") or 0
        set_coefficient(
            db.session,
            crm_user(),
            rep_id,
            month,
            form_text("coefficient", 10),
            form_text("reason", 2000),
            now=request_now(),
        )
    except InvalidInput as exc:
        return _coefficients_page(month, 422, errors=field_errors(exc), values=request.form)
    flash(_("Coefficient saved."))
    return redirect(url_for(".commission_coefficients", month=f"{month:%Y-%m}"))


# --- campaign ROI --------------------------------------------------------------------------


def _campaign_filters() -> dict[str, Any]:
    start = form_date(request.args, "start")
    end = form_date(request.args, "end")
    channel = (request.args.get("channel") or "").strip()[:40] or None
    return {"start": start, "end": end, "channel": channel}


@bp.get("/campaigns")
def campaign_roi() -> Any:
    filters = _campaign_filters()
    report = campaign_report(db.session, crm_user(), **filters)
    return render_template(
        "analytics/commission/campaigns.html",
        report=report,
        channels=campaign_channels(db.session),
        chart=campaign_chart(report),
        **filters,
    )


@bp.get("/campaigns/export.csv")
def campaign_roi_csv() -> Any:
    """Export the campaigns, then one row per channel and the total."""
    report = campaign_report(db.session, crm_user(), **_campaign_filters())
    return table_csv(CAMPAIGN_COLUMNS, campaign_rows(report), "campaign-roi.csv")
