"""CRM factories: fixtures that return callables building users, teams and records."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Any

import pytest

from crm.customers.services import create_customer
from crm.directory.models import Team, Territory, User
from crm.directory.services import create_user
from crm.sales.services import create_opportunity
from tests.conftest import NOW

_serial = count(1)


@pytest.fixture
def make_team(session) -> Callable[..., Team]:
    def make(
        name: str | None = None, parent: Team | None = None, manager: User | None = None
    ) -> Team:
        team = Team(
            name=name or f"team-{next(_serial)}",
            parent_id=parent.id if parent else None,
            manager_id=manager.id if manager else None,
        )
        session.add(team)
        session.flush()
        return team

    return make


@pytest.fixture
def make_user(session) -> Callable[..., User]:
    def make(
        *roles: str, team: Team | None = None, username: str | None = None, **extra: Any
    ) -> User:
        name = username or f"user{next(_serial)}"
        return create_user(
            session,
            name,
            name.title(),
            roles or ("rep",),
            now=NOW,
            team_id=team.id if team else None,
            **extra,
        )

    return make


@pytest.fixture
def make_customer(session) -> Callable[..., Any]:
    def make(owner: User | None = None, name: str | None = None, **extra: Any):
        by = owner or extra.pop("by")
        return create_customer(
            session,
            by,
            name or f"Customer {next(_serial)}",
            now=NOW,
            owner=owner,
            confirm_duplicate=True,
            **extra,
        )

    return make


@pytest.fixture
def make_opportunity(session, make_customer) -> Callable[..., Any]:
    def make(owner: User, amount: Any = "100000", **extra: Any):
        customer = extra.pop("customer", None) or make_customer(owner)
        return create_opportunity(
            session, owner, customer.id, extra.pop("name", "Deal"), amount, now=NOW, **extra
        )

    return make


@pytest.fixture
def sales_org(session, make_team, make_user) -> dict[str, Any]:
    """A small company: a director over two teams, each with a manager and two reps."""
    territory = Territory(code="E", name="East")
    session.add(territory)
    session.flush()
    director = make_user("director", username="dora")
    top = make_team("Sales", manager=director)
    director.team_id = top.id
    org: dict[str, Any] = {"director": director, "top": top, "territory": territory}
    for key in ("north", "south"):
        manager = make_user("manager", username=f"{key}_manager")
        team = make_team(key.title(), parent=top, manager=manager)
        manager.team_id = team.id
        org[key] = {
            "team": team,
            "manager": manager,
            "reps": [make_user("rep", team=team, username=f"{key}_rep{n}") for n in (1, 2)],
        }
    org["finance"] = make_user("finance", username="fiona")
    session.flush()
    return org


@pytest.fixture
def deploy_all(deploy):
    """Deploy every process in processes/ (with the real crm.* operations)."""
    return deploy()
