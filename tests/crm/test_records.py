"""Customers, deals, quotes and orders: bad input is refused by field and nothing is half-saved."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.customers.models import Customer, OwnerChange
from crm.customers.services import PossibleDuplicate, add_contact, create_customer, name_key
from crm.errors import Conflict, InvalidInput
from crm.orders.models import Installment
from crm.orders.services import create_order, register_receipt
from crm.quotes.models import Quote
from crm.quotes.services import accept_quote, create_quote, set_quote_status
from crm.sales.models import StageChange
from crm.sales.services import (
    check_stage_exit,
    close_opportunity,
    enter_stage,
    set_win_rate_override,
)
from tests.conftest import NOW

LINE = [{"description": "CRM licence", "quantity": 10, "unit_price": "1000"}]


def test_customer_duplicate_name_warns_with_matches(session, sales_org):
    rep = sales_org["north"]["reps"][0]
    first = create_customer(session, rep, "Acme Trading Co., Ltd.", now=NOW, owner=rep)
    with pytest.raises(PossibleDuplicate) as warning:
        create_customer(session, rep, "ACME trading", now=NOW, owner=rep)
    assert warning.value.matches == [first]
    assert "Acme Trading Co., Ltd. (#" in warning.value.message
    assert session.scalar(select(func.count()).select_from(Customer)) == 1
    second = create_customer(
        session, rep, "ACME trading", now=NOW, owner=rep, confirm_duplicate=True
    )
    assert second.id != first.id


def test_customer_name_key_folds_chinese_suffix_and_width():
    assert name_key("上海星辰科技有限公司") == name_key("上海星辰科技")
    assert name_key("ＡＣＭＥ Ltd") == name_key("acme")


def test_customer_creation_records_owner_history(session, sales_org):
    rep = sales_org["south"]["reps"][0]
    customer = create_customer(session, rep, "Globex", now=NOW, owner=rep, tier="A")
    [change] = session.scalars(select(OwnerChange).where(OwnerChange.customer_id == customer.id))
    assert (change.reason, change.to_user_id, change.changed_by) == ("create", rep.id, rep.username)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"name": ""}, "name"), ({"tier": "Z"}, "tier")],
)
def test_customer_bad_input_names_the_field(session, sales_org, kwargs, field):
    rep = sales_org["north"]["reps"][0]
    args = {"name": "Initech", "tier": "B"} | kwargs
    with pytest.raises(InvalidInput) as error:
        create_customer(session, rep, args["name"], now=NOW, owner=rep, tier=args["tier"])
    assert field in error.value.fields


def test_contact_buying_role_is_checked(session, sales_org, make_customer):
    rep = sales_org["north"]["reps"][0]
    customer = make_customer(rep)
    with pytest.raises(InvalidInput) as error:
        add_contact(session, rep, customer.id, "Ann", buying_role="boss")
    assert "buying_role" in error.value.fields


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5", "greater than zero"),
        ("abc", "not a number"),
        ("0", "greater than zero"),
        ("1.234", "two decimals"),
        ("NaN", "not a number"),
    ],
)
def test_opportunity_invalid_amount_is_refused(
    session, sales_org, make_opportunity, amount, message
):
    with pytest.raises(InvalidInput) as error:
        make_opportunity(sales_org["north"]["reps"][0], amount=amount)
    assert message in error.value.fields["amount"][0]


def test_opportunity_unknown_pipeline_is_refused(session, sales_org, make_opportunity):
    with pytest.raises(InvalidInput) as error:
        make_opportunity(sales_org["north"]["reps"][0], pipeline="moonshot")
    assert "pipeline" in error.value.fields


def test_win_rate_override_sticks_across_stage_moves(session, sales_org, make_opportunity):
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep)
    enter_stage(session, deal.id, "qualification", 10, now=NOW, by=None)
    assert deal.win_rate == 10
    set_win_rate_override(session, rep, deal.id, 35)
    enter_stage(session, deal.id, "needs_analysis", 20, now=NOW + timedelta(days=3), by=None)
    assert (deal.stage, deal.stage_win_rate, deal.win_rate) == ("needs_analysis", 20, 35)
    set_win_rate_override(session, rep, deal.id, None)
    assert deal.win_rate == 20
    moves = session.scalars(
        select(StageChange.to_stage)
        .where(StageChange.opportunity_id == deal.id)
        .order_by(StageChange.id)
    ).all()
    assert moves == ["qualification", "needs_analysis"]
    with pytest.raises(InvalidInput):
        set_win_rate_override(session, rep, deal.id, 140)


def test_stage_exit_criteria_list_what_is_missing(session, sales_org, make_opportunity):
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep)
    assert check_stage_exit(session, deal.id, "needs_analysis") == {
        "ok": False,
        "missing": ["a decision maker among the customer's contacts"],
    }
    add_contact(session, rep, deal.customer_id, "Dee", buying_role="decision_maker")
    assert check_stage_exit(session, deal.id, "needs_analysis") == {"ok": True, "missing": []}
    assert check_stage_exit(session, deal.id, "qualification")["ok"] is True


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"discount_pct": -1}, "discount_pct"),
        ({"discount_pct": 101}, "discount_pct"),
        ({"payment_days": 400}, "payment_days"),
        ({"lines": []}, "lines"),
        ({"lines": [{"description": "x", "quantity": 0, "unit_price": 1}]}, "lines.1.quantity"),
        ({"lines": [{"description": "x", "quantity": 1, "unit_price": -1}]}, "lines.1.unit_price"),
    ],
)
def test_quote_bad_input_names_the_field_and_saves_nothing(
    session, sales_org, make_opportunity, kwargs, field
):
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep)
    options = dict(kwargs)  # parameters are shared between the SQLite and PostgreSQL runs
    lines = options.pop("lines", LINE)
    with pytest.raises(InvalidInput) as error:
        create_quote(session, rep, deal.id, lines, now=NOW, **options)
    assert field in error.value.fields
    assert session.scalar(select(func.count()).select_from(Quote)) == 0


def test_quote_totals_are_computed_with_discount(session, sales_org, make_opportunity):
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep)
    quote = create_quote(
        session,
        rep,
        deal.id,
        LINE + [{"description": "Setup", "quantity": "1", "unit_price": "2500.50"}],
        now=NOW,
        discount_pct="12.5",
    )
    assert (quote.subtotal, quote.total) == (Decimal("12500.50"), Decimal("10937.94"))
    assert quote.number == f"Q-2026-{quote.id:05d}"


def test_order_installments_must_add_up_and_receipts_pay_oldest_first(
    session, sales_org, make_opportunity
):
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep, amount="9000")
    quote = create_quote(
        session, rep, deal.id, [{"description": "x", "quantity": 1, "unit_price": "9000"}], now=NOW
    )
    set_quote_status(session, quote.id, "approved", "", now=NOW)
    accept_quote(session, rep, quote.id, now=NOW)
    plan = [
        {"due_date": "2026-12-01", "amount": "3000"},
        {"due_date": "2027-01-01", "amount": "3000"},
        {"due_date": "2027-02-01", "amount": "2000"},
    ]
    with pytest.raises(InvalidInput, match="installments") as error:
        create_order(
            session, deal.id, date(2026, 11, 2), plan, now=NOW, by="x", start_collection=False
        )
    assert "agreed amount is 9000.00" in error.value.fields["installments"][0]
    plan[2]["amount"] = "3000"
    order = create_order(
        session, deal.id, date(2026, 11, 2), plan, now=NOW, by="x", start_collection=False
    )
    register_receipt(session, rep, order.id, "4500", date(2026, 11, 20), now=NOW)
    paid = [(i.status, i.paid_amount) for i in order.installments]
    assert paid == [("paid", Decimal("3000")), ("open", Decimal("1500")), ("open", Decimal("0"))]
    with pytest.raises(InvalidInput, match="amount"):
        register_receipt(session, rep, order.id, "5000", date(2026, 11, 21), now=NOW)
    register_receipt(session, rep, order.id, "4500", date(2026, 11, 22), now=NOW)
    assert order.status == "paid"
    assert (
        session.scalar(
            select(func.count()).select_from(Installment).where(Installment.status == "paid")
        )
        == 3
    )


def test_closing_a_lost_deal_needs_a_reason_and_closes_once(session, sales_org, make_opportunity):
    deal = make_opportunity(sales_org["north"]["reps"][0])
    with pytest.raises(InvalidInput):
        close_opportunity(session, deal.id, "lost", " ", now=NOW, by="rita")
    close_opportunity(session, deal.id, "lost", "budget cut", now=NOW, by="rita")
    assert (deal.status, deal.win_rate) == ("lost", 0)
    with pytest.raises(Conflict):
        close_opportunity(session, deal.id, "won", "", now=NOW, by="rita")
