"""Commission and campaign pages: plans editor, coefficients, runs, statements, campaign ROI.

Endpoints start with `commission_` or `campaign_`; the services decide who sees what.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from operator import attrgetter
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
    tiers_text,
)
from crm.commission.runs import RUN_STARTERS, start_run
from crm.commission.statements import get_statement, list_runs, run_summary
from crm.csv_export import to_csv
from crm.errors import InvalidInput, fields_error
from webapp.analytics import bp
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


def _month(values: Any, name: str = "month") -> date | None:
    text = str(values.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(f"{text}-01" if len(text) == 7 else text).replace(day=1)
    except ValueError:
        raise fields_error(**{name: f"'{text}' is not a month (YYYY-MM)"}) from None


def _last_month() -> date:
    first = request_now().date().replace(day=1)
    return date.fromordinal(first.toordinal() - 1).replace(day=1)


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
        month = _month(request.form) or _last_month()
        run = start_run(db.session, crm_user(), month, now=request_now())
    except InvalidInput as exc:
        return _runs_page(422, field_errors(exc))
    flash(_("The commission run for %(month)s has started.", month=f"{month:%Y-%m}"))
    return redirect(url_for(".commission_run", run_id=run.id))


@bp.get("/commission/runs/export.csv")
def commission_runs_csv() -> Any:
    header = [_("Month"), _("Status"), _("Statements"), _("Total"), _("Issued at")]
    rows = (
        [f"{s.run.period_start:%Y-%m}", s.run.status, len(s.statements), s.total, s.run.issued_at]
        for s in list_runs(db.session, crm_user())
    )
    return csv_download(to_csv(header, rows), "commission-runs.csv")


@bp.get("/commission/runs/<int:run_id>")
def commission_run(run_id: int) -> Any:
    summary = run_summary(db.session, crm_user(), run_id)
    chart = {
        "labels": [s.rep.display_name for s in summary.statements],
        "totals": [str(s.statement.total) for s in summary.statements],
        "attainment": [
            None if s.statement.attainment_pct is None else str(s.statement.attainment_pct)
            for s in summary.statements
        ],
        "totalLabel": _("Commission"),
        "attainmentLabel": _("Attainment %"),
    }
    return render_template("analytics/commission/run.html", s=summary, chart=chart)


# CSV columns: (header, attribute path on the exported object).
STATEMENT_COLUMNS = (
    (_l("Rep"), "rep.display_name"),
    (_l("Plan"), "plan_name"),
    (_l("Basis"), "statement.basis"),
    (_l("Target"), "statement.target"),
    (_l("Achieved"), "statement.achieved"),
    (_l("Attainment %"), "statement.attainment_pct"),
    (_l("Coefficient"), "statement.coefficient"),
    (_l("Total"), "statement.total"),
    (_l("Currency"), "statement.currency"),
)
LINE_COLUMNS = (
    (_l("Kind"), "kind"),
    (_l("Item"), "label"),
    (_l("Date"), "occurred_on"),
    (_l("Base"), "base"),
    (_l("Rate"), "rate"),
    (_l("Tier"), "tier"),
    (_l("Multiplier"), "multiplier"),
    (_l("Coefficient"), "coefficient"),
    (_l("Amount"), "amount"),
    (_l("Comment"), "comment"),
    (_l("By"), "created_by"),
)


def _table_csv(columns: tuple[tuple[Any, str], ...], items: Any, filename: str) -> Any:
    getters = [attrgetter(path) for _, path in columns]
    rows = ([get(item) for get in getters] for item in items)
    return csv_download(to_csv([str(h) for h, _ in columns], rows), filename)


@bp.get("/commission/runs/<int:run_id>/export.csv")
def commission_run_csv(run_id: int) -> Any:
    summary = run_summary(db.session, crm_user(), run_id)
    filename = f"commission-{summary.run.period_start:%Y-%m}.csv"
    return _table_csv(STATEMENT_COLUMNS, summary.statements, filename)


@bp.get("/commission/statements/<int:statement_id>")
def commission_statement(statement_id: int) -> Any:
    row = get_statement(db.session, crm_user(), statement_id)
    run = run_summary(db.session, crm_user(), row.statement.run_id).run
    return render_template("analytics/commission/statement.html", r=row, run=run)


@bp.get("/commission/statements/<int:statement_id>/export.csv")
def commission_statement_csv(statement_id: int) -> Any:
    row = get_statement(db.session, crm_user(), statement_id)
    filename = f"commission-statement-{row.statement.id}-{row.rep.username}.csv"
    return _table_csv(LINE_COLUMNS, row.statement.lines, filename)


# --- plans and coefficients ----------------------------------------------------------------


@bp.get("/commission/plans")
def commission_plans() -> Any:
    return render_template(
        "analytics/commission/plans.html", plans=list_plans(db.session, crm_user())
    )


@bp.get("/commission/plans/export.csv")
def commission_plans_csv() -> Any:
    header = [
        _("Plan"),
        _("Basis"),
        _("Rate %"),
        _("Valid from"),
        _("Valid to"),
        _("Cap"),
        _("Tiers"),
        _("Updated by"),
    ]
    rows = (
        [
            p.name,
            p.basis,
            p.base_rate * 100,
            p.valid_from,
            p.valid_to,
            p.cap,
            tiers_text(p).replace("\n", "; "),
            p.updated_by,
        ]
        for p in list_plans(db.session, crm_user())
    )
    return csv_download(to_csv(header, rows), "commission-plans.csv")


def _plan_form(plan_id: int | None, status: int = 200, **state: Any) -> Any:
    user = crm_user()
    plan = get_plan(db.session, user, plan_id) if plan_id is not None else None
    if "values" not in state:
        state["values"] = (
            {
                "name": plan.name,
                "basis": plan.basis,
                "base_rate": format((plan.base_rate * 100).normalize(), "f"),
                "valid_from": plan.valid_from.isoformat(),
                "valid_to": plan.valid_to.isoformat() if plan.valid_to else "",
                "cap": str(plan.cap) if plan.cap is not None else "",
                "tiers": tiers_text(plan),
                "users": [m.user_id for m in plan.members if m.user_id],
                "teams": [m.team_id for m in plan.members if m.team_id],
            }
            if plan
            else {"basis": "cash", "tiers": "0 0.8\n80 1.0\n100 1.5", "users": [], "teams": []}
        )
    return render_template(
        "analytics/commission/plan_form.html",
        plan=plan,
        choices=plan_choices(db.session, user),
        history=plan_history(db.session, user, plan.id) if plan else [],
        errors=state.get("errors", {}),
        values=state["values"],
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
        month = _month(request.args) or _last_month()
    except InvalidInput:
        month = _last_month()
    return _coefficients_page(month)


@bp.get("/commission/coefficients/export.csv")
def commission_coefficients_csv() -> Any:
    month = _month(request.args) or _last_month()
    header = [_("Rep"), _("Month"), _("Coefficient"), _("Reason"), _("Set by"), _("Set at")]
    rows = (
        [
            r["user"].display_name,
            f"{month:%Y-%m}",
            r["row"].coefficient if r["row"] else "1.00",
            r["row"].reason if r["row"] else "",
            r["row"].set_by if r["row"] else "",
            r["row"].set_at if r["row"] else "",
        ]
        for r in list_coefficients(db.session, crm_user(), month)
    )
    return csv_download(to_csv(header, rows), f"commission-coefficients-{month:%Y-%m}.csv")


@bp.post("/commission/coefficients")
def commission_set_coefficient() -> Any:
    month = _last_month()
    try:
        month = _month(request.form) or month
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
    chart = {
        "labels": [c.key for c in report.campaigns],
        "cost": [None if c.cost is None else str(c.cost) for c in report.campaigns],
        "revenue": [str(c.revenue) for c in report.campaigns],
        "cash": [str(c.cash) for c in report.campaigns],
        "costLabel": _("Cost"),
        "revenueLabel": _("Revenue (won)"),
        "cashLabel": _("Cash collected"),
    }
    return render_template(
        "analytics/commission/campaigns.html",
        report=report,
        channels=campaign_channels(db.session),
        chart=chart,
        **filters,
    )


CAMPAIGN_COLUMNS = (
    (_l("Campaign"), "key"),
    (_l("Channel"), "channel"),
    (_l("Cost"), "cost"),
    (_l("Leads"), "leads"),
    (_l("Customers"), "customers"),
    (_l("Won"), "won"),
    (_l("Lead → customer %"), "customer_rate"),
    (_l("Customer → won %"), "win_rate"),
    (_l("Lead → won %"), "lead_to_won_rate"),
    (_l("Revenue (won)"), "revenue"),
    (_l("Cash collected"), "cash"),
    (_l("ROI %"), "roi_pct"),
)


@bp.get("/campaigns/export.csv")
def campaign_roi_csv() -> Any:
    """Export the campaigns, then one row per channel and the total."""
    report = campaign_report(db.session, crm_user(), **_campaign_filters())
    channels = [replace(c, key=_("Channel: %(name)s", name=c.key)) for c in report.channels]
    total = replace(report.total, key=_("Total"))
    items = [*report.campaigns, *channels, total]
    return _table_csv(CAMPAIGN_COLUMNS, items, "campaign-roi.csv")
