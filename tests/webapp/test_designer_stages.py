"""The stage and approval-table editors: pages, permissions, refusals, preview and save."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from werkzeug.security import generate_password_hash

from crm.directory.models import Team, User
from crm.directory.services import create_user
from crm.stage_design.models import DesignChange, DesignOwner
from engine.db import Base
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.models import Deployment, ProcessDefinition
from tests.conftest import FORMS, NOW, PROCESSES
from tests.webapp.conftest import PASSWORD, csrf_token

SHIPPED = (
    "invoice_request.bpmn",
    "lead_followup.bpmn",
    "lead_to_cash.bpmn",
    "payment_collection.bpmn",
    "quote_approval.bpmn",
    "quote_approval_chain.dmn",
    "quote_check.dmn",
    "quote_notify.bpmn",
    "quote_review.bpmn",
    "rep_handover.bpmn",
    "sales_pipeline_new_business.bpmn",
    "sales_pipeline_renewal.bpmn",
)
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
EDIT_NB = "/designer/stages/new_business"
EDIT_RENEWAL = "/designer/stages/renewal"
EDIT_CHAIN = "/designer/approvals/quote_approval_chain"


def _copy_shipped(target: Path) -> Path:
    target.mkdir()
    for name in SHIPPED:
        shutil.copy(PROCESSES / name, target / name)
    return target


def _start_app(db_url: str, folder: Path) -> Flask:
    """The app with its processes folder in a temporary copy, the shipped set deployed."""
    from webapp import create_app, db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "TESTING": True,
            "SECRET_KEY": "test",
            "PROCESSES_DIR": str(folder),
            "FORMS_DIR": str(FORMS),
        }
    )
    with app.app_context():
        deploy_files(
            db.session,
            "setup",
            collect_files([folder]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        _org(db.session)
        db.session.commit()
    return app


def _empty(app: Flask) -> None:
    from webapp import db

    with app.app_context():
        db.session.execute(update(Team).values(manager_id=None))
        db.session.execute(update(User).values(team_id=None))
        for table in reversed(Base.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _copy_shipped(tmp_path / "processes")


@pytest.fixture
def app(db_url: str, folder: Path) -> Iterator[Flask]:
    app = _start_app(db_url, folder)
    yield app
    _empty(app)


@pytest.fixture(scope="class")
def shared_app(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for a class of tests that change nothing (emptied when the class is done)."""
    app = _start_app(db_url, _copy_shipped(tmp_path_factory.mktemp("shared") / "processes"))
    yield app
    _empty(app)


def _org(session) -> None:
    """A director over two teams; new business owned by north, renewal by south, the approval
    table by the director's top team."""

    def user(name: str, *roles: str, team: Team | None = None) -> User:
        return create_user(
            session,
            name,
            name.title(),
            roles,
            now=NOW,
            password_hash=_HASH,
            team_id=team.id if team else None,
        )

    director = user("dora", "director")
    top = Team(name="Sales", manager_id=director.id)
    session.add(top)
    session.flush()
    director.team_id = top.id
    for key in ("north", "south"):
        manager = user(f"{key}_manager", "manager")
        team = Team(name=key.title(), parent_id=top.id, manager_id=manager.id)
        session.add(team)
        session.flush()
        manager.team_id = team.id
        user(f"{key}_rep", "rep", team=team)
    user("ada", "admin")
    user("otto", "ops")
    teams = {t.name: t.id for t in session.scalars(select(Team))}
    for kind, key, team in (
        ("pipeline", "new_business", "North"),
        ("pipeline", "renewal", "South"),
        ("approval_table", "quote_approval_chain", "Sales"),
    ):
        session.add(
            DesignOwner(kind=kind, key=key, team_id=teams[team], set_by="setup", set_at=NOW)
        )
    session.flush()


def _login(client, username: str) -> None:
    token = csrf_token(client)
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, f"{username} could not sign in"


def _form(client, path: str) -> dict[str, object]:
    """Return the editor's form fields as the browser would post them (checked boxes only)."""
    html = client.get(path).get_data(as_text=True)
    data: dict[str, object] = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        if not name:
            continue
        value = re.search(r'value="([^"]*)"', tag)
        text = _unescape(value.group(1)) if value else ""
        if 'type="checkbox"' in tag:
            if "checked" not in tag:
                continue
            previous = data.get(name.group(1))
            data[name.group(1)] = (
                [*previous, text]
                if isinstance(previous, list)
                else ([previous, text] if previous is not None else [text])
            )
        else:
            data[name.group(1)] = text
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        data[name] = _unescape(text)
    return data


def _unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", '"')
        .replace("&#39;", "'")
        .replace("&amp;", "&")
    )


def _deployments(app: Flask) -> int:
    from webapp import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Deployment)) or 0


def _latest(app: Flask, process_id: str) -> int:
    from webapp import db

    with app.app_context():
        return db.session.scalar(
            select(func.max(ProcessDefinition.version)).where(
                ProcessDefinition.process_id == process_id
            )
        )


# Who gets what: (user, method, path) -> status. Owners: north -> new business, south ->
# renewal, top team (dora) -> approval table and, being above both, the two pipelines.
MATRIX = [
    ("north_manager", "GET", EDIT_NB, 200),
    ("north_manager", "GET", EDIT_RENEWAL, 403),
    ("north_manager", "GET", EDIT_CHAIN, 403),
    ("south_manager", "GET", EDIT_NB, 403),
    ("south_manager", "GET", EDIT_RENEWAL, 200),
    ("dora", "GET", EDIT_NB, 200),
    ("dora", "GET", EDIT_RENEWAL, 200),
    ("dora", "GET", EDIT_CHAIN, 200),
    ("north_rep", "GET", EDIT_NB, 403),
    ("north_rep", "GET", EDIT_CHAIN, 403),
    ("north_rep", "GET", "/designer/stages/", 200),
    ("otto", "GET", EDIT_NB, 403),
    ("otto", "POST", EDIT_CHAIN, 403),
    ("ada", "GET", EDIT_NB, 200),
    ("ada", "GET", EDIT_RENEWAL, 200),
    ("ada", "GET", EDIT_CHAIN, 200),
    ("ada", "GET", "/designer/stages/unknown", 404),
    ("ada", "GET", "/designer/approvals/unknown", 404),
    ("north_manager", "POST", EDIT_RENEWAL, 403),
    ("north_rep", "POST", EDIT_NB, 403),
    ("north_manager", "POST", "/designer/stages/owners", 403),
    (None, "GET", EDIT_NB, 302),
    (None, "GET", "/designer/stages/", 302),
]


class TestDesignerStagesPermissions:
    """Every route of the stage designer for every kind of user."""

    @pytest.mark.parametrize(("username", "method", "path", "status"), MATRIX)
    def test_designer_stages_permission_matrix(self, shared_app, username, method, path, status):
        client = shared_app.test_client()
        if username:
            _login(client, username)
        if method == "GET":
            response = client.get(path)
        else:
            token = csrf_token(client, "/designer/stages/")
            response = client.post(
                path,
                data={
                    "csrf_token": token,
                    "action": "preview",
                    "kind": "pipeline",
                    "key": "new_business",
                    "team_id": "1",
                },
            )
        assert response.status_code == status
        if status == 302:
            assert "/login" in response.headers["Location"]


def test_designer_stages_index_lists_what_the_user_may_edit(app, client):
    _login(client, "north_manager")
    html = client.get("/designer/stages/").get_data(as_text=True)
    assert 'id="nav-stage-designer"' in html
    assert f'href="{EDIT_NB}"' in html
    assert f'href="{EDIT_RENEWAL}"' not in html
    assert "not yours to edit" in html


def test_designer_stages_nav_link_hidden_from_reps(app, client):
    _login(client, "north_rep")
    assert 'id="nav-stage-designer"' not in client.get("/designer/stages/").get_data(as_text=True)


def test_designer_stages_editor_shows_the_running_stages(app, client):
    _login(client, "north_manager")
    html = client.get(EDIT_NB).get_data(as_text=True)
    labels = re.findall(r'name="stages-\d+-label" value="([^"]+)"', html)
    assert labels == ["Qualification", "Needs analysis", "Proposal", "Negotiation", "Closing"]
    assert 'name="stages-3-win_rate" value="50"' in html
    assert "Version 1 runs now." in html


def test_designer_stages_row_buttons_add_move_and_remove_without_saving(app, client):
    _login(client, "north_manager")
    data = _form(client, EDIT_NB)
    before = _deployments(app)
    response = client.post(EDIT_NB, data={**data, "action": "up-2"}, headers={"HX-Request": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="stage-rows">')  # only the rows, for htmx
    labels = re.findall(r'name="stages-\d+-label" value="([^"]+)"', html)
    assert labels[:2] == ["Needs analysis", "Qualification"]
    html = client.post(EDIT_NB, data={**data, "action": "add-1"}).get_data(as_text=True)
    assert re.findall(r'name="stages-2-label" value="([^"]*)"', html) == [""]
    assert "new stage" in html
    html = client.post(EDIT_NB, data={**data, "action": "remove-5"}).get_data(as_text=True)
    assert 'name="stage_count" value="4"' in html
    assert _deployments(app) == before


def test_designer_stages_invalid_input_shows_field_errors_and_deploys_nothing(app, client, folder):
    _login(client, "north_manager")
    data = _form(client, EDIT_NB)
    before, content = _deployments(app), (folder / "sales_pipeline_new_business.bpmn").read_bytes()
    data.update(
        {
            "stages-2-win_rate": "150",
            "stages-3-label": "",
            "stages-4-max_days": "soon",
            "action": "save",
            "comment": "try",
        }
    )
    response = client.post(EDIT_NB, data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'data-error-for="stages-4-max_days"' in html
    data["stages-4-max_days"] = "14"
    response = client.post(EDIT_NB, data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "stage 2: the win rate must be from 0 to 100" in html
    assert 'data-error-for="stages-2-win_rate"' in html
    assert "stage 3: the name is required" in html
    assert _deployments(app) == before
    assert (folder / "sales_pipeline_new_business.bpmn").read_bytes() == content


def test_designer_stages_save_needs_a_comment(app, client):
    _login(client, "north_manager")
    data = _form(client, EDIT_NB)
    data.update({"stages-2-win_rate": "25", "action": "save", "comment": " "})
    before = _deployments(app)
    response = client.post(EDIT_NB, data=data)
    assert response.status_code == 422
    assert "say why you change it" in response.get_data(as_text=True)
    assert _deployments(app) == before


def test_designer_stages_csrf_refusal_changes_nothing(app, client, folder):
    _login(client, "north_manager")
    data = _form(client, EDIT_NB)
    data.pop("csrf_token")
    data.update({"stages-2-win_rate": "25", "action": "save", "comment": "raise it"})
    before = _deployments(app)
    response = client.post(EDIT_NB, data=data)
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)
    assert _deployments(app) == before


def test_designer_stages_preview_then_save_deploys_a_new_version(app, client, folder):
    _login(client, "north_manager")
    data = _form(client, EDIT_NB)
    html = client.post(EDIT_NB, data={**data, "action": "add-2"}).get_data(as_text=True)
    data = _form_from(html, data)
    data.update(
        {
            "stages-3-label": "Technical review",
            "stages-3-win_rate": "35",
            "stages-3-max_days": "10",
            "stages-3-criteria": ["decision_maker"],
            "stages-1-label": "Discovery",
        }
    )
    response = client.post(EDIT_NB, data={**data, "action": "preview"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "New stage Technical review." in html
    assert "Stage Qualification is renamed to Discovery." in html
    assert "0 open opportunities in this pipeline keep running" in html
    assert "Saving makes version 2." in html
    assert 'id="stage-diagram-data"' in html
    assert "technical_review" in html
    assert _latest(app, "sales_pipeline_new_business") == 1

    response = client.post(
        EDIT_NB, data={**data, "action": "save", "comment": "Technical review before proposal"}
    )
    assert response.status_code == 302
    page = client.get(EDIT_NB).get_data(as_text=True)
    assert "Saved: New business pipeline is now version 2." in page
    labels = re.findall(r'name="stages-\d+-label" value="([^"]+)"', page)
    assert labels[:4] == ["Discovery", "Needs analysis", "Technical review", "Proposal"]
    assert "key: qualification" in page
    assert "key: technical_review" in page
    assert "Technical review before proposal" in page  # the history
    assert _latest(app, "sales_pipeline_new_business") == 2
    assert _latest(app, "lead_to_cash") == 2
    assert b'name="Technical review"' in (folder / "sales_pipeline_new_business.bpmn").read_bytes()
    from webapp import db

    with app.app_context():
        deployment = db.session.scalars(
            select(Deployment).order_by(Deployment.id.desc()).limit(1)
        ).one()
        assert deployment.deployed_by == "north_manager"
        assert "added stage Technical review" in deployment.comment
        assert "renamed stage Qualification to Discovery" in deployment.comment
        change = db.session.scalars(select(DesignChange)).one()
        assert (change.changed_by, change.process_version) == ("north_manager", 2)


def _form_from(html: str, base: dict[str, object]) -> dict[str, object]:
    data = {k: v for k, v in base.items() if not k.startswith("stages-")}
    for name, value in re.findall(
        r'name="(stages-\d+-(?:key|label|win_rate|max_days))" value="([^"]*)"', html
    ):
        data[name] = _unescape(value)
    for tag in re.findall(
        r'<input type="checkbox" name="(stages-\d+-criteria)" value="([^"]+)" checked', html
    ):
        data.setdefault(tag[0], [])
        data[tag[0]].append(tag[1])  # type: ignore[union-attr]
    count = re.search(r'name="stage_count" value="(\d+)"', html)
    data["stage_count"] = count.group(1) if count else "0"
    return data


def test_approvals_invalid_entry_names_row_and_column_and_deploys_nothing(app, client, folder):
    _login(client, "dora")
    data = _form(client, EDIT_CHAIN)
    assert data["rows-1-discount"] == "<= 5"
    data.update(
        {
            "rows-2-discount": "<= five",
            "rows-5-payment_days": "in (30, 60)",
            "action": "save",
            "comment": "typo",
        }
    )
    before = _deployments(app)
    response = client.post(EDIT_CHAIN, data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "row 2, Discount (%): &#39;&lt;= five&#39; uses the unknown name &#39;five&#39;" in html
    assert 'data-error-for="rows-5-payment_days"' in html
    assert "row 5, Payment within (days)" in html
    assert _deployments(app) == before


def test_approvals_preview_and_save_keep_the_ids_and_deploy_with_quote_approval(
    app, client, folder
):
    _login(client, "dora")
    data = _form(client, EDIT_CHAIN)
    data.update({"rows-5-discount": "5 < ? <= 10", "rows-5-description": "Over 5 % up to 10 %"})
    html = client.post(EDIT_CHAIN, data={**data, "action": "preview"}).get_data(as_text=True)
    assert "0 quotes are waiting for approval" in html
    assert "No row matches these values" in html  # 10 < discount <= 15 is now uncovered
    response = client.post(EDIT_CHAIN, data={**data, "action": "save", "comment": "tighter"})
    assert response.status_code == 302
    assert _latest(app, "quote_approval") == 2
    text = (folder / "quote_approval_chain.dmn").read_text()
    assert '<rule id="Rule_manager">' in text
    assert "<description>Over 5 % up to 10 %</description>" in text
    assert "<text>5 &lt; ? &lt;= 10</text>" in text
    assert 'id="InputEntry_manager_discount"' in text


def test_designer_stages_pages_speak_chinese(app, client):
    _login(client, "dora")
    html = client.get(EDIT_NB + "?lang=zh_CN").get_data(as_text=True)
    assert "当前运行第 1 版。" in html
    assert "客户联系人中有决策者" in html  # an exit criterion
    html = client.get(EDIT_CHAIN + "?lang=zh_CN").get_data(as_text=True)
    assert "报价审批链" in html
    assert "折扣 (%)" in html


def test_designer_stages_preview_lists_open_deals_of_a_removed_stage(app, client):
    from crm.customers.services import create_customer
    from crm.sales.services import create_opportunity
    from webapp import db

    with app.app_context():
        for owner, name in (("north_rep", "Zinc deal"), ("south_rep", "Tin deal")):
            rep = db.session.scalars(select(User).where(User.username == owner)).one()
            customer = create_customer(db.session, rep, f"{name} Ltd", now=NOW, owner=rep)
            deal = create_opportunity(db.session, rep, customer.id, name, "1000", now=NOW)
            deal.stage = "negotiation"
        db.session.commit()
    _login(client, "north_manager")
    data = _form(client, EDIT_NB)
    html = client.post(EDIT_NB, data={**data, "action": "remove-4"}).get_data(as_text=True)
    data = _form_from(html, data)
    response = client.post(EDIT_NB, data={**data, "action": "preview"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Stage Negotiation is removed." in html
    assert "2 open opportunities in this pipeline keep running" in html
    assert re.search(r'data-stage="negotiation"><td>Negotiation</td><td>2</td>', html)
    assert "Open deals in removed or renamed stages (2)" in html
    assert "Zinc deal" in html
    assert "Tin deal" not in html  # south's deal is counted, not shown to the north manager
    assert "Others are outside your teams." in html
