"""The admins' designer through the web: check, save, deploy, history, diff, rollback, export,
form editing, and who may use any of it.

Every test works on a copy of a few process files and of forms/ in a temporary folder (the app's
PROCESSES_DIR and FORMS_DIR), deployed once as version 1 with the comment "first".
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from crm.designer.models import DesignerAudit
from crm.directory.models import ROLES
from engine.bpmn_diff import diff_bpmn
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.models import Deployment, ProcessDefinition
from tests.conftest import FORMS, NOW, PROCESSES
from tests.webapp.conftest import PASSWORD, csrf_token

SET = (
    "lead_to_cash.bpmn",
    "sales_pipeline_new_business.bpmn",
    "sales_pipeline_renewal.bpmn",
    "quote_approval.bpmn",
    "quote_approval_chain.dmn",
)
BROKEN = (
    '<bpmn:scriptTask id="score_deal" name="Score the deal">'
    "<bpmn:script>score = (</bpmn:script></bpmn:scriptTask>\n"
    '    <bpmn:userTask id="ask_boss" name="Ask the boss"><bpmn:extensionElements>'
    "<spiffworkflow:properties>"
    '<spiffworkflow:property name="formJsonSchemaFilename" value="nope/missing.schema.json" />'
    "</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>\n"
    "  </bpmn:process>"
)
FIXED = (
    '<bpmn:scriptTask id="score_deal" name="Score the deal">'
    "<bpmn:script>score = 1</bpmn:script></bpmn:scriptTask>\n  </bpmn:process>"
)


@pytest.fixture
def workspace(app: Flask, tmp_path: Path) -> tuple[Path, Path]:
    from webapp import db

    processes, forms = tmp_path / "processes", tmp_path / "forms"
    processes.mkdir()
    for name in SET:
        shutil.copy(PROCESSES / name, processes / name)
    shutil.copytree(FORMS, forms)
    app.config.update(PROCESSES_DIR=str(processes), FORMS_DIR=str(forms))
    with app.app_context():
        deploy_files(
            db.session,
            "admin",
            collect_files([processes]),
            load_form=folder_form_loader(forms),
            now=NOW,
            comment="first",
        )
        db.session.commit()
    return processes, forms


@pytest.fixture
def as_admin(
    client: FlaskClient, web_user: Callable[..., Any], sign_in: Any, workspace: Any
) -> str:
    web_user("ada", "admin")
    sign_in("ada")
    return csrf_token(client, "/designer/admin/")


def _lead_to_cash(workspace: tuple[Path, Path]) -> str:
    return (workspace[0] / "lead_to_cash.bpmn").read_text("utf-8")


def _edited(workspace: tuple[Path, Path], tail: str, *, rename: bool = False) -> str:
    text = _lead_to_cash(workspace).replace("  </bpmn:process>", "    " + tail, 1)
    if rename:
        text = text.replace('name="Qualify the lead"', 'name="Qualify the lead now"', 1)
    return text


def _count(app: Flask, model: Any, *where: Any) -> int:
    from webapp import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _versions(app: Flask, process_id: str) -> list[ProcessDefinition]:
    from webapp import db

    with app.app_context():
        rows = db.session.scalars(
            select(ProcessDefinition)
            .where(ProcessDefinition.process_id == process_id)
            .order_by(ProcessDefinition.version)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def _source(app: Flask, definition: ProcessDefinition) -> str:
    from webapp import db

    with app.app_context():
        deployment = db.session.get(Deployment, definition.deployment_id)
        assert deployment is not None
        return str(deployment.sources[definition.source_file])


def _deploy(client: FlaskClient, token: str, xml: str, comment: str) -> Any:
    return client.post(
        "/designer/admin/files/lead_to_cash.bpmn/deploy",
        data={"xml": xml, "comment": comment, "csrf_token": token},
        headers={"Accept": "application/json"},
    )


def test_designer_invalid_edit_shows_element_errors_and_changes_nothing(
    app, client, workspace, as_admin
):
    before = _lead_to_cash(workspace)
    deployments = _count(app, Deployment)
    broken = _edited(workspace, BROKEN)

    for action in ("save", "deploy"):
        response = client.post(
            f"/designer/admin/files/lead_to_cash.bpmn/{action}",
            data={"xml": broken, "comment": "try it", "csrf_token": as_admin},
        )
        assert response.status_code == 422
        body = response.get_json()
        errors = {
            (p["element_id"], p["message"]) for p in body["problems"] if p["severity"] == "error"
        }
        assert body["ok"] is False
        assert body["errors"] == 2
        assert any(eid == "score_deal" and "script" in msg for eid, msg in errors)
        assert (
            "ask_boss",
            "form file 'nope/missing.schema.json' does not exist",
        ) in errors
        assert all(p["file"] == "lead_to_cash.bpmn" for p in body["problems"])

    assert _lead_to_cash(workspace) == before
    assert _count(app, Deployment) == deployments
    assert len(_versions(app, "lead_to_cash")) == 1
    assert _count(app, DesignerAudit) == 0


def test_designer_check_reports_without_saving(app, client, workspace, as_admin):
    response = client.post(
        "/designer/admin/files/lead_to_cash.bpmn/check",
        data={"xml": _edited(workspace, BROKEN), "csrf_token": as_admin},
    )

    assert response.status_code == 200
    assert response.get_json()["errors"] == 2
    assert "score_deal" not in _lead_to_cash(workspace)


def test_designer_valid_edit_deploys_a_version_with_comment_and_writes_the_file(
    app, client, workspace, as_admin
):
    fixed = _edited(workspace, FIXED, rename=True)

    refused = _deploy(client, as_admin, fixed, "  ")
    assert refused.status_code == 422
    assert "say why you deploy this version" in refused.get_json()["fields"]["comment"]
    response = _deploy(client, as_admin, fixed, "score every deal")

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert "lead_to_cash v2" in body["message"]
    # The new task is not connected yet: the engine leaves it out, and the admin is told.
    assert [(p["element_id"], p["severity"]) for p in body["problems"]] == [
        ("score_deal", "warning")
    ]
    versions = _versions(app, "lead_to_cash")
    assert [v.version for v in versions] == [1, 2]
    assert _source(app, versions[1]) == fixed
    assert _lead_to_cash(workspace) == fixed
    # The processes that did not change keep their version.
    assert [v.version for v in _versions(app, "sales_pipeline_renewal")] == [1]
    assert _count(app, DesignerAudit, DesignerAudit.action == "deploy") == 1

    history = client.get("/designer/admin/processes/lead_to_cash").get_data(as_text=True)
    assert "score every deal" in history
    assert "ada" in history
    assert "first" in history
    assert "v2" in history


def test_designer_save_writes_a_valid_file_and_audits_it(app, client, workspace, as_admin):
    fixed = _edited(workspace, FIXED)

    response = client.post(
        "/designer/admin/files/lead_to_cash.bpmn/save",
        data={"xml": fixed, "csrf_token": as_admin},
    )

    assert response.status_code == 200
    assert response.get_json()["ok"] is True
    assert _lead_to_cash(workspace) == fixed
    assert len(_versions(app, "lead_to_cash")) == 1  # saved, not deployed
    index = client.get("/designer/admin/").get_data(as_text=True)
    assert "changed since the last deploy" in index
    assert "Saved a process file" in index


def test_designer_diff_of_two_versions_lists_the_changes(app, client, workspace, as_admin):
    renamed = _edited(workspace, FIXED, rename=True)
    assert _deploy(client, as_admin, renamed, "rename and score").status_code == 200
    v1, v2 = _versions(app, "lead_to_cash")

    page = client.get(f"/designer/admin/processes/lead_to_cash/diff?old={v1.id}&new={v2.id}")

    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Added (1)" in text
    assert "score_deal" in text
    assert "Changed" in text
    assert "Qualify the lead now" in text
    assert "Removed" not in text
    data = text.split('id="dz-view-data">', 1)[1].split("</script>", 1)[0]
    markers = json.loads(data)
    assert markers["added"] == ["score_deal"]
    assert markers["changed"] == ["qualify_lead"]


def test_designer_rollback_makes_the_old_version_the_newest(app, client, workspace, as_admin):
    assert _deploy(client, as_admin, _edited(workspace, FIXED, rename=True), "x").status_code == 200
    v1, _v2 = _versions(app, "lead_to_cash")

    refused = client.post(
        f"/designer/admin/versions/{v1.id}/rollback", data={"comment": "", "csrf_token": as_admin}
    )
    assert refused.status_code == 422
    response = client.post(
        f"/designer/admin/versions/{v1.id}/rollback",
        data={"comment": "scoring was wrong", "csrf_token": as_admin},
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert "lead_to_cash v3 has the content of v1" in response.get_data(as_text=True)
    first, _second, third = _versions(app, "lead_to_cash")
    assert third.spec_hash == first.spec_hash
    assert diff_bpmn(_source(app, first), _source(app, third)).is_empty
    assert "score_deal" not in _lead_to_cash(workspace)
    from webapp import db

    with app.app_context():
        deployment = db.session.get(Deployment, third.deployment_id)
        assert deployment is not None
        assert deployment.comment == "rollback to v1: scoring was wrong"
        assert deployment.deployed_by == "ada"


def test_designer_export_downloads_a_version_and_the_working_file(app, client, workspace, as_admin):
    (v1,) = _versions(app, "lead_to_cash")

    version = client.get(f"/designer/admin/versions/{v1.id}/export")
    working = client.get("/designer/admin/files/lead_to_cash.bpmn/export")

    assert version.status_code == 200
    assert 'filename="lead_to_cash_v1.bpmn"' in version.headers["Content-Disposition"]
    assert version.get_data(as_text=True) == _source(app, v1)
    assert working.get_data(as_text=True) == _lead_to_cash(workspace)


def test_designer_refuses_names_outside_the_folders(client, workspace, as_admin):
    assert client.get("/designer/admin/files/../README.md").status_code == 404
    assert client.get("/designer/admin/files/..%2Fpyproject.bpmn").status_code == 404
    assert client.get("/designer/admin/forms/../../pyproject.toml").status_code == 404


FORM = "lead_to_cash/qualify_lead.schema.json"


def test_designer_form_preview_renders_the_form(client, workspace, as_admin):
    schema = json.loads((workspace[1] / FORM).read_text("utf-8"))
    schema["properties"]["budget_note"] = {"type": "string", "title": "Budget note"}

    response = client.post(
        f"/designer/admin/forms/{FORM}/preview",
        data={"content": json.dumps(schema), "csrf_token": as_admin},
    )

    assert response.status_code == 200
    assert "Budget note" in response.get_data(as_text=True)


def test_designer_form_with_invalid_schema_is_refused(app, client, workspace, as_admin):
    before = (workspace[1] / FORM).read_text("utf-8")
    bad = json.dumps({"type": "object", "properties": {"amount": {"type": "money"}}})

    preview = client.post(
        f"/designer/admin/forms/{FORM}/preview", data={"content": bad, "csrf_token": as_admin}
    )
    save = client.post(
        f"/designer/admin/forms/{FORM}", data={"content": bad, "csrf_token": as_admin}
    )
    broken = client.post(
        f"/designer/admin/forms/{FORM}", data={"content": "{", "csrf_token": as_admin}
    )

    assert preview.status_code == 422
    assert "not a valid JSON Schema at properties/amount/type" in preview.get_data(as_text=True)
    assert save.status_code == 422
    assert "not a valid JSON Schema at properties/amount/type" in save.get_data(as_text=True)
    assert broken.status_code == 422
    assert "not valid JSON" in broken.get_data(as_text=True)
    assert (workspace[1] / FORM).read_text("utf-8") == before
    assert _count(app, DesignerAudit) == 0


def test_designer_form_save_writes_the_file(app, client, workspace, as_admin):
    schema = json.loads((workspace[1] / FORM).read_text("utf-8"))
    schema["title"] = "Qualify (edited)"
    text = json.dumps(schema, indent=2)

    response = client.post(
        f"/designer/admin/forms/{FORM}", data={"content": text, "csrf_token": as_admin}
    )

    assert response.status_code == 302
    assert (workspace[1] / FORM).read_text("utf-8") == text
    assert _count(app, DesignerAudit, DesignerAudit.action == "save_form") == 1


def test_designer_post_without_csrf_token_is_refused(client, workspace, as_admin):
    before = _lead_to_cash(workspace)

    response = client.post(
        "/designer/admin/files/lead_to_cash.bpmn/save", data={"xml": _edited(workspace, FIXED)}
    )

    assert response.status_code == 400
    assert _lead_to_cash(workspace) == before


# --- permission matrix: every route × every role; only admins get in -----------------------


def _routes(app: Flask) -> list[tuple[str, str, dict[str, str]]]:
    """Each designer admin route with a request that changes nothing even for an admin."""
    (v1,) = _versions(app, "lead_to_cash")
    files = "/designer/admin/files/lead_to_cash.bpmn"
    version = f"/designer/admin/versions/{v1.id}"
    return [
        ("GET", "/designer/admin/", {}),
        ("GET", files, {}),
        ("GET", f"{version}/edit", {}),
        ("POST", f"{files}/check", {"xml": ""}),
        ("POST", f"{files}/save", {"xml": ""}),
        ("POST", f"{files}/deploy", {"xml": "", "comment": "x"}),
        ("GET", "/designer/admin/processes/lead_to_cash", {}),
        ("GET", version, {}),
        ("GET", f"{version}/export", {}),
        ("GET", f"{files}/export", {}),
        ("GET", f"/designer/admin/processes/lead_to_cash/diff?old={v1.id}&new={v1.id}", {}),
        ("POST", f"{version}/rollback", {"comment": ""}),
        ("GET", "/designer/admin/forms/", {}),
        ("GET", f"/designer/admin/forms/{FORM}", {}),
        ("POST", f"/designer/admin/forms/{FORM}/preview", {"content": "{}"}),
        ("POST", f"/designer/admin/forms/{FORM}", {"content": "["}),
    ]


ADMIN_STATUS = {"check": 422, "save": 422, "deploy": 422, "rollback": 422}


def _admin_status(method: str, url: str) -> int:
    if method == "GET":
        return 200
    if url.endswith("/preview"):
        return 200
    tail = url.rsplit("/", 1)[-1]
    return ADMIN_STATUS.get(tail, 422)


def test_designer_matrix_lists_every_route(app, workspace):
    endpoints = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("designer.admin_")
    }
    assert len(endpoints) == len(_routes(app))


def test_designer_permission_matrix(app, web_user, workspace):
    before = _lead_to_cash(workspace)
    routes = _routes(app)

    for role in [None, *ROLES]:
        client = app.test_client()
        if role is not None:
            web_user(f"user_{role}", role)
            token = csrf_token(client)
            client.post(
                "/login",
                data={"username": f"user_{role}", "password": PASSWORD, "csrf_token": token},
            )
        token = csrf_token(client, "/" if role else "/login")
        for method, url, data in routes:
            if method == "GET":
                response = client.get(url)
            else:
                response = client.post(url, data={**data, "csrf_token": token})
            if role is None:
                assert response.status_code == 302, url
                assert "/login" in response.headers["Location"], url
            elif role == "admin":
                assert response.status_code == _admin_status(method, url), url
            else:
                assert response.status_code == 403, (role, url)
        nav = client.get("/").get_data(as_text=True)
        assert ('id="nav-designer-admin"' in nav) == (role == "admin"), role

    assert _lead_to_cash(workspace) == before
    assert len(_versions(app, "lead_to_cash")) == 1
    assert _count(app, DesignerAudit) == 0
