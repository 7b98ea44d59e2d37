"""Permission matrix: every route of the core blueprints × every role, plus guessed ids.

One fixed data set is built per module (and per database): two teams under a director, reps
owning their own customers, deals, quotes, orders, leads, activities and tasks, a customer pool
with a manager, and one user of each role. The table ROUTES names, for each endpoint, a request
and the status each role gets; `test_matrix_lists_every_route` fails when a route of the covered
blueprints is missing from the table, so the matrix cannot go stale silently.

Requests that would change data are sent with input the service refuses *after* its permission
check (an unknown stage, a bad amount, a follow-up date in the past) or against a record in a
state that makes them a no-op (a quote already pending, a lead without an open qualification
task), so the one data set stays as built; the guessed-id tests compare the records before and
after each refused request. Where a service validates input before it checks rights (the empty
release reason), every role gets the same 422 and the guessed-id test sends valid input instead.

The whole cross product (about 1,300 requests) runs on SQLite in 30-70 seconds on this shared
2-core machine. PostgreSQL is several times slower per request here (the full product took
nearly three minutes), so there only a slice runs: the owner on every route, and the other
team's manager guessing ids and reading lists. The permission checks are the same Python code on
both databases; only the scope queries differ, and the slice runs each of them.

Two refusals are not 403/404 on purpose: claiming a customer someone owns is a 409 (a rep who
lost a claim race must learn that), without the customer's name; and the inbox's claim button
answers every refusal with a redirect and a message, which the test reads for leaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from crm.activities.services import log_activity, save_daily_report
from crm.customers.models import Customer, Pool
from crm.customers.services import add_contact, create_customer
from crm.directory.models import Team, Territory, User
from crm.directory.services import actor_for, create_user
from crm.directory.tokens import create_token
from crm.knowledge import save_article
from crm.leads.models import Lead
from crm.orders.services import create_order
from crm.pool.models import PoolPolicy, RecycleLimit, RecycleRule
from crm.quotes.services import create_quote
from crm.sales.services import create_opportunity
from crm.saved_filters import save_filter
from engine.db import Base
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.models import HumanTask
from tests.conftest import FORMS, NOW, PROCESSES
from tests.webapp.conftest import PASSWORD

_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Every record of north_rep1 carries this word in its name: it must never reach an outsider.
SECRET = "Zircon"
COVERED_BLUEPRINTS = ("auth", "home", "inbox", "tasks", "pool", "api", "vendor")
COVERED_PREFIXES = ("crm_",)
# API routes of other areas (they come with their own matrices).
OTHER_AREAS = ("webapp.api.analytics_routes", "webapp.api.commission_routes")
# Who plays each role in the matrix (the rep owns the records the pages are asked about).
ROLE_USERS = {
    "rep": "north_rep1",
    "supervisor": "north_sup",
    "manager": "north_manager",
    "director": "dora",
    "finance": "fiona",
    "marketing": "mark",
    "admin": "ada",
    "ops": "otto",
    "anonymous": None,
}
ROLES = tuple(ROLE_USERS)
# People outside north_rep1's records, each guessing their ids.
OUTSIDERS = ("north_rep2", "south_rep1", "south_manager", "south_sup", "mark")
# What runs on PostgreSQL too (see the module docstring): the owner on every route, and the
# manager of the other team (whose scope is a team-tree query) guessing ids and reading lists.
POSTGRES_ROLES = ("rep",)
POSTGRES_OUTSIDERS = ("south_manager",)


def only_on_sqlite(db_url: str, *, when: bool) -> None:
    if when and db_url.startswith("postgresql"):
        pytest.skip("on PostgreSQL the matrix runs a slice; the whole of it runs on SQLite")


@dataclass
class Matrix:
    """The module's app, the ids of the fixed data set, and a signed-in client per user."""

    app: Flask
    ids: dict[str, int]
    clients: dict[str, FlaskClient]
    tokens: dict[str, str]
    csrf: dict[str, str]


def _build(session: Any) -> dict[str, int]:
    ids: dict[str, int] = {}
    east = Territory(code="EAST", name="East")
    session.add(east)
    session.flush()

    def person(username: str, *roles: str, team: Team | None = None) -> User:
        user = create_user(
            session,
            username,
            username.replace("_", " ").title(),
            roles,
            now=NOW,
            team_id=team.id if team else None,
            territory_id=east.id,
            password_hash=_HASH,
        )
        ids[username] = user.id
        return user

    dora = person("dora", "director")
    top = Team(name="Sales", manager_id=dora.id)
    session.add(top)
    session.flush()
    dora.team_id = top.id
    teams = {}
    for key in ("north", "south"):
        manager = person(f"{key}_manager", "manager")
        team = Team(name=key.title(), parent_id=top.id, manager_id=manager.id)
        session.add(team)
        session.flush()
        manager.team_id = team.id
        teams[key] = team
        person(f"{key}_sup", "supervisor", team=team)
        person(f"{key}_rep1", "rep", team=team)
    person("north_rep2", "rep", team=teams["north"])
    for username, role in (("fiona", "finance"), ("mark", "marketing"), ("ada", "admin")):
        person(username, role)
    person("otto", "ops")
    session.flush()
    rep = session.get(User, ids["north_rep1"])

    pool = Pool(name="East customers", kind="customer", territory_id=east.id)
    lead_pool = Pool(name="East leads", kind="lead", territory_id=east.id)
    session.add_all([pool, lead_pool])
    session.flush()
    ids["pool"], ids["lead_pool"] = pool.id, lead_pool.id
    session.add(PoolPolicy(pool_id=pool.id, manager_id=ids["north_manager"], updated_at=NOW))
    rule = RecycleRule(pool_id=pool.id, trigger_kind="no_followup", created_at=NOW)
    session.add(rule)
    session.flush()
    session.add(RecycleLimit(rule_id=rule.id, tier="C", days=30))
    ids["rule"] = rule.id
    waiting = create_customer(
        session, rep, "Lotus Pooled", now=NOW, pool_id=pool.id, territory_id=east.id
    )
    ids["pool_customer"] = waiting.id

    customer = create_customer(
        session,
        rep,
        f"{SECRET} Trading",
        now=NOW,
        owner=rep,
        tier="A",
        territory_id=east.id,
        phone="13812345678",
    )
    customer.home_pool_id = pool.id
    ids["customer"] = customer.id
    ids["contact"] = add_contact(session, rep, customer.id, f"Ann {SECRET}buyer").id
    deal = create_opportunity(session, rep, customer.id, f"{SECRET} rollout", "100000", now=NOW)
    ids["deal"] = deal.id
    line = [{"description": f"{SECRET} licences", "quantity": "10", "unit_price": "1000"}]
    ids["quote"] = create_quote(session, rep, deal.id, line, now=NOW).id
    pending = create_quote(session, rep, deal.id, line, now=NOW)
    pending.status = "pending"
    ids["pending_quote"] = pending.id
    order = create_order(
        session,
        deal.id,
        date(2026, 10, 1),
        [{"due_date": "2099-01-10", "amount": "100000"}],
        now=NOW,
        by=rep.username,
        start_collection=False,
    )
    ids["order"] = order.id
    ids["activity"] = log_activity(
        session, rep, customer.id, "call", f"{SECRET} budget call", now=NOW
    ).id
    save_daily_report(session, rep, f"{SECRET} summary", None, now=NOW)
    ids["filter"] = save_filter(
        session, rep, "customers", f"{SECRET} filter", {"tier": "A"}, now=NOW
    ).id
    ids["article"] = save_article(
        session,
        session.get(User, ids["north_manager"]),
        "Objections",
        "Answer them.",
        None,
        now=NOW,
    ).id

    lead = Lead(
        name=f"Lena {SECRET}lead",
        owner_id=rep.id,
        status="working",
        created_at=NOW,
        pool_id=lead_pool.id,
    )
    session.add(lead)
    session.flush()
    ids["lead"] = lead.id
    deploy_files(
        session,
        "admin",
        collect_files([PROCESSES / "lead_followup.bpmn"]),
        load_form=folder_form_loader(FORMS),
        now=NOW,
    )
    outcome = start_instance(
        session,
        actor_for(session.get(User, ids["north_manager"])),
        "lead_followup",
        now=NOW,
        data={"lead_name": f"Lena {SECRET}lead", "budget": None},
        subject=("lead", lead.id),
    )
    [task] = outcome.new_tasks
    task.assignee = rep.username
    ids["task"], ids["instance"] = task.id, outcome.instance.id
    return ids


def _sign_in(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    token = _CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, f"{username} could not sign in"
    return client, token


@pytest.fixture(scope="module")
def matrix(db_url: str) -> Iterator[Matrix]:
    from webapp import create_app, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "TESTING": True, "SECRET_KEY": "test"})
    with app.app_context():
        ids = _build(db.session)
        tokens = {}
        for username in ids.keys() & {*ROLE_USERS.values(), *OUTSIDERS}:
            user = db.session.get(User, ids[username])
            tokens[username] = create_token(db.session, user, "matrix", now=NOW)[1]
        db.session.commit()
    clients, csrf = {}, {}
    for username in {*ROLE_USERS.values(), *OUTSIDERS} - {None}:
        clients[username], csrf[username] = _sign_in(app, username)
    anonymous = app.test_client()
    clients[""] = anonymous
    csrf[""] = _CSRF.search(anonymous.get("/login").get_data(as_text=True)).group(1)
    yield Matrix(app, ids, clients, tokens, csrf)
    with app.app_context():
        db.session.execute(update(Team).values(manager_id=None))
        for table in reversed(Base.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@dataclass(frozen=True)
class Case:
    """One request and what each role gets, in ROLES order."""

    endpoint: str
    method: str
    path: str
    expect: str
    body: dict[str, Any] | None = None
    # Sent from a client signed in for this request alone (signing out ends that session).
    fresh: bool = False

    @property
    def api(self) -> bool:
        return self.endpoint.startswith("api.")

    def expected(self) -> dict[str, str]:
        codes = self.expect.split()
        assert len(codes) == len(ROLES), f"{self.endpoint}: give one status per role"
        return dict(zip(ROLES, codes, strict=True))


def _fill(value: Any, ids: dict[str, int]) -> Any:
    """Put record ids into a JSON body: "{customer}" becomes the customer's id (an integer)."""
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value.strip("{}")]
    return value


def send(m: Matrix, username: str | None, case: Case, path: str | None = None) -> Any:
    """Send the case's request as the user (None: anonymous)."""
    target = (path or case.path).format(**m.ids)
    client, token = m.clients[username or ""], m.csrf[username or ""]
    if case.fresh and username:
        client, token = _sign_in(m.app, username)
    if case.api:
        headers = {"Authorization": f"Bearer {m.tokens[username]}"} if username else {}
        body = _fill(case.body, m.ids) if case.method != "GET" else None
        return client.open(target, method=case.method, json=body, headers=headers)
    data = {k: v.format(**m.ids) if isinstance(v, str) else v for k, v in (case.body or {}).items()}
    if case.method != "GET":
        data["csrf_token"] = token
    return client.open(target, method=case.method, data=data)


CONVERSION = {
    "customer_name": "Guess Ltd",
    "contact_name": "Guess",
    "contact_buying_role": "user",
    "opportunity_name": "Guess deal",
    "amount": "10",
    "expected_close": "2026-12-31",
}
# Valid for the schema; the service refuses the date after its permission check.
PAST_FOLLOWUP = {"kind": "note", "subject": "x", "next_followup_on": "2000-01-01"}
ROUTES: list[Case] = [
    Case("auth.login", "GET", "/login", "302 302 302 302 302 302 302 302 200"),
    Case(
        "auth.login",
        "POST",
        "/login",
        "302 302 302 302 302 302 302 302 401",
        {"username": "north_rep1", "password": "wrong"},
    ),
    Case("auth.logout", "POST", "/logout", "302 302 302 302 302 302 302 302 302", fresh=True),
    Case("home.index", "GET", "/", "200 200 200 200 200 200 200 200 302"),
    Case(
        "vendor.asset", "GET", "/static/vendor/htmx.min.js", "200 200 200 200 200 200 200 200 200"
    ),
    Case("inbox.index", "GET", "/inbox", "200 200 200 200 200 200 200 200 302"),
    Case(
        "inbox.bulk",
        "POST",
        "/inbox/bulk",
        "303 303 303 303 303 303 303 303 302",
        {"action": "claim"},
    ),
    Case(
        "inbox.bulk_complete",
        "POST",
        "/inbox/bulk/complete",
        "403 303 303 303 403 403 303 303 302",
        {},
    ),
    Case("inbox.claim", "POST", "/tasks/{task}/claim", "303 303 303 303 303 303 303 303 302"),
    Case("inbox.release", "POST", "/tasks/{task}/release", "303 303 303 303 404 404 303 303 302"),
    Case("inbox.urge", "POST", "/tasks/{task}/urge", "303 303 303 303 404 404 303 303 302"),
    Case("tasks.show", "GET", "/tasks/{task}", "200 200 200 200 404 404 200 200 302"),
    Case("tasks.submit", "POST", "/tasks/{task}", "422 422 422 422 404 404 422 422 302", {}),
    Case("pool.index", "GET", "/pool/", "200 200 200 200 200 200 200 200 302"),
    Case("pool.pool", "GET", "/pool/{pool}", "200 200 200 200 200 200 200 200 302"),
    Case(
        "pool.claim",
        "POST",
        "/pool/customers/{customer}/claim",
        "409 409 403 403 403 403 403 403 302",
    ),
    Case(
        "pool.release",
        "POST",
        "/pool/customers/{customer}/release",
        "422 422 422 422 422 422 422 422 302",
        {"reason": ""},
    ),
    Case(
        "pool.allocate", "POST", "/pool/{pool}/allocate", "403 403 302 302 403 403 302 403 302", {}
    ),
    Case("pool.settings", "GET", "/pool/{pool}/settings", "403 403 200 200 403 403 200 403 302"),
    Case(
        "pool.policy",
        "POST",
        "/pool/{pool}/settings/policy",
        "403 403 422 422 403 403 422 403 302",
        {"warning_days": "x"},
    ),
    Case(
        "pool.limits",
        "POST",
        "/pool/{pool}/settings/limits",
        "403 403 422 422 403 403 422 403 302",
        {"max_held_A": "x"},
    ),
    Case(
        "pool.rule",
        "POST",
        "/pool/{pool}/settings/rules",
        "403 403 422 422 403 403 422 403 302",
        {"trigger": ""},
    ),
    Case(
        "pool.delete_rule",
        "POST",
        "/pool/{pool}/settings/rules/999999/delete",
        "403 403 404 404 403 403 404 403 302",
    ),
    Case("crm_activities.index", "GET", "/activities", "200 200 200 200 200 200 200 200 302"),
    Case(
        "crm_activities.create",
        "POST",
        "/activities",
        "422 422 422 422 404 404 422 422 302",
        {"customer_id": "{customer}", "kind": "bogus", "subject": ""},
    ),
    Case("crm_activities.reports", "GET", "/reports/daily", "200 200 200 200 200 200 200 200 302"),
    Case(
        "crm_activities.save_report",
        "POST",
        "/reports/daily",
        "422 422 422 422 422 422 422 422 302",
        {"summary": ""},
    ),
    Case("crm_customers.index", "GET", "/customers", "200 200 200 200 200 200 200 200 302"),
    Case(
        "crm_customers.export",
        "GET",
        "/customers/export.csv",
        "200 200 200 200 200 200 200 200 302",
    ),
    Case(
        "crm_customers.profile",
        "GET",
        "/customers/{customer}",
        "200 200 200 200 404 404 200 200 302",
    ),
    Case(
        "crm_customers.new_contact",
        "POST",
        "/customers/{customer}/contacts",
        "422 422 422 422 404 404 422 422 302",
        {"name": ""},
    ),
    Case(
        "crm_customers.new_activity",
        "POST",
        "/customers/{customer}/activities",
        "422 422 422 422 404 404 422 422 302",
        {"kind": "bogus", "subject": ""},
    ),
    Case(
        "crm_customers.save_current_filter",
        "POST",
        "/customers/filters",
        "302 302 302 302 302 302 302 302 302",
        {"filter_name": ""},
    ),
    Case(
        "crm_customers.apply_filter",
        "GET",
        "/customers/filters/{filter}",
        "302 404 404 404 404 404 404 404 302",
    ),
    Case(
        "crm_customers.delete_filter",
        "POST",
        "/customers/filters/{filter}/delete",
        "302 404 404 404 404 404 404 404 302",
    ),
    Case("crm_deals.board", "GET", "/opportunities/board", "200 200 200 200 200 200 200 200 302"),
    Case(
        "crm_deals.export",
        "GET",
        "/opportunities/export.csv",
        "200 200 200 200 200 200 200 200 302",
    ),
    Case("crm_deals.deal", "GET", "/opportunities/{deal}", "200 200 200 200 404 404 200 200 302"),
    Case(
        "crm_deals.move",
        "POST",
        "/opportunities/{deal}/move",
        "409 409 409 409 404 404 409 409 302",
        {"to_stage": "nowhere"},
    ),
    Case(
        "crm_deals.win_rate",
        "POST",
        "/opportunities/{deal}/win-rate",
        "422 422 422 422 404 404 422 422 302",
        {"win_rate": "abc"},
    ),
    Case("crm_imports.upload_form", "GET", "/import/leads", "200 200 200 200 200 200 200 200 302"),
    Case(
        "crm_imports.check_upload",
        "POST",
        "/import/leads",
        "422 422 422 422 422 422 422 422 302",
        {},
    ),
    Case(
        "crm_imports.confirm",
        "POST",
        "/import/leads/confirm",
        "403 422 422 422 403 422 422 403 302",
        {"csv_text": "name\nGuess"},  # no pool chosen: refused after the role check
    ),
    Case("crm_knowledge.index", "GET", "/knowledge", "200 200 200 200 200 200 200 200 302"),
    Case(
        "crm_knowledge.article",
        "GET",
        "/knowledge/{article}",
        "200 200 200 200 200 200 200 200 302",
    ),
    Case("crm_knowledge.new", "GET", "/knowledge/new", "403 200 200 200 403 403 200 403 302"),
    Case(
        "crm_knowledge.new",
        "POST",
        "/knowledge/new",
        "403 422 422 422 403 403 422 403 302",
        {"title": ""},
    ),
    Case(
        "crm_knowledge.edit",
        "GET",
        "/knowledge/{article}/edit",
        "403 200 200 200 403 403 200 403 302",
    ),
    Case(
        "crm_knowledge.edit",
        "POST",
        "/knowledge/{article}/edit",
        "403 422 422 422 403 403 422 403 302",
        {"title": ""},
    ),
    Case("crm_orders.index", "GET", "/orders", "200 200 200 200 200 200 200 200 302"),
    Case("crm_orders.export", "GET", "/orders/export.csv", "200 200 200 200 200 200 200 200 302"),
    Case("crm_orders.order", "GET", "/orders/{order}", "200 200 200 200 200 404 200 200 302"),
    Case(
        "crm_orders.new_receipt",
        "POST",
        "/orders/{order}/receipts",
        "422 422 422 422 422 404 422 422 302",
        {"amount": "abc"},
    ),
    Case(
        "crm_orders.new_invoice_request",
        "POST",
        "/orders/{order}/invoice-requests",
        "422 422 422 422 422 404 422 422 302",
        {"amount": "abc"},
    ),
    Case(
        "crm_quotes.new_quote",
        "GET",
        "/opportunities/{deal}/quotes/new",
        "200 200 200 200 404 404 200 200 302",
    ),
    Case(
        "crm_quotes.new_quote",
        "POST",
        "/opportunities/{deal}/quotes/new",
        "422 422 422 422 404 404 422 422 302",
        {},
    ),
    Case("crm_quotes.quote", "GET", "/quotes/{quote}", "200 200 200 200 404 404 200 200 302"),
    Case(
        "crm_quotes.edit_quote",
        "GET",
        "/quotes/{quote}/edit",
        "200 200 200 200 404 404 200 200 302",
    ),
    Case(
        "crm_quotes.edit_quote",
        "POST",
        "/quotes/{quote}/edit",
        "422 422 422 422 404 404 422 422 302",
        {},
    ),
    Case(
        "crm_quotes.submit",
        "POST",
        "/quotes/{pending_quote}/submit",
        "409 409 409 409 404 404 409 409 302",
    ),
    Case(
        "crm_quotes.accept",
        "POST",
        "/quotes/{pending_quote}/accept",
        "409 409 409 409 404 404 409 409 302",
    ),
    Case("api.openapi", "GET", "/api/v1/openapi.json", "200 200 200 200 200 200 200 200 200"),
    Case("api.list_processes", "GET", "/api/v1/processes", "200 200 200 200 200 200 200 200 401"),
    Case(
        "api.deploy_processes", "POST", "/api/v1/processes", "403 403 403 403 403 403 422 403 401"
    ),
    Case("api.start", "POST", "/api/v1/instances", "403 403 422 422 403 403 422 422 401", {}),
    Case(
        "api.show_instance",
        "GET",
        "/api/v1/instances/{instance}",
        "200 200 200 200 404 404 200 200 401",
    ),
    Case("api.list_tasks", "GET", "/api/v1/tasks", "200 200 200 200 200 200 200 200 401"),
    Case("api.show_task", "GET", "/api/v1/tasks/{task}", "200 200 200 200 404 404 200 200 401"),
    Case("api.claim", "POST", "/api/v1/tasks/{task}/claim", "200 409 409 409 404 404 409 409 401"),
    Case(
        "api.complete",
        "POST",
        "/api/v1/tasks/{task}/complete",
        "422 422 422 422 404 404 422 422 401",
        {"data": {}},
    ),
    Case(
        "api.new_customer",
        "POST",
        "/api/v1/customers",
        "422 422 422 422 422 422 422 422 401",
        {"name": ""},
    ),
    Case(
        "api.show_customer",
        "GET",
        "/api/v1/customers/{customer}",
        "200 200 200 200 404 404 200 200 401",
    ),
    Case(
        "api.new_contact",
        "POST",
        "/api/v1/customers/{customer}/contacts",
        "422 422 422 422 422 422 422 422 401",
        {"name": ""},
    ),
    Case(
        "api.new_opportunity",
        "POST",
        "/api/v1/opportunities",
        "422 422 422 422 404 404 422 422 401",
        {"customer_id": "{customer}", "name": "x", "amount": "-5"},
    ),
    Case(
        "api.show_opportunity",
        "GET",
        "/api/v1/opportunities/{deal}",
        "200 200 200 200 404 404 200 200 401",
    ),
    Case(
        "api.override_win_rate",
        "PUT",
        "/api/v1/opportunities/{deal}/win-rate",
        "200 200 200 200 404 404 422 422 401",
        {"win_rate": None},
    ),
    Case(
        "api.new_quote",
        "POST",
        "/api/v1/quotes",
        "422 422 422 422 404 404 422 422 401",
        {"opportunity_id": "{deal}", "lines": []},
    ),
    Case("api.show_quote", "GET", "/api/v1/quotes/{quote}", "200 200 200 200 404 404 200 200 401"),
    Case(
        "api.submit",
        "POST",
        "/api/v1/quotes/{pending_quote}/submit",
        "409 409 409 409 404 404 409 409 401",
    ),
    Case("api.show_order", "GET", "/api/v1/orders/{order}", "200 200 200 200 200 404 200 200 401"),
    Case(
        "api.new_receipt",
        "POST",
        "/api/v1/orders/{order}/receipts",
        "422 422 422 422 422 404 422 422 401",
        {"amount": "-1", "received_on": "2026-11-01"},
    ),
    Case("api.leads", "GET", "/api/v1/leads", "200 200 200 200 200 200 200 200 401"),
    Case(
        "api.new_lead",
        "POST",
        "/api/v1/leads",
        "403 422 422 422 403 422 422 403 401",
        {"name": "x", "pool_id": "{pool}"},
    ),
    Case("api.lead", "GET", "/api/v1/leads/{lead}", "200 200 200 200 404 404 200 200 401"),
    Case(
        "api.claim_a_lead",
        "POST",
        "/api/v1/leads/{lead}/claim",
        "409 409 403 403 403 403 403 403 401",
    ),
    Case(
        "api.assign_a_lead",
        "POST",
        "/api/v1/leads/{lead}/assign",
        "403 409 409 409 403 403 409 403 401",
        {"user_id": "{north_rep2}"},
    ),
    Case(
        "api.convert_lead",
        "POST",
        "/api/v1/leads/{lead}/convert",
        "409 409 409 409 404 404 409 409 401",
        CONVERSION,
    ),
    Case(
        "api.disqualify_lead",
        "POST",
        "/api/v1/leads/{lead}/disqualify",
        "409 409 409 409 404 404 409 409 401",
        {"reason": "x"},
    ),
    Case(
        "api.return_lead",
        "POST",
        "/api/v1/leads/{lead}/return",
        "409 409 409 409 404 404 409 409 401",
        {"reason": "x"},
    ),
    Case("api.pools", "GET", "/api/v1/pools", "200 200 200 200 200 200 200 200 401"),
    Case(
        "api.pool_customers",
        "GET",
        "/api/v1/pools/{pool}/customers",
        "200 200 200 200 200 200 200 200 401",
    ),
    Case(
        "api.pool_leads",
        "GET",
        "/api/v1/pools/{lead_pool}/leads",
        "200 200 200 200 200 200 200 200 401",
    ),
    Case(
        "api.claim_a_customer",
        "POST",
        "/api/v1/customers/{customer}/claim",
        "409 409 403 403 403 403 403 403 401",
    ),
    Case(
        "api.release_a_customer",
        "POST",
        "/api/v1/customers/{customer}/release",
        "422 422 422 422 404 404 422 422 401",
        {"reason": "x", "pool_id": "{lead_pool}"},
    ),
    Case("api.my_activities", "GET", "/api/v1/activities", "200 200 200 200 200 200 200 200 401"),
    Case(
        "api.activities_of_customer",
        "GET",
        "/api/v1/customers/{customer}/activities",
        "200 200 200 200 404 404 200 200 401",
    ),
    Case(
        "api.new_customer_activity",
        "POST",
        "/api/v1/customers/{customer}/activities",
        "422 422 422 422 404 404 422 422 401",
        PAST_FOLLOWUP,
    ),
    Case(
        "api.activities_of_opportunity",
        "GET",
        "/api/v1/opportunities/{deal}/activities",
        "200 200 200 200 404 404 200 200 401",
    ),
    Case(
        "api.new_opportunity_activity",
        "POST",
        "/api/v1/opportunities/{deal}/activities",
        "422 422 422 422 404 404 422 422 401",
        PAST_FOLLOWUP,
    ),
    Case(
        "api.daily_report_list",
        "GET",
        "/api/v1/reports/daily",
        "200 200 200 200 200 200 200 200 401",
    ),
    Case(
        "api.save_my_daily_report",
        "PUT",
        "/api/v1/reports/daily",
        "422 422 422 422 422 422 422 422 401",
        {"summary": ""},
    ),
]


# Requests that guess north_rep1's record ids, with input the service would accept from the owner.
GUESSES: list[Case] = [
    Case("inbox.claim", "POST", "/tasks/{task}/claim", "303"),
    Case("inbox.release", "POST", "/tasks/{task}/release", "404"),
    Case("inbox.urge", "POST", "/tasks/{task}/urge", "404"),
    Case("tasks.show", "GET", "/tasks/{task}", "404"),
    Case("tasks.submit", "POST", "/tasks/{task}", "404", {"budget": "100"}),
    Case("pool.claim", "POST", "/pool/customers/{customer}/claim", "409 403"),
    Case("pool.release", "POST", "/pool/customers/{customer}/release", "404", {"reason": "x"}),
    Case(
        "crm_activities.create",
        "POST",
        "/activities",
        "404",
        {"customer_id": "{customer}", "kind": "note", "subject": "guess"},
    ),
    Case("crm_customers.profile", "GET", "/customers/{customer}", "404"),
    Case(
        "crm_customers.new_contact",
        "POST",
        "/customers/{customer}/contacts",
        "404",
        {"name": "Intruder"},
    ),
    Case(
        "crm_customers.new_activity",
        "POST",
        "/customers/{customer}/activities",
        "404",
        {"kind": "note", "subject": "guess"},
    ),
    Case("crm_customers.apply_filter", "GET", "/customers/filters/{filter}", "404"),
    Case("crm_customers.delete_filter", "POST", "/customers/filters/{filter}/delete", "404"),
    Case("crm_deals.deal", "GET", "/opportunities/{deal}", "404"),
    Case(
        "crm_deals.move",
        "POST",
        "/opportunities/{deal}/move",
        "404",
        {"to_stage": "needs_analysis"},
    ),
    Case("crm_deals.win_rate", "POST", "/opportunities/{deal}/win-rate", "404", {"win_rate": "99"}),
    Case("crm_orders.order", "GET", "/orders/{order}", "404"),
    Case(
        "crm_orders.new_receipt",
        "POST",
        "/orders/{order}/receipts",
        "404",
        {"amount": "10", "received_on": "2026-11-01"},
    ),
    Case(
        "crm_orders.new_invoice_request",
        "POST",
        "/orders/{order}/invoice-requests",
        "404",
        {"amount": "10", "title": "guess"},
    ),
    Case("crm_quotes.new_quote", "GET", "/opportunities/{deal}/quotes/new", "404"),
    Case(
        "crm_quotes.new_quote",
        "POST",
        "/opportunities/{deal}/quotes/new",
        "404",
        {
            "line-0-description": "x",
            "line-0-quantity": "1",
            "line-0-unit_price": "1",
        },
    ),
    Case("crm_quotes.quote", "GET", "/quotes/{quote}", "404"),
    Case("crm_quotes.edit_quote", "GET", "/quotes/{quote}/edit", "404"),
    Case(
        "crm_quotes.edit_quote",
        "POST",
        "/quotes/{quote}/edit",
        "404",
        {
            "line-0-description": "x",
            "line-0-quantity": "1",
            "line-0-unit_price": "1",
        },
    ),
    Case("crm_quotes.submit", "POST", "/quotes/{quote}/submit", "404"),
    Case("crm_quotes.accept", "POST", "/quotes/{pending_quote}/accept", "404"),
    Case("api.show_instance", "GET", "/api/v1/instances/{instance}", "404"),
    Case("api.show_task", "GET", "/api/v1/tasks/{task}", "404"),
    Case("api.claim", "POST", "/api/v1/tasks/{task}/claim", "404"),
    Case("api.complete", "POST", "/api/v1/tasks/{task}/complete", "404", {"data": {"budget": 100}}),
    Case("api.show_customer", "GET", "/api/v1/customers/{customer}", "404"),
    Case(
        "api.new_contact",
        "POST",
        "/api/v1/customers/{customer}/contacts",
        "404",
        {"name": "Intruder"},
    ),
    Case(
        "api.new_opportunity",
        "POST",
        "/api/v1/opportunities",
        "404",
        {"customer_id": "{customer}", "name": "Intruder deal", "amount": "5"},
    ),
    Case("api.show_opportunity", "GET", "/api/v1/opportunities/{deal}", "404"),
    Case(
        "api.override_win_rate",
        "PUT",
        "/api/v1/opportunities/{deal}/win-rate",
        "404",
        {"win_rate": 99},
    ),
    Case(
        "api.new_quote",
        "POST",
        "/api/v1/quotes",
        "404",
        {
            "opportunity_id": "{deal}",
            "lines": [{"description": "x", "quantity": "1", "unit_price": "1"}],
        },
    ),
    Case("api.show_quote", "GET", "/api/v1/quotes/{quote}", "404"),
    Case("api.submit", "POST", "/api/v1/quotes/{quote}/submit", "404"),
    Case("api.show_order", "GET", "/api/v1/orders/{order}", "404"),
    Case(
        "api.new_receipt",
        "POST",
        "/api/v1/orders/{order}/receipts",
        "404",
        {"amount": "10", "received_on": "2026-11-01"},
    ),
    Case("api.lead", "GET", "/api/v1/leads/{lead}", "404"),
    Case("api.claim_a_lead", "POST", "/api/v1/leads/{lead}/claim", "404 403"),
    Case(
        "api.assign_a_lead",
        "POST",
        "/api/v1/leads/{lead}/assign",
        "403 404",
        {"user_id": "{north_rep2}"},
    ),
    Case("api.convert_lead", "POST", "/api/v1/leads/{lead}/convert", "404", CONVERSION),
    Case("api.disqualify_lead", "POST", "/api/v1/leads/{lead}/disqualify", "404", {"reason": "x"}),
    Case("api.return_lead", "POST", "/api/v1/leads/{lead}/return", "404", {"reason": "x"}),
    Case("api.claim_a_customer", "POST", "/api/v1/customers/{customer}/claim", "409 403"),
    Case(
        "api.release_a_customer",
        "POST",
        "/api/v1/customers/{customer}/release",
        "404",
        {"reason": "x"},
    ),
    Case("api.activities_of_customer", "GET", "/api/v1/customers/{customer}/activities", "404"),
    Case(
        "api.new_customer_activity",
        "POST",
        "/api/v1/customers/{customer}/activities",
        "404",
        {"kind": "note", "subject": "guess"},
    ),
    Case("api.activities_of_opportunity", "GET", "/api/v1/opportunities/{deal}/activities", "404"),
    Case(
        "api.new_opportunity_activity",
        "POST",
        "/api/v1/opportunities/{deal}/activities",
        "404",
        {"kind": "note", "subject": "guess"},
    ),
]
# Lists and exports an outsider may open; north_rep1's records must not be in them.
LISTS = [
    "/",
    "/inbox",
    "/inbox?tab=open",
    "/inbox?tab=completed",
    "/pool/",
    "/pool/{pool}",
    "/activities",
    "/reports/daily",
    "/customers",
    "/customers/export.csv",
    "/opportunities/board",
    "/opportunities/export.csv",
    "/orders",
    "/orders/export.csv",
    "/knowledge",
    "/api/v1/tasks",
]


def fingerprint(m: Matrix) -> tuple[Any, ...]:
    """Return the state of north_rep1's records that a refused request must leave alone."""
    from crm.activities.models import Activity, DailyReport
    from crm.customers.models import Contact
    from crm.orders.models import InvoiceRequest, Receipt
    from crm.quotes.models import Quote
    from crm.sales.models import Opportunity
    from crm.saved_filters import SavedFilter
    from webapp import db

    with m.app.app_context():
        s = db.session
        customer = s.get(Customer, m.ids["customer"])
        deal = s.get(Opportunity, m.ids["deal"])
        task = s.get(HumanTask, m.ids["task"])
        lead = s.get(Lead, m.ids["lead"])
        return (
            customer.owner_id,
            customer.pool_id,
            customer.tier,
            s.scalars(select(Contact.name).where(Contact.customer_id == customer.id)).all(),
            s.scalars(select(Activity.subject).where(Activity.customer_id == customer.id)).all(),
            deal.stage,
            deal.win_rate_override,
            deal.amount,
            deal.status,
            s.scalars(select(Opportunity.id).where(Opportunity.customer_id == customer.id)).all(),
            s.scalars(select(Quote.status).where(Quote.opportunity_id == deal.id)).all(),
            s.scalars(select(Receipt.id).where(Receipt.order_id == m.ids["order"])).all(),
            s.scalars(
                select(InvoiceRequest.id).where(InvoiceRequest.order_id == m.ids["order"])
            ).all(),
            task.status,
            task.assignee,
            lead.status,
            lead.owner_id,
            s.get(SavedFilter, m.ids["filter"]) is not None,
            s.scalars(select(DailyReport.summary)).all(),
        )


def reset_task(m: Matrix) -> None:
    """Give the task back to north_rep1 (the owner's own claim and release move it)."""
    from webapp import db

    with m.app.app_context():
        db.session.execute(
            update(HumanTask)
            .where(HumanTask.id == m.ids["task"])
            .values(assignee="north_rep1", status="open")
        )
        db.session.commit()


def _covered(app: Flask, endpoint: str) -> bool:
    blueprint = endpoint.partition(".")[0]
    if app.view_functions[endpoint].__module__ in OTHER_AREAS:
        return False
    return blueprint in COVERED_BLUEPRINTS or blueprint.startswith(COVERED_PREFIXES)


def test_matrix_lists_every_route(matrix):
    """A new route in the covered blueprints must get its line in ROUTES (and a gone one leave)."""
    served = {
        (rule.endpoint, method)
        for rule in matrix.app.url_map.iter_rules()
        if _covered(matrix.app, rule.endpoint)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {(case.endpoint, case.method) for case in ROUTES}
    assert served - listed == set(), "routes missing from the permission matrix"
    assert listed - served == set(), "routes in the matrix that the app no longer serves"


def _matrix_cases() -> list[Any]:
    return [
        pytest.param(case, role, id=f"{case.endpoint}-{case.method}-{role}")
        for case in ROUTES
        for role in ROLES
    ]


@pytest.mark.parametrize(("case", "role"), _matrix_cases())
def test_matrix(matrix, db_url, case, role):
    only_on_sqlite(db_url, when=role not in POSTGRES_ROLES)
    expected = case.expected()[role]
    response = send(matrix, ROLE_USERS[role], case)
    if "{task}" in case.path:
        reset_task(matrix)
    assert str(response.status_code) == expected, response.get_data(as_text=True)[:300]
    if expected == "302" and role == "anonymous":
        assert "/login" in response.headers["Location"]
    if expected == "401" and case.api:
        assert "Bearer" in response.get_json()["error"]
    if expected == "401" and not case.api:
        assert "Wrong username or password" in response.get_data(as_text=True)
    if expected in ("403", "404"):
        assert SECRET not in response.get_data(as_text=True)


def _guesses() -> list[Any]:
    return [
        pytest.param(case, who, id=f"{case.endpoint}-{case.method}-{who}")
        for case in GUESSES
        for who in OUTSIDERS
    ]


@pytest.mark.parametrize(("case", "who"), _guesses())
def test_guessed_ids_of_another_reps_records(matrix, db_url, case, who):
    """Outsiders guessing north_rep1's ids are refused, learn no names and change nothing."""
    only_on_sqlite(db_url, when=who not in POSTGRES_OUTSIDERS)
    before = fingerprint(matrix)
    response = send(matrix, who, case)
    assert str(response.status_code) in case.expect.split()
    assert SECRET not in response.get_data(as_text=True)
    if response.status_code == 303:  # the inbox says why on the page it returns to
        page = matrix.clients[who].get(response.headers["Location"]).get_data(as_text=True)
        assert SECRET not in page
    assert fingerprint(matrix) == before


@pytest.mark.parametrize("who", OUTSIDERS)
@pytest.mark.parametrize("path", LISTS)
def test_lists_and_exports_hide_another_reps_records(matrix, db_url, path, who):
    only_on_sqlite(db_url, when=who not in POSTGRES_OUTSIDERS)
    case = Case("api.list" if path.startswith("/api/") else "page", "GET", path, "200")
    response = send(matrix, who, case)
    assert response.status_code == 200
    assert SECRET not in response.get_data(as_text=True)


OWNER_LISTS = [
    "/customers",
    "/customers/export.csv",
    "/opportunities/board",
    "/opportunities/export.csv",
    "/orders",
    "/orders/export.csv",
    "/activities",
    "/reports/daily",
]


@pytest.mark.parametrize("who", ["north_rep1", "north_manager", "dora"])
@pytest.mark.parametrize("path", OWNER_LISTS)
def test_lists_show_the_records_to_their_owner_and_managers(matrix, path, who):
    response = send(matrix, who, Case("page", "GET", path, "200"))
    assert SECRET in response.get_data(as_text=True)
