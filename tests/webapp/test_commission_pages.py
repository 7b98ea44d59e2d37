"""Commission and campaign pages, CSV and API on the fixed October data set: the figures shown
equal the hand-computed ones, and each person sees only what their role and scope allow."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from crm.commission.models import CommissionRun, CommissionStatement
from crm.commission.runs import start_run
from crm.directory.models import Team
from crm.directory.services import actor_for
from crm.directory.tokens import create_token
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.models import HumanTask
from engine.tasks import complete_task
from tests.conftest import FORMS, NOW, PROCESSES
from tests.crm.test_campaign_roi import build_campaign_world
from tests.crm.test_commission import OCTOBER, build_commission_world
from tests.webapp.conftest import PASSWORD

_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _open_task(db: Any, bpmn_id: str) -> HumanTask:
    return db.session.scalars(
        select(HumanTask).where(HumanTask.bpmn_id == bpmn_id, HumanTask.status == "open")
    ).one()


@pytest.fixture
def october(app: Flask) -> Iterator[Callable[[bool], dict[str, Any]]]:
    """October's run, in the managers' review or (`issue`) issued through the real process
    with north_rep2 adjusted by +40.00; then the campaigns (their deals close in October)."""
    from webapp import db

    def build(issue: bool) -> dict[str, Any]:
        with app.app_context():
            deploy_files(
                db.session,
                "adam",
                collect_files([PROCESSES / "commission_run.bpmn"]),
                load_form=folder_form_loader(Path(FORMS)),
                now=NOW,
            )
            built = build_commission_world(db.session, password_hash=_HASH)
            users = built["users"]
            run = start_run(db.session, users["fiona"], OCTOBER, now=NOW)

            def complete(username: str, bpmn_id: str, form: dict[str, Any]) -> None:
                task = _open_task(db, bpmn_id)
                complete_task(db.session, actor_for(users[username]), task.id, form, now=NOW)

            if issue:
                complete(
                    "north_manager",
                    "review_commission",
                    {
                        "review_decision": "approve",
                        "adjustments": [
                            {"rep": "north_rep2", "amount": "40.00", "comment": "shared"}
                        ],
                    },
                )
                complete("fiona", "approve_commission", {"finance_decision": "approve"})
            build_campaign_world(db.session, built)
            statements = {
                s.user_id: s.id
                for s in db.session.scalars(
                    select(CommissionStatement).where(CommissionStatement.run_id == run.id)
                )
            }
            ids = {name: u.id for name, u in users.items()}
            result = {
                "run_id": run.id,
                "users": ids,
                "statements": {n: statements[i] for n, i in ids.items() if i in statements},
            }
            db.session.commit()
        return result

    yield build
    with app.app_context():
        # Teams point at their managers: unlink them so the app fixture can empty app_user.
        db.session.execute(update(Team).values(manager_id=None))
        db.session.commit()


@pytest.fixture
def world(october: Callable[[bool], dict[str, Any]]) -> dict[str, Any]:
    return october(True)


@pytest.fixture
def as_user(app: Flask) -> Callable[[str], FlaskClient]:
    clients: dict[str, FlaskClient] = {}

    def client_for(username: str) -> FlaskClient:
        if username not in clients:
            client = app.test_client()
            token = _CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
            response = client.post(
                "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
            )
            assert response.status_code == 302
            clients[username] = client
        return clients[username]

    return client_for


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _cells(html: str, table_id: str) -> list[list[str]]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]
    return [c for c in cells if c]


def test_commission_run_page_shows_every_statement_to_finance(world, as_user):
    html = _text(as_user("fiona").get(f"/analytics/commission/runs/{world['run_id']}"))
    assert _cells(html, "commission-statements") == [
        [
            "North Rep1",
            "Cash plan",
            "Collected cash",
            "CN¥10,000.00",
            "CN¥12,000.00",
            "120",
            "1.1",
            "CN¥627.00",
        ],
        [
            "North Rep2",
            "Cash plan",
            "Collected cash",
            "CN¥5,000.00",
            "CN¥4,000.00",
            "80",
            "1",
            "CN¥200.00",
        ],
        [
            "South Rep1",
            "Sales plan",
            "Won sales",
            "CN¥20,000.00",
            "CN¥24,000.00",
            "120",
            "1",
            "CN¥500.00",
        ],
    ]
    assert 'id="run-total">CN¥1,327.00<' in html
    assert 'id="commission-chart-data"' in html
    assert "chart.umd.min.js" in html


def test_commission_statement_page_lists_the_lines_behind_the_total(world, as_user):
    rep = as_user("north_rep1")
    html = _text(rep.get(f"/analytics/commission/statements/{world['statements']['north_rep1']}"))
    lines = _cells(html, "statement-lines")
    assert [(row[0], row[2], row[4], row[5], row[6], row[7]) for row in lines] == [
        ("Receipt R1 · order SO-north_rep1", "CN¥5,000.00", "0-80%", "0.8", "1.1", "CN¥220.00"),
        ("Receipt R2 · order SO-north_rep1", "CN¥3,000.00", "0-80%", "0.8", "1.1", "CN¥132.00"),
        ("Receipt R2 · order SO-north_rep1", "CN¥1,000.00", "80-100%", "1", "1.1", "CN¥55.00"),
        ("Receipt R3 · order SO-north_rep1", "CN¥1,000.00", "80-100%", "1", "1.1", "CN¥55.00"),
        ("Receipt R3 · order SO-north_rep1", "CN¥2,000.00", "&gt;100%", "1.5", "1.1", "CN¥165.00"),
    ]
    assert 'id="statement-total">CN¥627.00<' in html


def test_commission_statement_csv_adds_up(world, as_user):
    response = as_user("north_manager").get(
        f"/analytics/commission/statements/{world['statements']['north_rep2']}/export.csv"
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = [r.split(",") for r in response.get_data(as_text=True).lstrip("\ufeff").split("\r\n")]
    assert rows[0][0] == "Kind"
    assert [(r[0], r[-3]) for r in rows[1:] if r != [""]] == [
        ("receipt", "13.33"),
        ("receipt", "146.67"),
        ("adjustment", "40.00"),
    ]


def test_commission_run_csv_and_runs_list(world, as_user):
    fiona = as_user("fiona")
    csv_text = _text(fiona.get(f"/analytics/commission/runs/{world['run_id']}/export.csv"))
    assert "North Rep1,Cash plan,cash,10000.00,12000.00,120.00,1.10,627.00,CNY" in csv_text
    listed = _text(fiona.get("/analytics/commission/runs/export.csv"))
    assert "2026-10,issued,3,1327.00," in listed


def test_commission_rep_sees_only_own_statement(world, as_user):
    rep = as_user("north_rep1")
    own = world["statements"]["north_rep1"]
    other = world["statements"]["north_rep2"]
    assert rep.get(f"/analytics/commission/statements/{own}").status_code == 200
    assert rep.get(f"/analytics/commission/statements/{other}").status_code == 404
    assert rep.get(f"/analytics/commission/statements/{other}/export.csv").status_code == 404
    html = _text(rep.get(f"/analytics/commission/runs/{world['run_id']}"))
    assert [row[0] for row in _cells(html, "commission-statements")] == ["North Rep1"]
    assert 'id="run-total">CN¥627.00<' in html
    south = as_user("south_manager")
    assert south.get(f"/analytics/commission/statements/{own}").status_code == 404


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (
            "/analytics/commission/runs",
            {"north_rep1", "north_manager", "fiona", "adam", "dora", "mark"},
        ),
        ("/analytics/commission/plans", {"fiona", "adam"}),
        ("/analytics/commission/plans/new", {"fiona", "adam"}),
        ("/analytics/commission/plans/export.csv", {"fiona", "adam"}),
        ("/analytics/commission/coefficients", {"north_manager", "adam", "dora"}),
        ("/analytics/campaigns", {"north_manager", "adam", "dora", "mark"}),
        ("/analytics/campaigns/export.csv", {"north_manager", "adam", "dora", "mark"}),
    ],
)
def test_commission_permission_matrix(world, as_user, path, allowed):
    for name in ("north_rep1", "north_manager", "fiona", "adam", "dora", "mark"):
        status = as_user(name).get(path).status_code
        assert status == (200 if name in allowed else 403), (name, status)


def test_commission_pages_need_sign_in(world, client):
    response = client.get("/analytics/commission/runs")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_commission_start_run_form_and_csrf(world, app, as_user):
    fiona = as_user("fiona")
    page = _text(fiona.get("/analytics/commission/runs"))
    token = _CSRF.search(page).group(1)
    assert fiona.post("/analytics/commission/runs", data={"month": "2026-09"}).status_code == 400
    refused = as_user("north_rep1")
    rep_token = _CSRF.search(_text(refused.get("/analytics/commission/runs")))
    assert rep_token is not None  # the rep's page has a token (sign-out form) but no start form
    assert "Start the month-end run" not in _text(refused.get("/analytics/commission/runs"))
    response = refused.post(
        "/analytics/commission/runs", data={"month": "2026-09", "csrf_token": rep_token.group(1)}
    )
    assert response.status_code == 403
    bad = fiona.post("/analytics/commission/runs", data={"month": "2026-13", "csrf_token": token})
    assert bad.status_code == 422
    assert "&#39;2026-13&#39; is not a month (YYYY-MM)" in _text(bad)
    started = fiona.post(
        "/analytics/commission/runs", data={"month": "2026-09", "csrf_token": token}
    )
    assert started.status_code == 302
    from webapp import db

    with app.app_context():
        months = db.session.scalars(
            select(CommissionRun.period_start).order_by(CommissionRun.period_start)
        ).all()
    assert months == [date(2026, 9, 1), OCTOBER]


def test_commission_plan_editor_saves_and_names_bad_fields(world, as_user):
    admin = as_user("adam")
    token = _CSRF.search(_text(admin.get("/analytics/commission/plans/new"))).group(1)
    form = {
        "csrf_token": token,
        "name": "Renewals",
        "basis": "sales",
        "base_rate": "3",
        "valid_from": "2026-11-01",
        "tiers": "0 1\n120 1.2",
        "teams": [],
    }
    bad = admin.post("/analytics/commission/plans/new", data=form | {"tiers": "50 1"})
    assert bad.status_code == 422
    assert "the first tier must start at 0 %" in _text(bad)
    saved = admin.post("/analytics/commission/plans/new", data=form)
    assert saved.status_code == 302
    listing = _text(admin.get("/analytics/commission/plans"))
    assert _cells(listing, "commission-plans")[1][:3] == ["Renewals", "Won sales", "3"]
    plan_url = re.search(r'href="(/analytics/commission/plans/\d+)">Renewals<', listing).group(1)
    edited = admin.post(plan_url, data=form | {"base_rate": "4", "cap": "800"})
    assert edited.status_code == 302
    history = _cells(_text(admin.get(plan_url)), "plan-history")
    assert [(row[1], row[2]) for row in history] == [
        ("adam", "base_rate: 0.0300 → 0.0400; cap: – → 800.00"),
        ("adam", "Created"),
    ]


def test_commission_coefficient_form(world, as_user):
    manager = as_user("north_manager")
    page = _text(manager.get("/analytics/commission/coefficients?month=2026-10"))
    assert [row[:3] for row in _cells(page, "commission-coefficients")] == [
        ["North Rep1", "1.1", "excellent customer feedback"],
        ["North Rep2", "1.00", ""],
    ]
    token = _CSRF.search(page).group(1)
    data = {"csrf_token": token, "month": "2026-11", "coefficient": "0.9", "reason": "late"}
    ok = manager.post(
        "/analytics/commission/coefficients", data=data | {"rep_id": world["users"]["north_rep2"]}
    )
    assert ok.status_code == 302
    refused = manager.post(
        "/analytics/commission/coefficients", data=data | {"rep_id": world["users"]["south_rep1"]}
    )
    assert refused.status_code == 403
    page = _text(manager.get("/analytics/commission/coefficients?month=2026-11"))
    assert _cells(page, "commission-coefficients")[1][:3] == ["North Rep2", "0.9", "late"]


def test_campaign_page_shows_the_hand_computed_figures(world, as_user):
    html = _text(as_user("mark").get("/analytics/campaigns"))
    assert _cells(html, "campaign-table")[0] == [
        "Expo 2026",
        "event",
        "CN¥10,000.00",
        "4",
        "2",
        "1",
        "50 %",
        "50 %",
        "25 %",
        "CN¥30,000.00",
        "CN¥12,000.00",
        "200 %",
    ]
    assert _cells(html, "channel-table")[-1][-1] == "153.33 %"  # the total row
    assert 'id="campaign-chart-data"' in html
    filtered = _text(as_user("mark").get("/analytics/campaigns?start=2026-10-01&channel=online"))
    assert [row[0] for row in _cells(filtered, "campaign-table")] == ["Newsletter", "Search ads Q4"]
    csv_text = _text(as_user("mark").get("/analytics/campaigns/export.csv"))
    assert "Search ads Q4,online,4000.00,3,1,1,33.33,100.00,33.33,3000.00,0,-25.00" in csv_text
    team = _text(as_user("north_manager").get("/analytics/campaigns"))
    assert _cells(team, "campaign-table")[0][:4] == ["Expo 2026", "event", "–", "2"]
    bad = as_user("mark").get("/analytics/campaigns?start=yesterday")
    assert bad.status_code == 422
    chinese = _text(as_user("mark").get("/analytics/campaigns?lang=zh_CN"))
    assert "<h1>市场活动投资回报</h1>" in chinese
    assert "投资回报率 %</th>" in chinese


@pytest.fixture
def api(app: Flask, world) -> Callable[[str], dict[str, str]]:
    from crm.directory.models import User
    from webapp import db

    def headers(username: str) -> dict[str, str]:
        with app.app_context():
            user = db.session.get(User, world["users"][username])
            _, text = create_token(db.session, user, "test", now=NOW)
            db.session.commit()
        return {"Authorization": f"Bearer {text}"}

    return headers


def test_commission_api_matches_the_pages(client, world, api):
    rep = api("north_rep1")
    own = client.get(
        f"/api/v1/commission/statements/{world['statements']['north_rep1']}", headers=rep
    ).get_json()
    assert (own["total"], own["attainment_pct"], own["coefficient"]) == ("627.00", "120.00", "1.10")
    assert [line["amount"] for line in own["lines"]] == [
        "220.00",
        "132.00",
        "55.00",
        "55.00",
        "165.00",
    ]
    other = client.get(
        f"/api/v1/commission/statements/{world['statements']['north_rep2']}", headers=rep
    )
    assert other.status_code == 404
    runs = client.get("/api/v1/commission/runs", headers=api("fiona")).get_json()
    assert [(r["month"], r["status"], r["total"]) for r in runs] == [
        ("2026-10", "issued", "1327.00")
    ]
    refused = client.post("/api/v1/commission/runs", json={"month": "2026-09"}, headers=rep)
    assert refused.status_code == 403
    roi = client.get("/api/v1/campaigns/roi?channel=online", headers=api("mark")).get_json()
    assert [(c["name"], c["roi_pct"]) for c in roi["campaigns"]] == [
        ("Newsletter", "-100.00"),
        ("Search ads Q4", "-25.00"),
    ]
    assert client.get("/api/v1/campaigns/roi", headers=rep).status_code == 403
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/commission/statements/{statement_id}" in spec["paths"]


def test_commission_review_through_the_inbox_form(app, october, as_user):
    from webapp import db

    world = october(False)
    with app.app_context():
        task_id = _open_task(db, "review_commission").id
    manager = as_user("north_manager")
    page = _text(manager.get(f"/tasks/{task_id}"))
    assert "3 statements, <strong>1287.00</strong> in total" in page
    token = _CSRF.search(page).group(1)
    form = {
        "csrf_token": token,
        "review_decision": "approve",
        "adjustments.0.__row__": "1",
        "adjustments.0.rep": "north_rep2",
        "adjustments.0.amount": "-10.50",
        "adjustments.0.comment": "returned goods",
    }
    assert manager.post(f"/tasks/{task_id}", data=form).status_code == 303
    statement = world["statements"]["north_rep2"]
    html = _text(as_user("fiona").get(f"/analytics/commission/statements/{statement}"))
    assert _cells(html, "statement-lines")[-1][-2:] == [
        "-CN¥10.50",
        "returned goods (north_manager)",
    ]
    assert 'id="statement-total">CN¥149.50<' in html  # 160.00 - 10.50
    run_page = _text(as_user("fiona").get(f"/analytics/commission/runs/{world['run_id']}"))
    assert "Awaiting finance approval" in run_page
    # Not issued yet: the rep does not see it.
    assert (
        as_user("north_rep2").get(f"/analytics/commission/statements/{statement}").status_code
        == 404
    )
