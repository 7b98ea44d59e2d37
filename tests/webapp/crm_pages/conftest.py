"""Web fixtures for the CRM pages: a small company with one customer's whole story, and clients
signed in as each of its people."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.security import generate_password_hash

from crm.customers.services import add_contact, create_customer
from crm.directory.models import Team, Territory, User
from crm.directory.services import create_user
from crm.orders.services import create_order
from crm.quotes.services import create_quote
from crm.sales.services import create_opportunity
from tests.conftest import NOW
from tests.webapp.conftest import PASSWORD

# A cheap hash: these users only exist for the test.
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class World:
    """Ids of the people and records the CRM page tests use."""

    users: dict[str, int] = field(default_factory=dict)
    territory_id: int = 0
    customer_id: int = 0
    deal_id: int = 0
    quote_id: int = 0
    order_id: int = 0


def _people(session: Any, world: World) -> dict[str, User]:
    east = Territory(code="EAST", name="East")
    session.add(east)
    session.flush()
    world.territory_id = east.id

    def person(username: str, *roles: str, team: Team | None = None) -> User:
        user = create_user(
            session,
            username,
            username.replace("_", " ").title(),
            roles,
            now=NOW,
            team_id=team.id if team else None,
            password_hash=_HASH,
        )
        world.users[username] = user.id
        return user

    director = person("dora", "director")
    top = Team(name="Sales", manager_id=director.id)
    session.add(top)
    session.flush()
    director.team_id = top.id
    people = {"dora": director}
    for key in ("north", "south"):
        manager = person(f"{key}_manager", "manager")
        team = Team(name=key.title(), parent_id=top.id, manager_id=manager.id)
        session.add(team)
        session.flush()
        manager.team_id = team.id
        people[f"{key}_manager"] = manager
        for n in (1, 2):
            people[f"{key}_rep{n}"] = person(f"{key}_rep{n}", "rep", team=team)
    people["fiona"] = person("fiona", "finance")
    people["mark"] = person("mark", "marketing")
    session.flush()
    return people


@pytest.fixture
def world(app: Flask) -> Iterator[World]:
    """north_rep1 owns Acme (a contact, a deal, a draft quote, an order with one overdue and one
    future installment)."""
    from webapp import db

    built = World()
    with app.app_context():
        session = db.session
        people = _people(session, built)
        rep = people["north_rep1"]
        customer = create_customer(
            session,
            rep,
            "Acme Trading Ltd",
            now=NOW,
            owner=rep,
            tier="A",
            industry="retail",
            territory_id=built.territory_id,
        )
        add_contact(session, rep, customer.id, "Ann Buyer", buying_role="decision_maker")
        deal = create_opportunity(session, rep, customer.id, "Acme rollout", "100000", now=NOW)
        quote = create_quote(
            session,
            rep,
            deal.id,
            [{"description": "Licences", "quantity": "10", "unit_price": "1000"}],
            now=NOW,
            discount_pct="5",
        )
        order = create_order(
            session,
            deal.id,
            date(2026, 10, 1),
            [
                {"due_date": "2020-01-10", "amount": "40000"},
                {"due_date": "2099-01-10", "amount": "60000"},
            ],
            now=NOW,
            by=rep.username,
            start_collection=False,
        )
        built.customer_id, built.deal_id = customer.id, deal.id
        built.quote_id, built.order_id = quote.id, order.id
        session.commit()
    yield built
    with app.app_context():
        # Teams and their managers point at each other; untie them so the tables can be emptied.
        db.session.execute(update(Team).values(manager_id=None))
        db.session.commit()


def token_of(client: FlaskClient, path: str) -> str:
    match = _CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def login_as(app: Flask) -> Callable[..., FlaskClient]:
    """Return a new client signed in as the user (each user their own cookie jar)."""

    def sign_in(username: str, lang: str = "en") -> FlaskClient:
        client = app.test_client()
        token = token_of(client, "/login")
        response = client.post(
            "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 302, f"{username} could not sign in"
        if lang != "en":
            client.get(f"/customers?lang={lang}")
        return client

    return sign_in


@pytest.fixture
def in_app(app: Flask) -> Callable[[Callable[[Any], Any]], Any]:
    """Run a function with the app's database session and commit (for setting up records)."""
    from webapp import db

    def run(work: Callable[[Any], Any]) -> Any:
        with app.app_context():
            result = work(db.session)
            db.session.commit()
            return result

    return run


BPMN = Path(__file__).parent / "bpmn"


@pytest.fixture
def test_processes(in_app: Callable[[Callable[[Any], Any]], Any]) -> None:
    """Deploy the small pipeline, quote approval and invoice request processes of these tests."""
    from engine.deploy import collect_files, deploy_files, folder_form_loader

    def deploy(session: Any) -> None:
        result = deploy_files(
            session,
            "admin",
            collect_files([BPMN]),
            load_form=folder_form_loader(BPMN / "forms"),
            now=NOW,
        )
        assert {p.process_id for p in result.processes} >= {"quote_approval"}

    in_app(deploy)
