"""API routes for commission (/api/v1/commission/...) and campaign ROI (/api/v1/campaigns/roi).

The same services and scopes as the pages: a rep reads only their own issued statements;
another rep's statement id is a 404.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import jsonify, request
from marshmallow import Schema, fields, validate

import crm.commission  # noqa: F401  (registers the commission tables and operations)
from crm.campaigns.roi import campaign_report
from crm.commission.runs import start_run
from crm.commission.statements import RunSummary, StatementRow, get_statement, list_runs
from crm.commission.statements import run_summary as find_run
from crm.errors import fields_error, msg
from engine.db import utcnow
from webapp.api import api_user, bp, load
from webapp.api.openapi import document
from webapp.api.schemas import MONEY
from webapp.extensions import db

PCT = {"type": "string", "format": "decimal", "example": "120.00"}


def _money(**extra: Any) -> fields.Decimal:
    return fields.Decimal(as_string=True, allow_none=True, metadata=MONEY, **extra)


class CommissionLineSchema(Schema):
    kind = fields.String()
    source_id = fields.Integer(allow_none=True)
    label = fields.String()
    occurred_on = fields.Date(allow_none=True)
    base = _money()
    rate = fields.Decimal(as_string=True)
    tier = fields.String()
    multiplier = fields.Decimal(as_string=True)
    coefficient = fields.Decimal(as_string=True)
    amount = _money()
    comment = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)


class CommissionStatementSummarySchema(Schema):
    id = fields.Integer(attribute="statement.id")
    run_id = fields.Integer(attribute="statement.run_id")
    rep = fields.String(attribute="rep.username")
    rep_name = fields.String(attribute="rep.display_name")
    plan = fields.String(attribute="plan_name")
    basis = fields.String(attribute="statement.basis")
    target = _money(attribute="statement.target")
    achieved = _money(attribute="statement.achieved")
    attainment_pct = fields.Decimal(
        as_string=True, allow_none=True, attribute="statement.attainment_pct", metadata=PCT
    )
    coefficient = fields.Decimal(as_string=True, attribute="statement.coefficient")
    total = _money(attribute="statement.total")
    currency = fields.String(attribute="statement.currency")
    issued_at = fields.DateTime(allow_none=True, attribute="statement.issued_at")


class CommissionStatementSchema(CommissionStatementSummarySchema):
    lines = fields.List(fields.Nested(CommissionLineSchema), attribute="statement.lines")


class CommissionRunSchema(Schema):
    id = fields.Integer(attribute="run.id")
    month = fields.Function(lambda s: f"{s.run.period_start:%Y-%m}")
    status = fields.String(attribute="run.status")
    total = _money()
    approved_by = fields.String(allow_none=True, attribute="run.approved_by")
    issued_at = fields.DateTime(allow_none=True, attribute="run.issued_at")
    statements = fields.List(
        fields.Nested(CommissionStatementSummarySchema), attribute="statements"
    )


class StartCommissionRunSchema(Schema):
    month = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-\d{2}$"))


class CampaignFiguresSchema(Schema):
    name = fields.String(attribute="key")
    channel = fields.String()
    cost = _money()
    leads = fields.Integer()
    customers = fields.Integer()
    won = fields.Integer()
    customer_rate_pct = fields.Decimal(
        as_string=True, allow_none=True, attribute="customer_rate", metadata=PCT
    )
    win_rate_pct = fields.Decimal(
        as_string=True, allow_none=True, attribute="win_rate", metadata=PCT
    )
    lead_to_won_pct = fields.Decimal(
        as_string=True, allow_none=True, attribute="lead_to_won_rate", metadata=PCT
    )
    revenue = _money()
    cash = _money()
    roi_pct = fields.Decimal(as_string=True, allow_none=True, metadata=PCT)


class CampaignReportSchema(Schema):
    campaigns = fields.List(fields.Nested(CampaignFiguresSchema))
    channels = fields.List(fields.Nested(CampaignFiguresSchema))
    total = fields.Nested(CampaignFiguresSchema)
    team_scoped = fields.Boolean()


@bp.get("/commission/runs")
def commission_runs() -> Any:
    runs: list[RunSummary] = list_runs(db.session, api_user())
    return jsonify(CommissionRunSchema(many=True).dump(runs))


@bp.post("/commission/runs")
def commission_start_run() -> Any:
    body = load(StartCommissionRunSchema())
    try:
        month = date.fromisoformat(f"{body['month']}-01")
    except ValueError:
        raise fields_error(month=msg("'%(text)s' is not a month", text=body["month"])) from None
    user = api_user()
    run = start_run(db.session, user, month, now=utcnow())
    return jsonify(CommissionRunSchema().dump(find_run(db.session, user, run.id))), 201


@bp.get("/commission/runs/<int:run_id>")
def commission_run(run_id: int) -> Any:
    return jsonify(CommissionRunSchema().dump(find_run(db.session, api_user(), run_id)))


@bp.get("/commission/statements/<int:statement_id>")
def commission_statement(statement_id: int) -> Any:
    row: StatementRow = get_statement(db.session, api_user(), statement_id)
    return jsonify(CommissionStatementSchema().dump(row))


@bp.get("/campaigns/roi")
def campaign_roi() -> Any:
    values = request.args
    dates = {}
    for name in ("start", "end"):
        text = (values.get(name) or "").strip()
        try:
            dates[name] = date.fromisoformat(text) if text else None
        except ValueError:
            raise fields_error(**{name: f"'{text}' is not a date (YYYY-MM-DD)"}) from None
    report = campaign_report(
        db.session, api_user(), channel=(values.get("channel") or "").strip() or None, **dates
    )
    return jsonify(CampaignReportSchema().dump(report))


document(
    [
        (
            "get",
            "/commission/runs",
            "List commission runs (statements in scope)",
            None,
            "CommissionRun",
            200,
        ),
        (
            "post",
            "/commission/runs",
            "Start the month-end commission run (finance, admins)",
            "StartCommissionRun",
            "CommissionRun",
            201,
        ),
        ("get", "/commission/runs/{run_id}", "Show a commission run", None, "CommissionRun", 200),
        (
            "get",
            "/commission/statements/{statement_id}",
            "Show a statement with its lines",
            None,
            "CommissionStatement",
            200,
        ),
        (
            "get",
            "/campaigns/roi",
            "Campaign conversion, revenue and ROI (query: start, end, channel)",
            None,
            "CampaignReport",
            200,
        ),
    ],
    {
        "CommissionLine": CommissionLineSchema,
        "CommissionStatementSummary": CommissionStatementSummarySchema,
        "CommissionStatement": CommissionStatementSchema,
        "CommissionRun": CommissionRunSchema,
        "StartCommissionRun": StartCommissionRunSchema,
        "CampaignFigures": CampaignFiguresSchema,
        "CampaignReport": CampaignReportSchema,
    },
)
