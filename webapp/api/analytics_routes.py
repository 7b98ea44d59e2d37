"""API routes for analytics (/api/v1/analytics/...): the funnel, forecast, accuracy and targets
with the same services, filters and data scopes as the pages."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import request
from marshmallow import Schema, fields, validate

from crm.analytics.forecast import adjust_forecast, build_forecast, set_forecast_entry
from crm.analytics.funnel import build_funnel
from crm.analytics.snapshots import forecast_accuracy
from crm.errors import fields_error
from crm.sales.models import PIPELINES
from crm.targets.listing import list_targets, visible_attainment
from crm.targets.models import METRICS, PERIOD_KINDS, SCOPE_KINDS
from crm.targets.services import TargetKey, delete_target, set_target
from engine.db import utcnow
from webapp.analytics.pages import deal_filter, months_of
from webapp.api import api_user, bp, dump, load
from webapp.api.openapi import document
from webapp.api.schemas import MONEY
from webapp.crm_pages.common import form_date, form_int
from webapp.extensions import db


def _money(**extra: Any) -> fields.Decimal:
    return fields.Decimal(as_string=True, metadata=MONEY, **extra)


def _rate() -> fields.Decimal:
    return fields.Decimal(as_string=True, allow_none=True)


class StageFiguresSchema(Schema):
    stage = fields.String()
    entered = fields.Integer()
    amount = _money()
    advanced = fields.Integer()
    conversion = _rate()
    configured_win_rate = fields.Integer(allow_none=True)
    observed_win_rate = _rate()
    won = fields.Integer()
    lost = fields.Integer()
    stays = fields.Integer()
    avg_days = _rate()
    median_days = _rate()
    max_days = fields.Float(allow_none=True)
    stale = fields.Integer()


class ReasonSchema(Schema):
    outcome = fields.String()
    reason = fields.String()
    count = fields.Integer()
    amount = _money()


class StaleDealSchema(Schema):
    opportunity_id = fields.Integer()
    name = fields.String()
    owner = fields.String()
    stage = fields.String()
    stage_since = fields.DateTime()
    days_in_stage = _rate()
    max_days = fields.Float()


class FunnelSchema(Schema):
    pipeline = fields.String()
    period_start = fields.Date()
    period_end = fields.Date()
    stages = fields.List(fields.Nested(StageFiguresSchema))
    won_count = fields.Integer()
    won_amount = _money()
    lost_count = fields.Integer()
    lost_amount = _money()
    win_rate = _rate()
    avg_deal_size = _money(allow_none=True)
    avg_cycle_days_won = _rate()
    avg_cycle_days_lost = _rate()
    reasons = fields.List(fields.Nested(ReasonSchema))
    stale_deals = fields.List(fields.Nested(StaleDealSchema))


class MonthFiguresSchema(Schema):
    month = fields.Date()
    weighted = _money()
    won = _money()
    commit = _money(allow_none=True)
    best_case = _money(allow_none=True)
    adjusted = _money(allow_none=True)
    comment = fields.String()
    adjusted_by = fields.String()
    target = _money(allow_none=True)


class MonthTotalSchema(Schema):
    month = fields.Date()
    weighted = _money()
    won = _money()
    commit = _money()
    adjusted_commit = _money()
    best_case = _money()
    target = _money(allow_none=True)
    attainment = _rate()


class RepForecastSchema(Schema):
    user_id = fields.Integer()
    name = fields.String()
    team = fields.String()
    months = fields.List(fields.Nested(MonthFiguresSchema))


class ForecastSchema(Schema):
    months = fields.List(fields.Date())
    totals = fields.List(fields.Nested(MonthTotalSchema))
    reps = fields.List(fields.Nested(RepForecastSchema))


class AccuracyCellSchema(Schema):
    user_id = fields.Integer(allow_none=True)
    name = fields.String()
    week_start = fields.Date()
    month = fields.Date()
    weighted = _money()
    commit = _money(allow_none=True)
    actual = _money()
    weighted_accuracy = _rate()
    commit_accuracy = _rate()


class AccuracySchema(Schema):
    weeks = fields.List(fields.Date())
    team = fields.List(fields.Nested(AccuracyCellSchema))
    reps = fields.List(fields.Nested(AccuracyCellSchema))


class ForecastEntrySchema(Schema):
    month = fields.Date(required=True)
    commit = _money(required=True)
    best_case = _money(required=True)


class AdjustmentSchema(Schema):
    rep_id = fields.Integer(required=True)
    month = fields.Date(required=True)
    amount = _money(required=True)
    comment = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class TargetSchema(Schema):
    id = fields.Integer(dump_only=True)
    metric = fields.String(required=True, validate=validate.OneOf(METRICS))
    period_kind = fields.String(required=True, validate=validate.OneOf(PERIOD_KINDS))
    period_start = fields.Date(required=True)
    scope_kind = fields.String(required=True, validate=validate.OneOf(SCOPE_KINDS))
    scope_id = fields.Integer(load_default=None, allow_none=True)
    parent_id = fields.Integer(load_default=None, allow_none=True)
    amount = _money(required=True)
    set_by = fields.String(dump_only=True)


class TargetRowSchema(TargetSchema):
    scope_name = fields.String(dump_only=True)
    parts_total = _money(dump_only=True, allow_none=True)
    gap = _money(dump_only=True, allow_none=True)
    actual = _money(dump_only=True)
    ratio = fields.Decimal(as_string=True, dump_only=True, allow_none=True)


class AttainmentSchema(Schema):
    target = _money(allow_none=True)
    actual = _money()
    ratio = fields.Decimal(as_string=True, allow_none=True)


@bp.get("/analytics/funnel")
def analytics_funnel() -> Any:
    flt = deal_filter(request.args, pipeline=PIPELINES[0])
    return dump(FunnelSchema(), build_funnel(db.session, api_user(), flt, now=utcnow()))


@bp.get("/analytics/forecast")
def analytics_forecast() -> Any:
    flt = deal_filter(request.args, pipeline=None)
    result = build_forecast(db.session, api_user(), flt, months_of(request.args, flt), now=utcnow())
    shaped = {
        "months": result.months,
        "totals": [
            {"month": m, **vars(t), "attainment": t.attainment} for m, t in result.totals.items()
        ],
        "reps": [
            {
                "user_id": r.user_id,
                "name": r.name,
                "team": r.team,
                "months": [{"month": m, **vars(c)} for m, c in r.months.items()],
            }
            for r in result.reps
        ],
    }
    return dump(ForecastSchema(), shaped)


@bp.get("/analytics/accuracy")
def analytics_accuracy() -> Any:
    flt = deal_filter(request.args, pipeline=None)
    result = forecast_accuracy(
        db.session, api_user(), flt, months_of(request.args, flt), now=utcnow()
    )

    def cell(week: date, month: date, c: Any, **who: Any) -> dict[str, Any]:
        return {
            "week_start": week,
            "month": month,
            **vars(c),
            **who,
            "weighted_accuracy": c.weighted_accuracy,
            "commit_accuracy": c.commit_accuracy,
        }

    shaped = {
        "weeks": result.weeks,
        "team": [cell(w, m, c) for (w, m), c in sorted(result.team.items())],
        "reps": [
            cell(w, m, c, user_id=r.user_id, name=r.name)
            for r in result.reps
            for (w, m), c in sorted(r.cells.items())
        ],
    }
    return dump(AccuracySchema(), shaped)


@bp.put("/analytics/forecast/entries")
def analytics_forecast_entry() -> Any:
    body = load(ForecastEntrySchema())
    entry = set_forecast_entry(
        db.session, api_user(), body["month"], body["commit"], body["best_case"], now=utcnow()
    )
    return dump(
        ForecastEntrySchema(),
        {"month": entry.month, "commit": entry.commit_amount, "best_case": entry.best_case_amount},
    )


@bp.put("/analytics/forecast/adjustments")
def analytics_forecast_adjustment() -> Any:
    body = load(AdjustmentSchema())
    adjustment = adjust_forecast(
        db.session,
        api_user(),
        body["rep_id"],
        body["month"],
        body["amount"],
        body["comment"],
        now=utcnow(),
    )
    return dump(
        AdjustmentSchema(),
        {
            "rep_id": adjustment.user_id,
            "month": adjustment.month,
            "amount": adjustment.amount,
            "comment": adjustment.comment,
        },
    )


@bp.get("/analytics/targets")
def analytics_targets() -> Any:
    now = utcnow()
    year = form_int(request.args, "year") or now.year
    metric = request.args.get("metric") or None
    if metric is not None and metric not in METRICS:
        raise fields_error(metric=f"must be one of {', '.join(METRICS)}")
    rows = list_targets(db.session, api_user(), year=year, now=now, metric=metric)
    shaped = [
        {
            **{
                c: getattr(r.target, c)
                for c in (
                    "id",
                    "metric",
                    "period_kind",
                    "period_start",
                    "scope_kind",
                    "scope_id",
                    "parent_id",
                    "amount",
                    "set_by",
                )
            },
            "scope_name": r.scope_name,
            "parts_total": r.parts_total,
            "gap": r.gap,
            "actual": r.actual,
            "ratio": r.ratio,
        }
        for r in rows
    ]
    return dump(TargetRowSchema(many=True), shaped)


@bp.post("/analytics/targets")
def analytics_set_target() -> Any:
    body = load(TargetSchema())
    key = TargetKey(
        body["metric"],
        body["period_kind"],
        body["period_start"],
        body["scope_kind"],
        body["scope_id"],
    )
    target = set_target(
        db.session, api_user(), key, body["amount"], now=utcnow(), parent_id=body["parent_id"]
    )
    return dump(TargetSchema(), target, 201)


@bp.delete("/analytics/targets/<int:target_id>")
def analytics_delete_target(target_id: int) -> Any:
    delete_target(db.session, api_user(), target_id)
    return "", 204


@bp.get("/analytics/attainment")
def analytics_attainment() -> Any:
    args = request.args
    period_start = form_date(args, "period_start")
    if period_start is None:
        raise fields_error(period_start="is required (YYYY-MM-DD)")
    target, actual, ratio = visible_attainment(
        db.session,
        api_user(),
        scope_kind=args.get("scope_kind", ""),
        scope_id=form_int(args, "scope_id"),
        metric=args.get("metric", ""),
        period_start=period_start,
        period_kind=args.get("period_kind", ""),
        now=utcnow(),
    )
    return dump(AttainmentSchema(), {"target": target, "actual": actual, "ratio": ratio})


document(
    [
        (
            "get",
            "/analytics/funnel",
            "Funnel of a pipeline and period (filters as query "
            "parameters: pipeline, start, end, team, rep, territory, product)",
            None,
            "Funnel",
            200,
        ),
        (
            "get",
            "/analytics/forecast",
            "Forecast by close month (month=YYYY-MM, months, filters)",
            None,
            "Forecast",
            200,
        ),
        (
            "get",
            "/analytics/accuracy",
            "Forecast accuracy per snapshot week",
            None,
            "Accuracy",
            200,
        ),
        (
            "put",
            "/analytics/forecast/entries",
            "Set my commit and best case for a month",
            "ForecastEntry",
            "ForecastEntry",
            200,
        ),
        (
            "put",
            "/analytics/forecast/adjustments",
            "Adjust a subordinate's forecast",
            "ForecastAdjustment",
            "ForecastAdjustment",
            200,
        ),
        (
            "get",
            "/analytics/targets",
            "Targets of a year with attainment (year, metric)",
            None,
            "TargetRow",
            200,
        ),
        ("post", "/analytics/targets", "Set a target (create or change)", "Target", "Target", 201),
        (
            "delete",
            "/analytics/targets/{target_id}",
            "Remove a target without parts",
            None,
            None,
            204,
        ),
        (
            "get",
            "/analytics/attainment",
            "Attainment of a scope (scope_kind, scope_id, metric, period_kind, period_start)",
            None,
            "Attainment",
            200,
        ),
    ],
    {
        "Funnel": FunnelSchema,
        "Forecast": ForecastSchema,
        "Accuracy": AccuracySchema,
        "ForecastEntry": ForecastEntrySchema,
        "ForecastAdjustment": AdjustmentSchema,
        "Target": TargetSchema,
        "TargetRow": TargetRowSchema,
        "Attainment": AttainmentSchema,
    },
)
