"""API routes for customers, contacts, opportunities, quotes and orders."""

from __future__ import annotations

from typing import Any

from crm.customers.services import add_contact, create_customer, get_customer
from crm.orders.services import get_order, register_receipt
from crm.quotes.services import create_quote, get_quote, submit_quote
from crm.sales.services import create_opportunity, get_opportunity, set_win_rate_override
from engine.db import utcnow
from webapp.api import api_user, bp, dump, load
from webapp.api.schemas import (
    ContactSchema,
    CustomerSchema,
    OpportunitySchema,
    OrderSchema,
    QuoteSchema,
    ReceiptSchema,
    WinRateSchema,
)
from webapp.extensions import db


@bp.post("/customers")
def new_customer() -> Any:
    body = load(CustomerSchema())
    user = api_user()
    customer = create_customer(
        db.session,
        user,
        body["name"],
        now=utcnow(),
        tier=body["tier"],
        owner=user,
        industry=body["industry"],
        phone=body["phone"],
        email=body["email"],
        confirm_duplicate=body["confirm_duplicate"],
    )
    return dump(CustomerSchema(), customer, 201)


@bp.get("/customers/<int:customer_id>")
def show_customer(customer_id: int) -> Any:
    return dump(CustomerSchema(), get_customer(db.session, api_user(), customer_id))


@bp.post("/customers/<int:customer_id>/contacts")
def new_contact(customer_id: int) -> Any:
    body = load(ContactSchema())
    contact = add_contact(
        db.session,
        api_user(),
        customer_id,
        body["name"],
        title=body["title"],
        buying_role=body["buying_role"],
        influence=body["influence"],
    )
    return dump(ContactSchema(), contact, 201)


@bp.post("/opportunities")
def new_opportunity() -> Any:
    body = load(OpportunitySchema())
    user = api_user()
    get_customer(db.session, user, body["customer_id"])
    opportunity = create_opportunity(
        db.session,
        user,
        body["customer_id"],
        body["name"],
        body["amount"],
        now=utcnow(),
        pipeline=body["pipeline"],
        currency=body["currency"],
        expected_close=body["expected_close"],
    )
    return dump(OpportunitySchema(), opportunity, 201)


@bp.get("/opportunities/<int:opportunity_id>")
def show_opportunity(opportunity_id: int) -> Any:
    return dump(OpportunitySchema(), get_opportunity(db.session, api_user(), opportunity_id))


@bp.put("/opportunities/<int:opportunity_id>/win-rate")
def override_win_rate(opportunity_id: int) -> Any:
    body = load(WinRateSchema())
    opportunity = set_win_rate_override(db.session, api_user(), opportunity_id, body["win_rate"])
    return dump(OpportunitySchema(), opportunity)


@bp.post("/quotes")
def new_quote() -> Any:
    body = load(QuoteSchema())
    quote = create_quote(
        db.session,
        api_user(),
        body["opportunity_id"],
        body["lines"],
        now=utcnow(),
        discount_pct=body["discount_pct"],
        payment_days=body["payment_days"],
        delivery_date=body["delivery_date"],
    )
    return dump(QuoteSchema(), quote, 201)


@bp.get("/quotes/<int:quote_id>")
def show_quote(quote_id: int) -> Any:
    return dump(QuoteSchema(), get_quote(db.session, api_user(), quote_id))


@bp.post("/quotes/<int:quote_id>/submit")
def submit(quote_id: int) -> Any:
    return dump(QuoteSchema(), submit_quote(db.session, api_user(), quote_id, now=utcnow()))


@bp.get("/orders/<int:order_id>")
def show_order(order_id: int) -> Any:
    return dump(OrderSchema(), get_order(db.session, api_user(), order_id))


@bp.post("/orders/<int:order_id>/receipts")
def new_receipt(order_id: int) -> Any:
    body = load(ReceiptSchema())
    user = api_user()
    register_receipt(
        db.session,
        user,
        order_id,
        body["amount"],
        body["received_on"],
        now=utcnow(),
        reference=body["reference"],
    )
    return dump(OrderSchema(), get_order(db.session, user, order_id), 201)
