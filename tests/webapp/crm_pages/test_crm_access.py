"""Every CRM page renders for someone allowed, and data scopes hold: guessed ids are 404."""

from __future__ import annotations

import pytest

from tests.webapp.crm_pages.conftest import token_of

REP_PAGES = [
    "/customers",
    "/customers?tier=A&sort=last_activity&order=desc",
    "/customers/{customer}",
    "/opportunities/board",
    "/opportunities/board?pipeline=renewal",
    "/opportunities/{deal}",
    "/opportunities/{deal}/quotes/new",
    "/quotes/{quote}",
    "/quotes/{quote}/edit",
    "/orders",
    "/orders?status=open&overdue=1",
    "/orders/{order}",
    "/activities",
    "/reports/daily",
    "/knowledge",
    "/import/customers",
]


def _path(template: str, world) -> str:
    return template.format(
        customer=world.customer_id, deal=world.deal_id, quote=world.quote_id, order=world.order_id
    )


@pytest.mark.parametrize("template", REP_PAGES)
def test_crm_pages_render_for_the_owner(world, login_as, template):
    client = login_as("north_rep1")
    response = client.get(_path(template, world))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert 'name="csrf_token"' in response.get_data(as_text=True)  # the sign-out form at least


@pytest.mark.parametrize(
    ("username", "path"),
    [("north_manager", "/knowledge/new"), ("mark", "/import/leads"), ("fiona", "/orders")],
)
def test_crm_role_pages_render(world, login_as, username, path):
    assert login_as(username).get(path).status_code == 200


def test_crm_pages_need_sign_in(world, client):
    for path in ("/customers", f"/customers/{world.customer_id}", "/opportunities/board"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


# Who may open north_rep1's customer, quote, order and deal (the board shows what they may see).
MATRIX = [
    ("north_rep1", 200, 200, 200, 200),
    ("north_rep2", 404, 404, 404, 404),
    ("north_manager", 200, 200, 200, 200),
    ("south_manager", 404, 404, 404, 404),
    ("dora", 200, 200, 200, 200),
    ("fiona", 404, 404, 200, 404),
]


@pytest.mark.parametrize(("username", "customer", "quote", "order", "deal"), MATRIX)
def test_crm_permission_matrix(world, login_as, username, customer, quote, order, deal):
    client = login_as(username)
    assert client.get(f"/customers/{world.customer_id}").status_code == customer
    assert client.get(f"/quotes/{world.quote_id}").status_code == quote
    assert client.get(f"/quotes/{world.quote_id}/edit").status_code == quote
    assert client.get(f"/orders/{world.order_id}").status_code == order
    assert client.get(f"/opportunities/{world.deal_id}").status_code == deal
    board = client.get("/opportunities/board").get_data(as_text=True)
    assert ("Acme rollout" in board) == (deal == 200)
    orders = client.get("/orders").get_data(as_text=True)
    assert ("Acme Trading Ltd" in orders) == (order == 200)
    customers = client.get("/customers").get_data(as_text=True)
    assert ("Acme Trading Ltd" in customers) == (customer == 200)


@pytest.mark.parametrize("username", ["north_rep2", "south_manager", "fiona"])
def test_crm_forms_on_records_out_of_scope_are_404_and_change_nothing(
    world, login_as, in_app, username
):
    from crm.customers.models import Contact

    client = login_as(username)
    token = token_of(client, "/customers")
    posts = {
        f"/customers/{world.customer_id}/contacts": {"name": "Intruder"},
        f"/customers/{world.customer_id}/activities": {"kind": "note", "subject": "x"},
        f"/opportunities/{world.deal_id}/win-rate": {"win_rate": "99"},
        f"/opportunities/{world.deal_id}/move": {"to_stage": "needs_analysis"},
        f"/opportunities/{world.deal_id}/quotes/new": {
            "line-0-description": "x",
            "line-0-quantity": "1",
            "line-0-unit_price": "1",
        },
        f"/quotes/{world.quote_id}/submit": {},
    }
    for path, data in posts.items():
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 404, path
    assert in_app(lambda s: s.query(Contact).filter_by(name="Intruder").count()) == 0


def test_crm_money_forms_are_404_for_other_reps(world, login_as):
    client = login_as("north_rep2")
    token = token_of(client, "/orders")
    for path, data in {
        f"/orders/{world.order_id}/receipts": {"amount": "10"},
        f"/orders/{world.order_id}/invoice-requests": {"amount": "10", "title": "x"},
    }.items():
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 404


def test_crm_posts_without_csrf_token_are_refused(world, login_as):
    client = login_as("north_rep1")
    response = client.post(f"/customers/{world.customer_id}/contacts", data={"name": "No token"})
    assert response.status_code == 400
    assert "No token" not in client.get(f"/customers/{world.customer_id}").get_data(as_text=True)


def test_crm_saved_filters_of_others_are_404(world, login_as):
    client = login_as("north_rep1")
    token = token_of(client, "/customers")
    client.post(
        "/customers/filters",
        data={"csrf_token": token, "filter_name": "Mine", "query": "tier=A"},
    )
    page = client.get("/customers").get_data(as_text=True)
    filter_id = int(page.split("/customers/filters/")[1].split('"')[0])
    other = login_as("north_manager")
    assert other.get(f"/customers/filters/{filter_id}").status_code == 404
    other_token = token_of(other, "/customers")
    response = other.post(
        f"/customers/filters/{filter_id}/delete", data={"csrf_token": other_token}
    )
    assert response.status_code == 404
