"""API routes for leads, pools, activities and daily reports: the pages' services, as JSON."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import request

from crm.activities.services import (
    customer_activities,
    daily_reports,
    log_activity,
    recent_activities,
    save_daily_report,
)
from crm.directory.services import get_user
from crm.errors import fields_error, msg
from crm.leads.work import (
    assign_lead_to,
    capture_lead,
    claim_lead,
    lead_view,
    list_lead_pools,
    list_leads,
    list_pool_leads,
    qualify_lead,
    show_lead,
)
from crm.pool.services import (
    claim_customer,
    customer_view,
    list_customer_pools,
    list_pool_customers,
    release_customer,
)
from crm.sales.services import get_opportunity
from engine.db import utcnow
from webapp.api import api_user, bp, dump, load
from webapp.api.schemas import (
    ActivitySchema,
    AssignSchema,
    CloseLeadSchema,
    ConvertLeadSchema,
    DailyReportSchema,
    LeadSchema,
    NewLeadSchema,
    PoolCustomerSchema,
    PoolSchema,
    ReleaseSchema,
)
from webapp.extensions import db

MAX_LIMIT = 200


def _limit() -> int:
    text = request.args.get("limit", "100")
    if not text.isdigit() or not 0 < int(text) <= MAX_LIMIT:
        raise fields_error(limit=msg("must be a whole number from 1 to %(max)s", max=MAX_LIMIT))
    return int(text)


def _int_arg(name: str) -> int | None:
    text = request.args.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise fields_error(**{name: msg("'%(text)s' is not a whole number", text=text)})
    return int(text)


# Leads


@bp.get("/leads")
def leads() -> Any:
    found = list_leads(
        db.session,
        api_user(),
        status=request.args.get("status") or None,
        pool_id=_int_arg("pool_id"),
        limit=_limit(),
    )
    return dump(LeadSchema(many=True), found)


@bp.post("/leads")
def new_lead() -> Any:
    body = load(NewLeadSchema())
    lead = capture_lead(
        db.session,
        api_user(),
        body.pop("name"),
        now=utcnow(),
        pool_id=body.pop("pool_id"),
        **body,
    )
    return dump(LeadSchema(), lead_view(lead), 201)


@bp.get("/leads/<int:lead_id>")
def lead(lead_id: int) -> Any:
    return dump(LeadSchema(), show_lead(db.session, api_user(), lead_id))


@bp.post("/leads/<int:lead_id>/claim")
def claim_a_lead(lead_id: int) -> Any:
    lead = claim_lead(db.session, api_user(), lead_id, now=utcnow())
    return dump(LeadSchema(), lead_view(lead))


@bp.post("/leads/<int:lead_id>/assign")
def assign_a_lead(lead_id: int) -> Any:
    body = load(AssignSchema())
    lead = assign_lead_to(
        db.session, api_user(), lead_id, get_user(db.session, body["user_id"]), now=utcnow()
    )
    return dump(LeadSchema(), lead_view(lead))


@bp.post("/leads/<int:lead_id>/convert")
def convert_lead(lead_id: int) -> Any:
    body = load(ConvertLeadSchema())
    data = {
        **body,
        "qualification": "convert",
        "amount": float(body["amount"]),
        "expected_close": body["expected_close"].isoformat(),
    }
    lead = qualify_lead(db.session, api_user(), lead_id, data, now=utcnow())
    return dump(LeadSchema(), lead_view(lead))


@bp.post("/leads/<int:lead_id>/disqualify")
def disqualify_lead(lead_id: int) -> Any:
    return _close(lead_id, "disqualify")


@bp.post("/leads/<int:lead_id>/return")
def return_lead(lead_id: int) -> Any:
    return _close(lead_id, "return_to_pool")


def _close(lead_id: int, decision: str) -> Any:
    body = load(CloseLeadSchema())
    data = {"qualification": decision, "reason": body["reason"]}
    lead = qualify_lead(db.session, api_user(), lead_id, data, now=utcnow())
    return dump(LeadSchema(), lead_view(lead))


# Pools


@bp.get("/pools")
def pools() -> Any:
    rows = [*list_customer_pools(db.session), *list_lead_pools(db.session)]
    found = [
        {
            "id": pool.id,
            "name": pool.name,
            "kind": pool.kind,
            "territory_id": pool.territory_id,
            "product_line": pool.product_line,
            "waiting": waiting,
        }
        for pool, waiting in sorted(rows, key=lambda row: (row[0].kind, row[0].name))
    ]
    return dump(PoolSchema(many=True), found)


@bp.get("/pools/<int:pool_id>/customers")
def pool_customers(pool_id: int) -> Any:
    tier = request.args.get("tier") or None
    found = list_pool_customers(db.session, api_user(), pool_id, tier=tier, limit=_limit())
    return dump(PoolCustomerSchema(many=True), found)


@bp.get("/pools/<int:pool_id>/leads")
def pool_leads(pool_id: int) -> Any:
    return dump(LeadSchema(many=True), list_pool_leads(db.session, pool_id, limit=_limit()))


@bp.post("/customers/<int:customer_id>/claim")
def claim_a_customer(customer_id: int) -> Any:
    user = api_user()
    claim_customer(db.session, user, customer_id, now=utcnow())
    return dump(PoolCustomerSchema(), customer_view(db.session, user, customer_id))


@bp.post("/customers/<int:customer_id>/release")
def release_a_customer(customer_id: int) -> Any:
    body = load(ReleaseSchema())
    user = api_user()
    release_customer(
        db.session, user, customer_id, body["reason"], now=utcnow(), pool_id=body["pool_id"]
    )
    return dump(PoolCustomerSchema(), customer_view(db.session, user, customer_id))


# Activities and daily reports


def _activity_rows(rows: list[Any]) -> list[Any]:
    return [row.activity for row in rows]


@bp.get("/activities")
def my_activities() -> Any:
    rows = recent_activities(db.session, api_user(), limit=_limit())
    return dump(ActivitySchema(many=True), _activity_rows(rows))


@bp.get("/customers/<int:customer_id>/activities")
def activities_of_customer(customer_id: int) -> Any:
    rows = customer_activities(db.session, api_user(), customer_id, limit=_limit())
    return dump(ActivitySchema(many=True), _activity_rows(rows))


@bp.post("/customers/<int:customer_id>/activities")
def new_customer_activity(customer_id: int) -> Any:
    return _log(customer_id, load(ActivitySchema()))


@bp.get("/opportunities/<int:opportunity_id>/activities")
def activities_of_opportunity(opportunity_id: int) -> Any:
    user = api_user()
    deal = get_opportunity(db.session, user, opportunity_id)
    rows = customer_activities(db.session, user, deal.customer_id, limit=MAX_LIMIT)
    found = [row.activity for row in rows if row.activity.opportunity_id == deal.id]
    return dump(ActivitySchema(many=True), found)


@bp.post("/opportunities/<int:opportunity_id>/activities")
def new_opportunity_activity(opportunity_id: int) -> Any:
    body = load(ActivitySchema())
    deal = get_opportunity(db.session, api_user(), opportunity_id)
    return _log(deal.customer_id, {**body, "opportunity_id": deal.id})


def _log(customer_id: int, body: dict[str, Any]) -> Any:
    activity = log_activity(
        db.session,
        api_user(),
        customer_id,
        body["kind"],
        body["subject"],
        now=utcnow(),
        body=body["body"],
        next_followup_on=body["next_followup_on"],
        opportunity_id=body["opportunity_id"],
    )
    return dump(ActivitySchema(), activity, 201)


@bp.get("/reports/daily")
def daily_report_list() -> Any:
    text = request.args.get("day")
    day = None
    if text:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise fields_error(
                day=msg("'%(text)s' is not a date (YYYY-MM-DD)", text=text)
            ) from None
    rows = daily_reports(db.session, api_user(), day=day, limit=_limit())
    found = [
        {
            "id": r.id,
            "user_id": r.user_id,
            "user_name": name,
            "day": r.day,
            "summary": r.summary,
            "plan": r.plan,
        }
        for r, name in rows
    ]
    return dump(DailyReportSchema(many=True), found)


@bp.put("/reports/daily")
def save_my_daily_report() -> Any:
    body = load(DailyReportSchema())
    user = api_user()
    report = save_daily_report(db.session, user, body["summary"], body["plan"], now=utcnow())
    found = {
        "id": report.id,
        "user_id": report.user_id,
        "user_name": user.display_name,
        "day": report.day,
        "summary": report.summary,
        "plan": report.plan,
    }
    return dump(DailyReportSchema(), found)
