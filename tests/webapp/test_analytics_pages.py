"""Analytics pages and API on the funnel test's fixed data set: the same hand-computed figures
on the page, in the CSV and through the API; data scopes; who may open what."""

from __future__ import annotations

import csv
import html as html_lib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import update
from werkzeug.security import generate_password_hash

from crm.directory.models import Team
from crm.directory.tokens import create_token
from tests.crm.test_analytics_funnel import NOW, build_funnel_data
from tests.webapp.conftest import PASSWORD, csrf_token

OCTOBER = "start=2026-10-01&end=2026-11-01"
FORECAST_NOW = datetime(2026, 11, 10, 9, tzinfo=UTC)


@pytest.fixture
def data(app, monkeypatch) -> Iterator[dict[str, Any]]:
    from webapp import db

    monkeypatch.setattr("webapp.analytics.pages.request_now", lambda: NOW)
    monkeypatch.setattr("webapp.api.analytics_routes.utcnow", lambda: NOW)
    with app.app_context():
        built = build_funnel_data(db.session, generate_password_hash(PASSWORD))
        ids = {
            "deals": built.deals,
            "north": built.north.id,
            "amy": built.rep_a.id,
            "ben": built.rep_b.id,
            "cai": built.rep_c.id,
        }
        db.session.commit()
    yield ids
    with app.app_context():
        # Teams and their managers refer to each other; untie them so the tables can be emptied.
        db.session.execute(update(Team).values(manager_id=None, parent_id=None))
        db.session.commit()


def signed_in(app, username: str):
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, username
    return client


def bearer(app, username: str) -> dict[str, str]:
    from crm.directory.services import user_by_username
    from webapp import db

    with app.app_context():
        _, text = create_token(db.session, user_by_username(db.session, username), "test", now=NOW)
        db.session.commit()
    return {"Authorization": f"Bearer {text}"}


def table_rows(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table {table_id}"
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    ]


EXPECTED_STAGES = [
    # stage, entered, amount, moved on, conversion, configured, observed, won, lost, stays,
    # average days, median days, max days (none: nothing deployed), stale
    ["Qualification", "5", "550,000", "4", "80", "10", "33.3", "1", "2", "5", "7.2", "2", "", "0"],
    ["Needs analysis", "4", "470,000", "3", "75", "20", "33.3", "1", "2", "5", "4.2", "4", "", "0"],
    ["Proposal", "4", "480,000", "3", "75", "50", "66.7", "2", "1", "5", "6.2", "4", "", "0"],
    ["Negotiation", "3", "280,000", "2", "66.7", "75", "66.7", "2", "1", "3", "3.3", "4", "", "0"],
    ["Closing", "2", "160,000", "2", "100", "90", "100", "2", "0", "2", "4", "4", "", "0"],
]


def test_analytics_funnel_page_csv_and_api_show_the_same_figures(app, data):
    director = signed_in(app, "dora")
    page = director.get(f"/analytics/funnel?{OCTOBER}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert table_rows(html, "table-stages") == EXPECTED_STAGES
    assert re.search(r'id="avg-deal-size">80,000<', html)
    assert re.search(r'id="win-rate">50 %<', html)
    assert re.search(r'id="cycle-won">21<', html)
    assert re.search(r'id="cycle-lost">11<', html)
    assert table_rows(html, "table-reasons") == [
        ["Won", "price", "1", "100,000"],
        ["Won", "relationship", "1", "60,000"],
        ["Lost", "budget", "1", "50,000"],
        ["Lost", "competitor", "1", "120,000"],
    ]
    charts = {
        name: json.loads(html_lib.unescape(config))
        for name, config in re.findall(r"id=\"chart-(\w+)\" data-chart='([^']*)'", html)
    }
    assert charts["funnel"]["data"]["datasets"][0]["data"] == [5, 4, 4, 3, 2]
    assert charts["dwell"]["data"]["datasets"][0]["data"] == [7.2, 4.2, 6.2, 3.3, 4.0]
    assert "chart.umd.min.js" in html

    download = director.get(f"/analytics/funnel?{OCTOBER}&format=csv&table=stages")
    assert download.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:5] == ["Stage", "Entered", "Amount", "Moved on", "Conversion %"]
    assert rows[1] == [
        "Qualification",
        "5",
        "550000.00",
        "4",
        "80.0",
        "10",
        "33.3",
        "1",
        "2",
        "5",
        "7.2",
        "2.0",
        "",
        "0",
    ]
    assert director.get(f"/analytics/funnel?{OCTOBER}&format=csv&table=nope").status_code == 404

    api = app.test_client().get(f"/api/v1/analytics/funnel?{OCTOBER}", headers=bearer(app, "dora"))
    assert api.status_code == 200
    body = api.get_json()
    first = body["stages"][0]
    assert (first["stage"], first["entered"], first["amount"], first["conversion"]) == (
        "qualification",
        5,
        "550000.00",
        "80.0",
    )
    assert [s["median_days"] for s in body["stages"]] == ["2.0", "4.0", "4.0", "4.0", "4.0"]
    assert (body["avg_deal_size"], body["won_amount"], body["win_rate"]) == (
        "80000.00",
        "160000.00",
        "50.0",
    )


def test_analytics_funnel_page_from_the_daily_rollup_shows_the_same_figures(app, data, monkeypatch):
    from crm.analytics import funnel as funnel_module
    from crm.analytics.rollup_build import rebuild_funnel_rollups
    from webapp import db

    with app.app_context():
        assert rebuild_funnel_rollups(db.session, NOW) == 2
        db.session.commit()
        postgres = db.session.get_bind().dialect.name == "postgresql"
    answered: list[bool] = []
    real = funnel_module.stage_entries_from_rollup

    def spy(*args: Any, **kwargs: Any) -> bool:
        answered.append(real(*args, **kwargs))
        return answered[-1]

    monkeypatch.setattr(funnel_module, "stage_entries_from_rollup", spy)
    director = signed_in(app, "dora")
    html = director.get(f"/analytics/funnel?{OCTOBER}").get_data(as_text=True)
    assert table_rows(html, "table-stages") == EXPECTED_STAGES
    api = app.test_client().get(f"/api/v1/analytics/funnel?{OCTOBER}", headers=bearer(app, "dora"))
    body = api.get_json()
    assert [s["median_days"] for s in body["stages"]] == ["2.0", "4.0", "4.0", "4.0", "4.0"]
    assert [s["avg_days"] for s in body["stages"]] == ["7.2", "4.2", "6.2", "3.3", "4.0"]
    # PostgreSQL reads the roll-up; SQLite keeps reading the history (its own rounding).
    assert answered == [postgres, postgres]
    # A manager's funnel (a set of owners) reads the history, deal by deal.
    manager = signed_in(app, "nina")
    html = manager.get(f"/analytics/funnel?{OCTOBER}").get_data(as_text=True)
    assert table_rows(html, "table-stages")[0][:3] == ["Qualification", "4", "430,000"]
    assert len(answered) == 2


def test_analytics_rep_sees_only_own_numbers(app, data):
    amy = signed_in(app, "amy")
    html = amy.get(f"/analytics/funnel?{OCTOBER}").get_data(as_text=True)
    assert table_rows(html, "table-stages")[0][:4] == ["Qualification", "2", "150,000", "2"]
    assert "Ben" not in html  # no other reps among the filter's choices
    assert amy.get(f"/analytics/funnel?{OCTOBER}&rep={data['ben']}").status_code == 403
    assert amy.get(f"/analytics/funnel?{OCTOBER}&team={data['north']}").status_code == 403
    headers = bearer(app, "amy")
    api = app.test_client()
    body = api.get(f"/api/v1/analytics/funnel?{OCTOBER}", headers=headers).get_json()
    assert (body["stages"][0]["entered"], body["stages"][0]["amount"]) == (2, "150000.00")
    refused = api.get(f"/api/v1/analytics/funnel?{OCTOBER}&rep={data['ben']}", headers=headers)
    assert refused.status_code == 403
    manager = signed_in(app, "nina")
    html = manager.get(f"/analytics/funnel?{OCTOBER}").get_data(as_text=True)
    assert table_rows(html, "table-stages")[0][:3] == ["Qualification", "4", "430,000"]


def test_analytics_forecast_commit_adjustment_and_targets_through_pages_and_api(
    app, data, monkeypatch
):
    monkeypatch.setattr("webapp.analytics.pages.request_now", lambda: FORECAST_NOW)
    monkeypatch.setattr("webapp.api.analytics_routes.utcnow", lambda: FORECAST_NOW)
    amy, nina, dora = signed_in(app, "amy"), signed_in(app, "nina"), signed_in(app, "dora")
    saved = amy.post(
        "/analytics/forecast/entry",
        data={
            "month": "2026-11",
            "commit": "90000",
            "best_case": "150000",
            "csrf_token": csrf_token(amy, "/analytics/forecast"),
        },
    )
    assert saved.status_code == 302
    ben_token = bearer(app, "ben")
    put = app.test_client().put(
        "/api/v1/analytics/forecast/entries",
        json={"month": "2026-11-01", "commit": "60000.00", "best_case": "100000.00"},
        headers=ben_token,
    )
    assert put.status_code == 200
    adjusted = nina.post(
        "/analytics/forecast/adjust",
        data={
            "rep": data["amy"],
            "month": "2026-11",
            "amount": "70000",
            "comment": "D3 slips",
            "csrf_token": csrf_token(nina, "/analytics/forecast"),
        },
    )
    assert adjusted.status_code == 302
    target = dora.post(
        "/analytics/targets",
        data={
            "metric": "sales",
            "period_kind": "month",
            "period_start": "2026-11-01",
            "scope_kind": "team",
            "scope_id": data["north"],
            "amount": "200000",
            "csrf_token": csrf_token(dora, "/analytics/targets"),
        },
    )
    assert target.status_code == 302

    html = nina.get("/analytics/forecast?month=2026-11&months=1").get_data(as_text=True)
    # Month, won, weighted, reps' commits, with the adjustment, best case, target, attainment.
    assert table_rows(html, "table-totals") == [
        ["2026-11", "0", "0", "150,000", "130,000", "250,000", "200,000", "0"]
    ]
    reps = {r[0]: r for r in table_rows(html, "table-reps")}
    assert reps["Amy"][5:9] == ["90,000", "150,000", "70,000", "D3 slips"]
    own = amy.get("/analytics/forecast?month=2026-11&months=1").get_data(as_text=True)
    assert [r[0] for r in table_rows(own, "table-reps")] == ["Amy"]
    api = (
        app.test_client()
        .get("/api/v1/analytics/forecast?month=2026-11&months=1", headers=bearer(app, "nina"))
        .get_json()
    )
    assert api["totals"][0]["adjusted_commit"] == "130000.00"
    assert api["totals"][0]["commit"] == "150000.00"

    listing = dora.get("/analytics/targets?year=2026").get_data(as_text=True)
    assert table_rows(listing, "table-targets")[0][1:7] == [
        "Sales",
        "Month",
        "Nov 1, 2026",
        "Team",
        "North",
        "200,000",
    ]
    csv_text = dora.get("/analytics/targets?year=2026&format=csv").get_data(as_text=True)
    assert "North,200000.00" in csv_text
    refused = nina.post(
        "/analytics/targets",
        data={
            "metric": "sales",
            "period_kind": "year",
            "period_start": "2026-01-01",
            "scope_kind": "company",
            "amount": "1",
            "csrf_token": csrf_token(nina, "/analytics/targets"),
        },
    )
    assert refused.status_code == 403
    attained = (
        app.test_client()
        .get(
            "/api/v1/analytics/attainment?scope_kind=team&scope_id="
            f"{data['north']}&metric=sales&period_kind=month&period_start=2026-11-01",
            headers=bearer(app, "dora"),
        )
        .get_json()
    )
    assert attained == {"target": "200000.00", "actual": "0.00", "ratio": "0.0000"}
    hidden = app.test_client().get(
        "/api/v1/analytics/attainment?scope_kind=team&scope_id="
        f"{data['north']}&metric=sales&period_kind=month&period_start=2026-11-01",
        headers=bearer(app, "cai"),
    )
    assert hidden.status_code == 403


ROUTES = [
    # method, path, {role: expected status}
    ("get", f"/analytics/funnel?{OCTOBER}", {"amy": 200, "nina": 200, "dora": 200, "fred": 403}),
    ("get", "/analytics/forecast", {"amy": 200, "nina": 200, "dora": 200, "fred": 403}),
    ("get", "/analytics/targets", {"amy": 200, "nina": 200, "dora": 200, "fred": 403}),
    ("get", "/analytics/dashboard", {"amy": 403, "nina": 200, "dora": 200, "fred": 403}),
    ("get", "/analytics/", {"amy": 302, "nina": 302, "dora": 302, "fred": 403}),
]


API_ROUTES = [
    (f"/api/v1/analytics/funnel?{OCTOBER}", {"amy": 200, "dora": 200, "fred": 403}),
    ("/api/v1/analytics/forecast", {"amy": 200, "dora": 200, "fred": 403}),
    ("/api/v1/analytics/accuracy", {"amy": 200, "dora": 200, "fred": 403}),
    ("/api/v1/analytics/targets", {"amy": 200, "dora": 200, "fred": 403}),
]


def test_analytics_permission_matrix(app, data):
    clients = {name: signed_in(app, name) for name in ("amy", "nina", "dora", "fred")}
    for method, path, expected in ROUTES:
        for username, status in expected.items():
            response = getattr(clients[username], method)(path)
            assert response.status_code == status, (username, path)
        anonymous = getattr(app.test_client(), method)(path)
        assert anonymous.status_code == 302, path
        assert "/login" in anonymous.headers["Location"]
    tokens = {name: bearer(app, name) for name in ("amy", "dora", "fred")}
    for path, expected in API_ROUTES:
        for username, status in expected.items():
            response = app.test_client().get(path, headers=tokens[username])
            assert response.status_code == status, (username, path)
        assert app.test_client().get(path).status_code == 401


def test_analytics_bad_filters_are_named(app, data):
    dora = signed_in(app, "dora")
    response = dora.get("/analytics/funnel?start=2026-13-01")
    assert response.status_code == 422
    assert "start" in response.get_data(as_text=True)
    api = app.test_client().get(
        "/api/v1/analytics/funnel?pipeline=nope", headers=bearer(app, "dora")
    )
    assert api.status_code == 422
    assert api.get_json()["fields"] == {"pipeline": ["must be one of new_business, renewal"]}
    assert dora.get(f"/analytics/funnel?team=99999&{OCTOBER}").status_code == 404
    _ = date  # the module's dates are built from strings above
