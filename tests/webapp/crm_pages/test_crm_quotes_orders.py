"""The quote editor, submission and approval history; orders with receipts and invoices."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from crm.directory.models import User
from crm.quotes.models import PriceBook, PriceBookEntry, Product, Quote
from crm.work import complete_task_as
from engine.models import HumanTask
from tests.conftest import NOW
from tests.webapp.crm_pages.conftest import token_of


def _quote_count(in_app) -> int:
    return in_app(lambda s: len(s.scalars(select(Quote.id)).all()))


def test_crm_quote_negative_discount_keeps_the_typed_values(world, login_as, in_app):
    client = login_as("north_rep1")
    path = f"/opportunities/{world.deal_id}/quotes/new"
    token = token_of(client, path)
    before = _quote_count(in_app)
    response = client.post(
        path,
        data={
            "csrf_token": token,
            "line-0-description": "Widget <b>pro</b>",
            "line-0-quantity": "2",
            "line-0-unit_price": "10.50",
            "discount_pct": "-5",
            "payment_days": "45",
            "delivery_date": "2026-12-24",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "must be between 0 and 100" in page
    assert 'value="-5"' in page
    assert 'value="Widget &lt;b&gt;pro&lt;/b&gt;"' in page
    assert 'value="10.50"' in page
    assert 'value="45"' in page
    assert 'value="2026-12-24"' in page
    assert _quote_count(in_app) == before


def test_crm_quote_line_errors_name_the_row(world, login_as):
    client = login_as("north_rep1")
    path = f"/opportunities/{world.deal_id}/quotes/new"
    token = token_of(client, path)
    response = client.post(
        path,
        data={
            "csrf_token": token,
            "line-0-description": "Good line",
            "line-0-quantity": "1",
            "line-0-unit_price": "5",
            "line-3-description": "Bad line",
            "line-3-quantity": "abc",
            "line-3-unit_price": "5",
            "payment_days": "soon",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "must be a whole number of days" in page
    # Blank rows in between are dropped: the bad line is shown as the second row, with its value.
    assert (
        'name="line-1-quantity" aria-label="Quantity 2" inputmode="decimal" size="6" value="abc"'
        in page
    )


def test_crm_quote_editor_prices_from_the_price_book_and_computes_totals(world, login_as, in_app):
    def catalogue(session):
        book = PriceBook(name="Standard", currency="CNY", is_default=True)
        product = Product(sku="SEAT", name="Seat licence", product_line="software")
        session.add_all([book, product])
        session.flush()
        session.add(
            PriceBookEntry(price_book_id=book.id, product_id=product.id, unit_price=Decimal("1200"))
        )
        return product.id

    product_id = in_app(catalogue)
    client = login_as("north_rep1")
    path = f"/opportunities/{world.deal_id}/quotes/new"
    assert "SEAT · Seat licence" in client.get(path).get_data(as_text=True)
    token = token_of(client, path)
    response = client.post(
        path,
        data={
            "csrf_token": token,
            "line-0-product": str(product_id),
            "line-0-quantity": "3",
            "line-1-description": "Setup",
            "line-1-quantity": "1",
            "line-1-unit_price": "400.00",
            "discount_pct": "10",
            # A total sent by the client is ignored.
            "total": "1",
        },
    )
    assert response.status_code == 302
    quote_id = int(response.headers["Location"].rsplit("/", 1)[1])
    totals = in_app(lambda s: (s.get(Quote, quote_id).subtotal, s.get(Quote, quote_id).total))
    assert totals == (Decimal("4000.00"), Decimal("3600.00"))
    page = client.get(f"/quotes/{quote_id}").get_data(as_text=True)
    assert "Seat licence" in page
    assert "CN¥3,600.00" in page
    # Editing the draft recomputes the totals.
    edit = f"/quotes/{quote_id}/edit"
    assert 'value="Setup"' in client.get(edit).get_data(as_text=True)
    client.post(
        edit,
        data={
            "csrf_token": token,
            "line-0-description": "Setup",
            "line-0-quantity": "2",
            "line-0-unit_price": "400",
            "discount_pct": "0",
        },
    )
    assert in_app(lambda s: s.get(Quote, quote_id).total) == Decimal("800.00")


def test_crm_quote_submit_shows_the_approval_history(world, test_processes, login_as, in_app):
    client = login_as("north_rep1")
    path = f"/quotes/{world.quote_id}"
    token = token_of(client, path)
    assert client.post(f"{path}/submit", data={"csrf_token": token}).status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "Pending approval" in page
    assert "Approve the quote (manager)" in page  # waiting for the manager
    assert "north_manager" in page

    def approve(session):
        task = session.scalar(select(HumanTask).where(HumanTask.status == "open"))
        manager = session.get(User, world.users["north_manager"])
        complete_task_as(
            session,
            manager,
            task.id,
            {"manager_decision": "approve", "manager_comment": "Fine by me"},
            now=NOW,
        )

    in_app(approve)
    page = client.get(path).get_data(as_text=True)
    assert "Approved" in page
    assert "approve — Fine by me" in page
    assert "Task completed" in page
    client.post(f"{path}/accept", data={"csrf_token": token})
    assert in_app(lambda s: s.get(Quote, world.quote_id).status) == "accepted"


def test_crm_order_receipt_pays_installments_and_bad_amount_is_kept(world, login_as, in_app):
    client = login_as("north_rep1")
    path = f"/orders/{world.order_id}"
    page = client.get(path).get_data(as_text=True)
    assert "Overdue" in page
    assert "CN¥100,000.00" in page
    token = token_of(client, path)
    bad = client.post(f"{path}/receipts", data={"csrf_token": token, "amount": "-10"})
    assert bad.status_code == 422
    assert "must be greater than zero" in bad.get_data(as_text=True)
    assert 'value="-10"' in bad.get_data(as_text=True)
    ok = client.post(
        f"{path}/receipts",
        data={
            "csrf_token": token,
            "amount": "40000",
            "received_on": "2026-11-01",
            "reference": "BANK-1",
        },
    )
    assert ok.status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "BANK-1" in page
    assert "Overdue" not in re.sub(r"<option.*?</option>", "", page)
    assert "CN¥60,000.00" in page  # outstanding


def test_crm_order_invoice_request_starts_finance_review(world, test_processes, login_as, in_app):
    client = login_as("north_rep1")
    path = f"/orders/{world.order_id}"
    token = token_of(client, path)
    too_much = client.post(
        f"{path}/invoice-requests",
        data={"csrf_token": token, "amount": "999999", "title": "Acme"},
    )
    assert too_much.status_code == 422
    assert 'value="999999"' in too_much.get_data(as_text=True)
    ok = client.post(
        f"{path}/invoice-requests",
        data={"csrf_token": token, "amount": "40000", "title": "Acme Trading Ltd"},
    )
    assert ok.status_code == 302
    assert "Pending approval" in client.get(path).get_data(as_text=True)
    tasks = in_app(lambda s: [t.candidate_role for t in s.scalars(select(HumanTask))])
    assert tasks == ["finance"]


def test_crm_orders_list_filters_and_exports(world, login_as):
    finance = login_as("fiona")
    assert "Acme Trading Ltd" in finance.get("/orders?overdue=1").get_data(as_text=True)
    assert "Acme Trading Ltd" not in finance.get("/orders?status=paid").get_data(as_text=True)
    text = finance.get("/orders/export.csv").get_data().decode("utf-8-sig")
    header, row = text.splitlines()[:2]
    assert header.startswith("Order,Customer")
    assert row.endswith(",100000.00,CNY,0.00,100000.00,40000.00")


def test_crm_quote_more_lines_keeps_what_was_typed(world, login_as, in_app):
    client = login_as("north_rep1")
    path = f"/opportunities/{world.deal_id}/quotes/new"
    token = token_of(client, path)
    before = _quote_count(in_app)
    response = client.post(
        path,
        data={
            "csrf_token": token,
            "more": "1",
            "line-0-description": "Kept",
            "line-0-quantity": "7",
            "discount_pct": "3",
        },
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'value="Kept"' in page
    assert 'value="3"' in page
    assert 'name="line-6-description"' in page  # one kept row and six empty ones
    assert _quote_count(in_app) == before
