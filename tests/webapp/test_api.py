"""The JSON API: token auth, the same permissions as the pages, JSON errors naming fields."""

from __future__ import annotations

import io

import pytest
from openapi_spec_validator import validate

from crm.directory.tokens import create_token
from tests.conftest import FIXTURES, NOW, PROCESSES


@pytest.fixture
def token_for(app, web_user):
    from webapp import db

    def make(username: str, *roles: str) -> dict[str, str]:
        user = web_user(username, *roles)
        with app.app_context():
            _, text = create_token(db.session, db.session.merge(user), "test", now=NOW)
            db.session.commit()
        return {"Authorization": f"Bearer {text}"}

    return make


def test_api_openapi_document_is_valid(client):
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    assert "/api/v1/tasks/{task_id}/complete" in document["paths"]


def test_api_refuses_missing_and_bad_tokens(client):
    assert client.get("/api/v1/tasks").status_code == 401
    response = client.get("/api/v1/tasks", headers={"Authorization": "Bearer sct_nope"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid or revoked API token"


def test_api_customer_scopes_and_field_errors(client, token_for):
    rita, rob = token_for("rita", "rep"), token_for("rob", "rep")
    created = client.post(
        "/api/v1/customers", json={"name": "Acme <b>Ltd</b>", "tier": "A"}, headers=rita
    )
    assert created.status_code == 201
    customer = created.get_json()
    assert customer["name"] == "Acme <b>Ltd</b>"
    assert client.get(f"/api/v1/customers/{customer['id']}", headers=rita).status_code == 200
    hidden = client.get(f"/api/v1/customers/{customer['id']}", headers=rob)
    assert hidden.status_code == 404
    bad = client.post("/api/v1/customers", json={"name": "", "tier": "Z"}, headers=rita)
    assert bad.status_code == 422
    assert set(bad.get_json()["fields"]) == {"name", "tier"}
    duplicate = client.post("/api/v1/customers", json={"name": "ACME b Ltd b"}, headers=rita)
    assert duplicate.status_code == 422
    assert "possible duplicate" in duplicate.get_json()["fields"]["name"][0]


def test_api_deploy_is_for_admins_and_reports_problems(client, token_for):
    rep, admin = token_for("rita", "rep"), token_for("ada", "admin")
    bad = (FIXTURES / "several_problems.bpmn").read_bytes()
    assert (
        client.post(
            "/api/v1/processes", headers=rep, data={"files": (io.BytesIO(bad), "x.bpmn")}
        ).status_code
        == 403
    )
    rejected = client.post(
        "/api/v1/processes",
        headers=admin,
        data={"files": (io.BytesIO(bad), "several_problems.bpmn")},
    )
    assert rejected.status_code == 422
    assert {p["element_id"] for p in rejected.get_json()["problems"]} >= {"calc", "wait"}
    good = (PROCESSES / "lead_followup.bpmn").read_bytes()
    deployed = client.post(
        "/api/v1/processes", headers=admin, data={"files": (io.BytesIO(good), "lead_followup.bpmn")}
    )
    assert deployed.status_code == 201
    listed = client.get("/api/v1/processes", headers=rep).get_json()
    assert [(p["process_id"], p["version"]) for p in listed] == [("lead_followup", 1)]


def test_api_start_claim_and_complete_a_task(client, token_for):
    admin, rep = token_for("ada", "admin"), token_for("rita", "rep")
    good = (PROCESSES / "lead_followup.bpmn").read_bytes()
    client.post(
        "/api/v1/processes", headers=admin, data={"files": (io.BytesIO(good), "lead_followup.bpmn")}
    )
    assert (
        client.post(
            "/api/v1/instances", headers=rep, json={"process_id": "lead_followup"}
        ).status_code
        == 403
    )
    started = client.post(
        "/api/v1/instances",
        headers=admin,
        json={"process_id": "lead_followup", "data": {"lead_name": "Acme", "budget": 5}},
    )
    assert started.status_code == 201
    [task] = client.get("/api/v1/tasks", headers=rep).get_json()
    assert task["title"] == "Call the lead"
    assert (
        client.post(f"/api/v1/tasks/{task['id']}/claim", headers=rep).get_json()["assignee"]
        == "rita"
    )
    invalid = client.post(
        f"/api/v1/tasks/{task['id']}/complete", headers=rep, json={"data": {"outcome": "maybe"}}
    )
    assert invalid.status_code == 422
    assert "outcome" in invalid.get_json()["fields"]
    done = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        headers=rep,
        json={"data": {"outcome": "not_interested"}},
    )
    assert done.status_code == 200
    assert done.get_json()["status"] == "completed"
    again = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        headers=rep,
        json={"data": {"outcome": "not_interested"}},
    )
    assert again.status_code in (404, 409)
