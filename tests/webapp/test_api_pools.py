"""The JSON API of leads, pools, activities and daily reports: same rights as the pages, field
errors as JSON, contact details masked until claimed."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from sqlalchemy import select, update

from crm.customers.models import Customer, OwnerChange, Pool
from crm.directory.models import Team, User
from crm.directory.tokens import create_token
from crm.leads.models import Lead
from engine.deploy import collect_files, deploy_files, folder_form_loader
from tests.conftest import FORMS, NOW, PROCESSES

PIPELINES = ("sales_pipeline_new_business", "sales_pipeline_renewal")


@pytest.fixture
def org(app, web_user) -> Any:
    """Team North (manager mona; reps rita, ravi), rep sam elsewhere, marketing mark; a lead pool
    with one lead, a customer pool with one customer; lead-to-cash deployed."""
    from webapp import db

    with app.app_context():
        north = Team(name="North")
        db.session.add(north)
        db.session.commit()
        team_id = north.id
    people = {
        "mona": web_user("mona", "manager", team_id=team_id),
        "rita": web_user("rita", "rep", team_id=team_id),
        "ravi": web_user("ravi", "rep", team_id=team_id),
        "sam": web_user("sam", "rep"),
        "mark": web_user("mark", "marketing"),
    }
    with app.app_context():
        mona = db.session.scalar(select(User).where(User.username == "mona"))
        db.session.get(Team, team_id).manager_id = mona.id
        leads, customers = Pool(name="Web leads", kind="lead"), Pool(name="East", kind="customer")
        db.session.add_all([leads, customers])
        db.session.flush()
        lead = Lead(
            name="Lily Lead",
            company="Lotus Ltd",
            phone="13812345678",
            email="lily@lotus.example",
            pool_id=leads.id,
            status="new",
            created_at=NOW,
        )
        waiting = Customer(
            name="Pine Logistics",
            name_key="pinelogistics",
            tier="B",
            pool_id=customers.id,
            phone="13900001111",
            created_at=NOW,
        )
        db.session.add_all([lead, waiting])
        deploy_files(
            db.session,
            "admin",
            collect_files([PROCESSES / f"{name}.bpmn" for name in ("lead_to_cash", *PIPELINES)]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        tokens = {}
        for name in people:
            user = db.session.scalar(select(User).where(User.username == name))
            _, text = create_token(db.session, user, "test", now=NOW)
            tokens[name] = {"Authorization": f"Bearer {text}"}
        db.session.commit()
        ids = {
            "lead_pool": leads.id,
            "customer_pool": customers.id,
            "lead": lead.id,
            "customer": waiting.id,
            **dict(db.session.execute(select(User.username, User.id)).all()),
        }
    yield {"ids": ids, "as": tokens}
    with app.app_context():
        db.session.execute(update(Team).values(manager_id=None))
        db.session.commit()


def _read(app, query) -> Any:
    from webapp import db

    with app.app_context():
        return db.session.execute(query).all()


def test_api_pools_openapi_documents_the_new_routes(client):
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    for path in (
        "/api/v1/leads/{lead_id}/convert",
        "/api/v1/pools/{pool_id}/customers",
        "/api/v1/customers/{customer_id}/release",
        "/api/v1/opportunities/{opportunity_id}/activities",
        "/api/v1/reports/daily",
    ):
        assert path in document["paths"], path
    listing = document["paths"]["/api/v1/leads"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"status", "pool_id", "limit"}
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array"


def test_api_lead_capture_is_for_marketing_and_names_bad_fields(client, org):
    ids, who = org["ids"], org["as"]
    created = client.post(
        "/api/v1/leads",
        json={"name": "Nina New", "pool_id": ids["lead_pool"], "phone": "13700002222"},
        headers=who["mark"],
    )
    assert created.status_code == 201
    assert created.get_json()["status"] == "new"
    assert created.get_json()["phone"] == "137****2222"  # masked: nobody owns it yet
    refused = client.post(
        "/api/v1/leads", json={"name": "Rita's", "pool_id": ids["lead_pool"]}, headers=who["rita"]
    )
    assert refused.status_code == 403
    assert "marketing" in refused.get_json()["error"]
    bad = client.post("/api/v1/leads", json={"name": "", "email": "nope"}, headers=who["mark"])
    assert bad.status_code == 422
    assert set(bad.get_json()["fields"]) == {"name", "email", "pool_id"}
    wrong_pool = client.post(
        "/api/v1/leads", json={"name": "X", "pool_id": ids["customer_pool"]}, headers=who["mark"]
    )
    assert wrong_pool.status_code == 422
    assert wrong_pool.get_json()["fields"] == {"pool_id": ["is not a lead pool"]}


def test_api_rep_claims_a_lead_and_converts_it(app, client, org):
    ids, who = org["ids"], org["as"]
    waiting = client.get(f"/api/v1/pools/{ids['lead_pool']}/leads", headers=who["rita"])
    assert [(lead["name"], lead["phone"]) for lead in waiting.get_json()] == [
        ("Lily Lead", "138****5678")
    ]
    claimed = client.post(f"/api/v1/leads/{ids['lead']}/claim", headers=who["rita"])
    assert claimed.status_code == 200
    assert (claimed.get_json()["status"], claimed.get_json()["owner_id"]) == (
        "working",
        ids["rita"],
    )
    assert claimed.get_json()["phone"] == "13812345678"
    again = client.post(f"/api/v1/leads/{ids['lead']}/claim", headers=who["ravi"])
    assert again.status_code == 404  # once rita's, ravi does not see it
    assert client.get(f"/api/v1/leads/{ids['lead']}", headers=who["sam"]).status_code == 404
    assert client.get(f"/api/v1/leads/{ids['lead']}", headers=who["mona"]).status_code == 200

    bad = client.post(
        f"/api/v1/leads/{ids['lead']}/convert",
        json={"customer_name": "Lotus Ltd", "amount": "many"},
        headers=who["rita"],
    )
    assert bad.status_code == 422
    assert {"amount", "contact_name", "opportunity_name", "expected_close"} <= set(
        bad.get_json()["fields"]
    )
    body = {
        "customer_name": "Lotus Ltd",
        "contact_name": "Lily Lead",
        "contact_buying_role": "decision_maker",
        "opportunity_name": "Lotus - 20 seats",
        "amount": "20000",
        "expected_close": "2026-12-31",
    }
    stolen = client.post(f"/api/v1/leads/{ids['lead']}/convert", json=body, headers=who["sam"])
    assert stolen.status_code == 404
    converted = client.post(f"/api/v1/leads/{ids['lead']}/convert", json=body, headers=who["rita"])
    assert converted.status_code == 200, converted.get_json()
    lead = converted.get_json()
    assert lead["status"] == "converted"
    [(name, owner)] = _read(
        app, select(Customer.name, Customer.owner_id).where(Customer.id == lead["customer_id"])
    )
    assert (name, owner) == ("Lotus Ltd", ids["rita"])
    done = client.post(
        f"/api/v1/leads/{ids['lead']}/disqualify", json={"reason": "late"}, headers=who["rita"]
    )
    assert done.status_code == 409


def test_api_lead_disqualify_needs_a_reason_and_assign_stays_in_the_team(client, org):
    ids, who = org["ids"], org["as"]
    outside = client.post(
        f"/api/v1/leads/{ids['lead']}/assign", json={"user_id": ids["sam"]}, headers=who["mona"]
    )
    assert outside.status_code == 403
    assert (
        client.post(
            f"/api/v1/leads/{ids['lead']}/assign",
            json={"user_id": ids["ravi"]},
            headers=who["rita"],
        ).status_code
        == 403
    )
    given = client.post(
        f"/api/v1/leads/{ids['lead']}/assign", json={"user_id": ids["ravi"]}, headers=who["mona"]
    )
    assert given.get_json()["owner_id"] == ids["ravi"]
    no_reason = client.post(
        f"/api/v1/leads/{ids['lead']}/disqualify", json={"reason": ""}, headers=who["ravi"]
    )
    assert no_reason.status_code == 422
    assert list(no_reason.get_json()["fields"]) == ["reason"]
    returned = client.post(
        f"/api/v1/leads/{ids['lead']}/return", json={"reason": "wrong region"}, headers=who["ravi"]
    )
    assert returned.status_code == 200
    assert (returned.get_json()["status"], returned.get_json()["owner_id"]) == ("returned", None)
    assert returned.get_json()["status_reason"] == "wrong region"
    mine = client.get("/api/v1/leads?status=returned", headers=who["rita"]).get_json()
    assert [lead["name"] for lead in mine] == ["Lily Lead"]
    assert client.get("/api/v1/leads?status=bogus", headers=who["rita"]).status_code == 422


def test_api_pool_customer_claim_and_release_with_reason(app, client, org):
    ids, who = org["ids"], org["as"]
    listed = client.get("/api/v1/pools", headers=who["rita"]).get_json()
    assert [(p["name"], p["kind"], p["waiting"]) for p in listed] == [
        ("East", "customer", 1),
        ("Web leads", "lead", 1),
    ]
    waiting = client.get(f"/api/v1/pools/{ids['customer_pool']}/customers", headers=who["rita"])
    assert waiting.get_json()[0]["phone"] == "139****1111"
    assert (
        client.post(f"/api/v1/customers/{ids['customer']}/claim", headers=who["mona"]).status_code
        == 403
    )
    claimed = client.post(f"/api/v1/customers/{ids['customer']}/claim", headers=who["rita"])
    assert claimed.status_code == 200
    assert (claimed.get_json()["owner_id"], claimed.get_json()["phone"]) == (
        ids["rita"],
        "13900001111",
    )
    late = client.post(f"/api/v1/customers/{ids['customer']}/claim", headers=who["sam"])
    assert late.status_code == 409
    assert "Pine" not in late.get_json()["error"]
    no_reason = client.post(
        f"/api/v1/customers/{ids['customer']}/release", json={"reason": ""}, headers=who["rita"]
    )
    assert no_reason.status_code == 422
    assert list(no_reason.get_json()["fields"]) == ["reason"]
    foreign = client.post(
        f"/api/v1/customers/{ids['customer']}/release", json={"reason": "x"}, headers=who["sam"]
    )
    assert foreign.status_code == 404
    released = client.post(
        f"/api/v1/customers/{ids['customer']}/release",
        json={"reason": "no budget this year"},
        headers=who["rita"],
    )
    assert released.status_code == 200
    assert (released.get_json()["owner_id"], released.get_json()["pool_id"]) == (
        None,
        ids["customer_pool"],
    )
    notes = _read(app, select(OwnerChange.reason, OwnerChange.note).order_by(OwnerChange.id))
    assert [tuple(n) for n in notes] == [("claim", None), ("release", "no budget this year")]


def test_api_activities_on_customers_and_opportunities(app, client, org):
    ids, who = org["ids"], org["as"]
    client.post(f"/api/v1/customers/{ids['customer']}/claim", headers=who["rita"])
    deal = client.post(
        "/api/v1/opportunities",
        json={"customer_id": ids["customer"], "name": "Pine fleet", "amount": "5000"},
        headers=who["rita"],
    ).get_json()
    logged = client.post(
        f"/api/v1/customers/{ids['customer']}/activities",
        json={"kind": "call", "subject": "First call", "next_followup_on": "2099-01-05"},
        headers=who["rita"],
    )
    assert logged.status_code == 201
    on_deal = client.post(
        f"/api/v1/opportunities/{deal['id']}/activities",
        json={"kind": "visit", "subject": "Demo on site"},
        headers=who["rita"],
    )
    assert on_deal.get_json()["opportunity_id"] == deal["id"]
    timeline = client.get(
        f"/api/v1/customers/{ids['customer']}/activities", headers=who["rita"]
    ).get_json()
    assert sorted(a["subject"] for a in timeline) == ["Demo on site", "First call"]
    deal_only = client.get(
        f"/api/v1/opportunities/{deal['id']}/activities", headers=who["rita"]
    ).get_json()
    assert [a["subject"] for a in deal_only] == ["Demo on site"]
    assert len(client.get("/api/v1/activities", headers=who["rita"]).get_json()) == 2
    bad = client.post(
        f"/api/v1/customers/{ids['customer']}/activities",
        json={"kind": "fax", "subject": ""},
        headers=who["rita"],
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["fields"]) == {"kind", "subject"}
    for path in (
        f"/api/v1/customers/{ids['customer']}/activities",
        f"/api/v1/opportunities/{deal['id']}/activities",
    ):
        assert client.get(path, headers=who["sam"]).status_code == 404
        intruder = client.post(path, json={"kind": "note", "subject": "x"}, headers=who["sam"])
        assert intruder.status_code == 404
    assert (
        client.get(
            f"/api/v1/customers/{ids['customer']}/activities", headers=who["mona"]
        ).status_code
        == 200
    )


def test_api_daily_reports_are_read_by_their_writer_and_managers(client, org):
    who = org["as"]
    saved = client.put(
        "/api/v1/reports/daily",
        json={"summary": "Three calls", "plan": "Visit"},
        headers=who["rita"],
    )
    assert saved.status_code == 200
    rewritten = client.put(
        "/api/v1/reports/daily", json={"summary": "Four calls"}, headers=who["rita"]
    )
    assert rewritten.get_json()["id"] == saved.get_json()["id"]
    empty = client.put("/api/v1/reports/daily", json={"summary": ""}, headers=who["rita"])
    assert empty.status_code == 422
    assert list(empty.get_json()["fields"]) == ["summary"]
    mona = client.get("/api/v1/reports/daily", headers=who["mona"]).get_json()
    assert [(r["user_name"], r["summary"]) for r in mona] == [("Rita", "Four calls")]
    assert client.get("/api/v1/reports/daily", headers=who["sam"]).get_json() == []
    assert client.get("/api/v1/reports/daily?day=31.12", headers=who["sam"]).status_code == 422


def test_api_limit_is_checked(client, org):
    response = client.get("/api/v1/leads?limit=5000", headers=org["as"]["rita"])
    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["limit"]
