"""Tables and charts of the commission and campaign pages: the month a form names, the CSV
downloads (header and rows), the plan editor's values and the Chart.js data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from operator import attrgetter
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.campaigns.roi import CampaignReport
from crm.commission.models import CommissionPlan
from crm.commission.plans import tiers_text
from crm.commission.statements import RunSummary
from crm.csv_export import to_csv
from crm.errors import fields_error, msg
from webapp.crm_pages.common import csv_download

Table = tuple[list[str], Iterable[list[Any]]]

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
NEW_PLAN_VALUES = {"basis": "cash", "tiers": "0 0.8\n80 1.0\n100 1.5", "users": [], "teams": []}


def parse_month(values: Any, name: str = "month") -> date | None:
    """Return the first day of the month a form or query names (`2026-09`); None when empty.

    :raises InvalidInput: naming the field when the text is not a month.
    """
    text = str(values.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(f"{text}-01" if len(text) == 7 else text).replace(day=1)
    except ValueError:
        raise fields_error(
            **{name: msg("'%(text)s' is not a month (YYYY-MM)", text=text)}
        ) from None


def month_before(today: date) -> date:
    """Return the first day of the month before `today`'s."""
    first = today.replace(day=1)
    return date.fromordinal(first.toordinal() - 1).replace(day=1)


def table_csv(columns: tuple[tuple[Any, str], ...], items: Iterable[Any], filename: str) -> Any:
    """Download `items` as CSV, one column per (header, attribute path)."""
    getters = [attrgetter(path) for _, path in columns]
    rows = ([get(item) for get in getters] for item in items)
    return csv_download(to_csv([str(h) for h, _ in columns], rows), filename)


def runs_table(runs: Iterable[RunSummary]) -> Table:
    """Return the runs list as a CSV table: month, status, statements, total, issue time."""
    header = [_("Month"), _("Status"), _("Statements"), _("Total"), _("Issued at")]
    rows = (
        [f"{s.run.period_start:%Y-%m}", s.run.status, len(s.statements), s.total, s.run.issued_at]
        for s in runs
    )
    return header, rows


def run_chart(summary: RunSummary) -> dict[str, Any]:
    """Return the run page's chart data: each rep's commission and attainment."""
    return {
        "labels": [s.rep.display_name for s in summary.statements],
        "totals": [str(s.statement.total) for s in summary.statements],
        "attainment": [
            None if s.statement.attainment_pct is None else str(s.statement.attainment_pct)
            for s in summary.statements
        ],
        "totalLabel": _("Commission"),
        "attainmentLabel": _("Attainment %"),
    }


def plans_table(plans: Iterable[CommissionPlan]) -> Table:
    """Return the plans as a CSV table, one row per plan with its tiers on one line."""
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
        for p in plans
    )
    return header, rows


def plan_values(plan: CommissionPlan | None) -> dict[str, Any]:
    """Return the plan editor's field values for a saved plan (or a new one)."""
    if plan is None:
        return dict(NEW_PLAN_VALUES)
    return {
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


def coefficients_table(coefficients: Iterable[dict[str, Any]], month: date) -> Table:
    """Return the month's coefficients as a CSV table (1.00 for a rep without one)."""
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
        for r in coefficients
    )
    return header, rows


def campaign_chart(report: CampaignReport) -> dict[str, Any]:
    """Return the campaign page's chart data: cost, revenue and cash per campaign."""
    return {
        "labels": [c.key for c in report.campaigns],
        "cost": [None if c.cost is None else str(c.cost) for c in report.campaigns],
        "revenue": [str(c.revenue) for c in report.campaigns],
        "cash": [str(c.cash) for c in report.campaigns],
        "costLabel": _("Cost"),
        "revenueLabel": _("Revenue (won)"),
        "cashLabel": _("Cash collected"),
    }


def campaign_rows(report: CampaignReport) -> list[Any]:
    """Return the campaigns, then one row per channel and the total (for the CSV)."""
    channels = [replace(c, key=_("Channel: %(name)s", name=c.key)) for c in report.channels]
    return [*report.campaigns, *channels, replace(report.total, key=_("Total"))]
