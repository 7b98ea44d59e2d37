"""The customer list (filters, saved filters, export) and the customer 360 forms."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest

from crm.customers.services import create_customer
from crm.directory.models import User
from crm.sales.services import create_opportunity
from tests.conftest import NOW
from tests.webapp.crm_pages.conftest import token_of

_LINK = re.compile(r'href="/customers/(\d+)">([^<]+)</a>')


def names_on(client, query: str) -> set[str]:
    response = client.get(f"/customers?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    return {name for _, name in _LINK.findall(response.get_data(as_text=True))}


@pytest.fixture
def book(world, in_app):
    """More customers: two for north_rep1, one for north_rep2, one for south_rep1."""

    def build(session):
        user = {name: session.get(User, uid) for name, uid in world.users.items()}
        rep1, rep2, south = user["north_rep1"], user["north_rep2"], user["south_rep1"]

        def customer(owner, name, **extra):
            found = create_customer(
                session, owner, name, now=NOW, owner=owner, confirm_duplicate=True, **extra
            )
            return found

        blue = customer(rep1, "Blue River Foods", tier="B", industry="retail")
        blue.last_activity_at = datetime(2026, 10, 1, tzinfo=UTC)
        pine = customer(rep1, "Pine Logistics", tier="C", industry="logistics")
        pine.last_activity_at = datetime(2026, 6, 1, tzinfo=UTC)
        create_opportunity(session, rep1, pine.id, "Pine fleet", "5000", now=NOW)
        customer(rep2, "ACME Trading Co.", tier="A", industry="retail")
        customer(south, "Southern Acme", tier="A", industry="retail")

    in_app(build)
    return world


def test_crm_customer_filters_return_exactly_the_expected_customers(book, login_as):
    manager = login_as("north_manager")
    everyone_north = {"Acme Trading Ltd", "Blue River Foods", "Pine Logistics", "ACME Trading Co."}
    assert names_on(manager, "") == everyone_north  # never the south team's customer
    # The name matches by comparable name (case, punctuation, legal suffix) and by substring.
    assert names_on(manager, "name=acme+trading") == {"Acme Trading Ltd", "ACME Trading Co."}
    assert names_on(manager, "name=River") == {"Blue River Foods"}
    assert names_on(manager, "tier=A") == {"Acme Trading Ltd", "ACME Trading Co."}
    assert names_on(manager, "tier=B&tier=C") == {"Blue River Foods", "Pine Logistics"}
    assert names_on(manager, "industry=retail&tier=B") == {"Blue River Foods"}
    assert names_on(manager, f"territory={book.territory_id}") == {"Acme Trading Ltd"}
    assert names_on(manager, f"owner={book.users['north_rep2']}") == {"ACME Trading Co."}
    assert names_on(manager, f"owner={book.users['south_rep1']}") == set()
    assert names_on(manager, "activity_after=2026-09-01") == {"Blue River Foods"}
    # "No activity since" includes customers never contacted.
    assert names_on(manager, "activity_before=2026-09-01") == everyone_north - {"Blue River Foods"}
    assert names_on(manager, "open_deal=yes") == {"Acme Trading Ltd", "Pine Logistics"}
    assert names_on(manager, "open_deal=no") == {"Blue River Foods", "ACME Trading Co."}
    rep = login_as("north_rep1")
    assert names_on(rep, "tier=A") == {"Acme Trading Ltd"}


def test_crm_customer_list_sorts_and_pages(book, login_as, in_app, world):
    manager = login_as("north_manager")
    page = manager.get("/customers?sort=last_activity&order=desc").get_data(as_text=True)
    order = [name for _, name in _LINK.findall(page)]
    assert order[:2] == ["Blue River Foods", "Pine Logistics"]

    def many(session):
        rep = session.get(User, world.users["north_rep1"])
        for n in range(30):
            create_customer(session, rep, f"Bulk {n:02d}", now=NOW, owner=rep)

    in_app(many)
    first = manager.get("/customers?name=bulk").get_data(as_text=True)
    second = manager.get("/customers?name=bulk&page=2").get_data(as_text=True)
    assert len(_LINK.findall(first)) == 25
    assert len(_LINK.findall(second)) == 5
    assert "Page 2 of 2" in second


def test_crm_customer_list_reports_bad_filters(world, login_as):
    response = login_as("north_rep1").get("/customers?activity_before=yesterday&tier=Z")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "activity_before" in page
    assert "tier" in page


def test_crm_saved_filter_round_trip(book, login_as):
    client = login_as("north_manager")
    token = token_of(client, "/customers")
    response = client.post(
        "/customers/filters",
        data={"csrf_token": token, "filter_name": "Retail A", "query": "tier=A&industry=retail"},
    )
    assert response.status_code == 302
    page = client.get("/customers").get_data(as_text=True)
    assert "Retail A" in page
    filter_id = re.search(r'/customers/filters/(\d+)"', page).group(1)
    applied = client.get(f"/customers/filters/{filter_id}")
    assert applied.status_code == 302
    location = applied.headers["Location"]
    assert "tier=A" in location
    assert "industry=retail" in location
    assert names_on(client, location.split("?", 1)[1]) == {"Acme Trading Ltd", "ACME Trading Co."}
    # Saving under the same name replaces the filter.
    client.post(
        "/customers/filters",
        data={"csrf_token": token, "filter_name": "Retail A", "query": "tier=B"},
    )
    assert "tier=B" in client.get(f"/customers/filters/{filter_id}").headers["Location"]
    client.post(f"/customers/filters/{filter_id}/delete", data={"csrf_token": token})
    assert "Retail A" not in client.get("/customers").get_data(as_text=True)
    assert client.get(f"/customers/filters/{filter_id}").status_code == 404


def _csv(response) -> list[list[str]]:
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the UTF-8 byte-order mark"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_crm_customer_export_is_the_filtered_scoped_list(book, login_as):
    response = login_as("north_manager").get("/customers/export.csv?tier=A")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = _csv(response)
    assert rows[0][:3] == ["ID", "Name", "Tier"]
    assert sorted(r[1] for r in rows[1:]) == ["ACME Trading Co.", "Acme Trading Ltd"]
    rep_rows = _csv(login_as("north_rep2").get("/customers/export.csv"))
    assert [r[1] for r in rep_rows[1:]] == ["ACME Trading Co."]


def test_crm_customer_export_escapes_formulas_and_quotes(world, login_as, in_app):
    def hostile(session):
        rep = session.get(User, world.users["north_rep1"])
        create_customer(session, rep, '=HYPERLINK("http://x","y")', now=NOW, owner=rep)
        create_customer(session, rep, "@SUM(A1)", now=NOW, owner=rep, industry="-2+3")
        create_customer(session, rep, 'Comma, "Quoted" Co', now=NOW, owner=rep)

    in_app(hostile)
    rows = _csv(login_as("north_rep1").get("/customers/export.csv"))
    names = {r[1] for r in rows[1:]}
    assert '\'=HYPERLINK("http://x","y")' in names
    assert "'@SUM(A1)" in names
    assert 'Comma, "Quoted" Co' in names  # the csv quoting round-trips
    assert "'-2+3" in {r[3] for r in rows[1:]}
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_crm_customer_360_shows_everything(world, login_as):
    page = login_as("north_rep1").get(f"/customers/{world.customer_id}").get_data(as_text=True)
    for text in ("Acme Trading Ltd", "Ann Buyer", "Decision maker", "Acme rollout", "Q-2026-"):
        assert text in page
    assert "SO-2026-" in page
    assert "Overdue" in page  # the 2020 installment
    assert "Created" in page  # owner history: the creation
    assert "CN¥100,000.00" in page


def test_crm_add_contact_and_bad_influence_keeps_the_values(world, login_as):
    client = login_as("north_rep1")
    token = token_of(client, "/customers")
    path = f"/customers/{world.customer_id}/contacts"
    bad = client.post(
        path,
        data={"csrf_token": token, "name": "Bo Tech", "title": "CTO", "influence": "9"},
    )
    assert bad.status_code == 422
    page = bad.get_data(as_text=True)
    assert "must be a whole number from 1 to 5" in page
    assert 'value="Bo Tech"' in page
    assert 'value="CTO"' in page
    ok = client.post(
        path,
        data={
            "csrf_token": token,
            "name": "Bo Tech",
            "buying_role": "technical_owner",
            "influence": "4",
        },
    )
    assert ok.status_code == 302
    page = client.get(f"/customers/{world.customer_id}").get_data(as_text=True)
    assert "Technical owner" in page
    assert "4 / 5" in page


def test_crm_log_activity_updates_the_timeline_and_last_activity(world, login_as, in_app):
    from crm.customers.models import Customer

    client = login_as("north_rep1")
    token = token_of(client, "/customers")
    path = f"/customers/{world.customer_id}/activities"
    past = client.post(
        path,
        data={
            "csrf_token": token,
            "kind": "call",
            "subject": "Budget call",
            "next_followup_on": "2000-01-01",
        },
    )
    assert past.status_code == 422
    assert "is in the past" in past.get_data(as_text=True)
    assert 'value="Budget call"' in past.get_data(as_text=True)
    follow_up = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    response = client.post(
        path,
        data={
            "csrf_token": token,
            "kind": "visit",
            "subject": "Site visit",
            "body": "Met the plant manager",
            "next_followup_on": follow_up,
            "opportunity_id": str(world.deal_id),
        },
    )
    assert response.status_code == 302
    page = client.get(f"/customers/{world.customer_id}").get_data(as_text=True)
    assert "Site visit" in page
    assert "Met the plant manager" in page
    last = in_app(lambda s: s.get(Customer, world.customer_id).last_activity_at)
    assert last is not None
    assert "Site visit" in client.get("/activities").get_data(as_text=True)  # follow-up list
