"""Tables and charts of the analytics pages: the (header, rows) tables that the pages show and
download as CSV, the Chart.js configurations, and the words for the target codes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import abort, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.analytics.forecast import Forecast
from crm.analytics.funnel import Funnel
from crm.analytics.snapshots import Accuracy
from crm.csv_export import to_csv
from crm.targets.listing import TargetRow
from webapp.crm_pages.common import csv_download, label

Table = tuple[list[str], list[list[Any]]]

# Words for the target codes (the shared LABELS cover stages, outcomes and pipelines).
TARGET_LABELS = {
    "sales": _l("Sales"),
    "cash": _l("Collected cash"),
    "year": _l("Year"),
    "quarter": _l("Quarter"),
    "month": _l("Month"),
    "company": _l("Company"),
    "territory": _l("Territory"),
    "team": _l("Team"),
    "user": _l("Rep"),
}


def target_label(code: str) -> str:
    found = TARGET_LABELS.get(code)
    return str(found) if found is not None else label(code)


def csv_response(name: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    return csv_download(to_csv(header, rows), f"{name}.csv")


def table_csv(name: str, tables: dict[str, Table]) -> Any:
    """Download the table named by `?table=...` (404 for an unknown one) as `name-table.csv`."""
    table = request.args.get("table", "")
    if table not in tables:
        abort(404)
    header, rows = tables[table]
    return csv_response(f"{name}-{table}", header, rows)


def _pct(value: Any) -> Any:
    return "" if value is None else value


# --- tables: (header, rows) shared by the pages and their CSV downloads ---------------------


def funnel_tables(funnel: Funnel) -> dict[str, Table]:
    stages = (
        [
            _("Stage"),
            _("Entered"),
            _("Amount"),
            _("Moved on"),
            _("Conversion %"),
            _("Configured win rate %"),
            _("Observed win rate %"),
            _("Won"),
            _("Lost"),
            _("Stays"),
            _("Average days"),
            _("Median days"),
            _("Max days"),
            _("Stale now"),
        ],
        [
            [
                label(s.stage),
                s.entered,
                s.amount,
                s.advanced,
                _pct(s.conversion),
                _pct(s.configured_win_rate),
                _pct(s.observed_win_rate),
                s.won,
                s.lost,
                s.stays,
                _pct(s.avg_days),
                _pct(s.median_days),
                _pct(s.max_days),
                s.stale,
            ]
            for s in funnel.stages
        ],
    )
    reasons = (
        [_("Outcome"), _("Reason"), _("Deals"), _("Amount")],
        [[label(r.outcome), r.reason, r.count, r.amount] for r in funnel.reasons],
    )
    stale = (
        [_("Deal"), _("Owner"), _("Stage"), _("In stage since"), _("Days in stage"), _("Max days")],
        [
            [d.name, d.owner, label(d.stage), d.stage_since, d.days_in_stage, d.max_days]
            for d in funnel.stale_deals
        ],
    )
    return {"stages": stages, "reasons": reasons, "stale": stale}


def forecast_tables(
    forecast: Forecast, accuracy: Accuracy, shown: set[int] | None = None
) -> dict[str, Table]:
    """Return the forecast's tables; `shown` limits the per-rep tables to some reps."""
    totals = (
        [
            _("Month"),
            _("Won"),
            _("Weighted pipeline"),
            _("Commit (reps)"),
            _("Commit (adjusted)"),
            _("Best case"),
            _("Target"),
            _("Attainment %"),
        ],
        [
            [
                m.strftime("%Y-%m"),
                t.won,
                t.weighted,
                t.commit,
                t.adjusted_commit,
                t.best_case,
                _pct(t.target),
                _pct(t.attainment),
            ]
            for m, t in forecast.totals.items()
        ],
    )
    reps = (
        [
            _("Rep"),
            _("Team"),
            _("Month"),
            _("Won"),
            _("Weighted pipeline"),
            _("Commit"),
            _("Best case"),
            _("Manager's number"),
            _("Comment"),
            _("Target"),
        ],
        [
            [
                r.name,
                r.team,
                m.strftime("%Y-%m"),
                c.won,
                c.weighted,
                _pct(c.commit),
                _pct(c.best_case),
                _pct(c.adjusted),
                c.comment,
                _pct(c.target),
            ]
            for r in forecast.reps
            if shown is None or r.user_id in shown
            for m, c in r.months.items()
        ],
    )
    header = [
        _("Week of"),
        _("Month"),
        _("Forecast (weighted)"),
        _("Commit"),
        _("Won"),
        _("Weighted accuracy %"),
        _("Commit accuracy %"),
    ]
    team_rows = [
        [
            w,
            m.strftime("%Y-%m"),
            c.weighted,
            _pct(c.commit),
            c.actual,
            _pct(c.weighted_accuracy),
            _pct(c.commit_accuracy),
        ]
        for (w, m), c in sorted(accuracy.team.items())
    ]
    rep_rows = [
        [
            r.name,
            w,
            m.strftime("%Y-%m"),
            c.weighted,
            _pct(c.commit),
            c.actual,
            _pct(c.weighted_accuracy),
            _pct(c.commit_accuracy),
        ]
        for r in accuracy.reps
        if shown is None or r.user_id in shown
        for (w, m), c in sorted(r.cells.items())
    ]
    return {
        "totals": totals,
        "reps": reps,
        "accuracy": (header, team_rows),
        "rep_accuracy": ([_("Rep"), *header], rep_rows),
    }


def target_table(rows: list[TargetRow]) -> Table:
    return (
        [
            _("Metric"),
            _("Period"),
            _("Starts"),
            _("Scope"),
            _("Name"),
            _("Target"),
            _("Part of"),
            _("Parts add up to"),
            _("Unallocated"),
            _("Actual"),
            _("Attainment %"),
        ],
        [
            [
                target_label(r.target.metric),
                target_label(r.target.period_kind),
                r.target.period_start,
                target_label(r.target.scope_kind),
                r.scope_name,
                r.target.amount,
                f"#{r.parent.id}" if r.parent else "",
                _pct(r.parts_total),
                _pct(r.gap),
                r.actual,
                "" if r.ratio is None else r.ratio * 100,
            ]
            for r in rows
        ],
    )


# --- chart data (Chart.js configurations, passed to the page with |tojson) -------------------


def funnel_charts(funnel: Funnel) -> dict[str, Any]:
    labels = [label(s.stage) for s in funnel.stages]
    return {
        "funnel": {
            "type": "bar",
            "data": {
                "labels": labels,
                "datasets": [
                    {"label": _("Entered"), "data": [s.entered for s in funnel.stages]},
                    {"label": _("Moved on"), "data": [s.advanced for s in funnel.stages]},
                ],
            },
            "options": {"indexAxis": "y"},
        },
        "dwell": {
            "type": "bar",
            "data": {
                "labels": labels,
                "datasets": [
                    {"label": _("Average days"), "data": [_num(s.avg_days) for s in funnel.stages]},
                    {
                        "label": _("Median days"),
                        "data": [_num(s.median_days) for s in funnel.stages],
                    },
                    {
                        "label": _("Max days"),
                        "type": "line",
                        "data": [s.max_days for s in funnel.stages],
                    },
                ],
            },
        },
    }


def forecast_charts(forecast: Forecast, accuracy: Accuracy) -> dict[str, Any]:
    months = [m.strftime("%Y-%m") for m in forecast.months]
    totals = list(forecast.totals.values())
    focus = forecast.months[0]
    weeks = [w.isoformat() for w in accuracy.weeks]
    trend = [accuracy.team.get((w, focus)) for w in accuracy.weeks]
    return {
        "forecast": {
            "type": "bar",
            "data": {
                "labels": months,
                "datasets": [
                    {"label": _("Won"), "data": [_num(t.won) for t in totals]},
                    {"label": _("Weighted pipeline"), "data": [_num(t.weighted) for t in totals]},
                    {
                        "label": _("Commit (adjusted)"),
                        "data": [_num(t.adjusted_commit) for t in totals],
                    },
                    {"label": _("Best case"), "data": [_num(t.best_case) for t in totals]},
                    {
                        "label": _("Target"),
                        "type": "line",
                        "data": [_num(t.target) for t in totals],
                    },
                ],
            },
        },
        "trend": {
            "type": "line",
            "data": {
                "labels": weeks,
                "datasets": [
                    {
                        "label": _("Forecast (weighted) for %(month)s", month=months[0]),
                        "data": [_num(c.weighted) if c else None for c in trend],
                    },
                    {
                        "label": _("Commit for %(month)s", month=months[0]),
                        "data": [_num(c.commit) if c else None for c in trend],
                    },
                    {
                        "label": _("Won in %(month)s", month=months[0]),
                        "data": [_num(c.actual) if c else None for c in trend],
                    },
                ],
            },
        },
    }


def _num(value: Any) -> float | None:
    return None if value is None else float(value)
