"""Service messages of the designer, the stage designer and commission, on real pages in Chinese:
the reader sees the translated sentence with the values put back in, and English readers keep the
English one.

One app per module and database: the shipped processes deployed once, the stage designer's small
organisation (tests/webapp/test_designer_stages.py) and a September 2025 commission run. No test
here changes anything (each request is refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from crm.commission.models import CommissionRun
from engine.models import Deployment
from tests.conftest import NOW
from tests.webapp.test_designer_stages import (
    EDIT_CHAIN,
    EDIT_NB,
    _copy_shipped,
    _empty,
    _form,
    _login,
    _start_app,
)

ZH = "zh_CN"
SEPTEMBER = date(2025, 9, 1)


@pytest.fixture(scope="module")
def i18n_app(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from webapp import db

    app = _start_app(db_url, _copy_shipped(tmp_path_factory.mktemp("i18n") / "processes"))
    with app.app_context():
        db.session.add(
            CommissionRun(
                period_start=SEPTEMBER, status="in_review", started_by="ada", started_at=NOW
            )
        )
        db.session.commit()
    yield app
    _empty(app)


def _client(app: Flask, username: str, lang: str) -> FlaskClient:
    client = app.test_client()
    _login(client, username)
    client.get(f"/?lang={lang}")
    return client


def _text(response) -> str:
    return unescape(response.get_data(as_text=True))


def _deployments(app: Flask) -> int:
    from webapp import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Deployment)) or 0


# --- commission ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "expected", "absent"),
    [
        (ZH, "2025-09 的提成核算已存在", "exists already"),
        ("en", "the run for 2025-09 exists already", "已存在"),
    ],
)
def test_commission_conflicting_run_is_refused_in_the_readers_language(
    i18n_app, lang, expected, absent
):
    from webapp import db

    client = _client(i18n_app, "ada", lang)
    token = _form(client, "/analytics/commission/runs")["csrf_token"]
    response = client.post(
        "/analytics/commission/runs", data={"month": "2025-09", "csrf_token": token}
    )
    assert response.status_code == 409
    assert expected in _text(response)
    assert absent not in _text(response)
    with i18n_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CommissionRun)) == 1


def test_commission_unknown_run_and_bad_month_are_in_chinese(i18n_app):
    client = _client(i18n_app, "ada", ZH)
    missing = client.get("/analytics/commission/runs/987654")
    assert missing.status_code == 404
    assert "提成核算 987654 不存在" in _text(missing)
    token = _form(client, "/analytics/commission/runs")["csrf_token"]
    bad = client.post("/analytics/commission/runs", data={"month": "2025-13", "csrf_token": token})
    assert bad.status_code == 422
    assert "“2025-13”不是月份（YYYY-MM）" in _text(bad)


def test_commission_plan_field_errors_are_in_chinese(i18n_app):
    client = _client(i18n_app, "ada", ZH)
    form = _form(client, "/analytics/commission/plans/new")
    form.update(
        {
            "name": "Chinese plan",
            "basis": "weekly",
            "base_rate": "5",
            "valid_from": "2025-01-01",
            "cap": "",
            "tiers": "0 1\n80 x",
        }
    )
    response = client.post("/analytics/commission/plans/new", data=form)
    assert response.status_code == 422
    assert "请选择回款或赢单金额" in _text(response)
    form["basis"] = "cash"
    response = client.post("/analytics/commission/plans/new", data=form)
    assert response.status_code == 422
    assert "“x”不是数字" in _text(response)
    form["tiers"] = "0 1\n80"
    response = client.post("/analytics/commission/plans/new", data=form)
    assert response.status_code == 422
    assert "第 2 行：请写成“下限% 乘数”，例如“80 1.0”" in _text(response)


# --- designer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (ZH, "流程“no_such_process”没有已部署的版本"),
        ("en", "process 'no_such_process' has no deployed version"),
    ],
)
def test_designer_unknown_process_is_not_found_in_the_readers_language(i18n_app, lang, expected):
    client = _client(i18n_app, "ada", lang)
    response = client.get("/designer/admin/processes/no_such_process")
    assert response.status_code == 404
    assert expected in _text(response)


def test_designer_unknown_version_and_file_are_not_found_in_chinese(i18n_app):
    client = _client(i18n_app, "ada", ZH)
    version = client.get("/designer/admin/versions/987654")
    assert version.status_code == 404
    assert "流程版本 987654 不存在" in _text(version)
    missing = client.get("/designer/admin/files/missing.bpmn")
    assert missing.status_code == 404
    assert "“missing.bpmn”不存在" in _text(missing)
    outside = client.get("/designer/admin/files/notes.txt")
    assert outside.status_code == 404
    assert "“notes.txt”不是设计器可编辑的文件" in _text(outside)


def test_designer_refusal_for_a_manager_is_in_chinese(i18n_app):
    client = _client(i18n_app, "north_manager", ZH)
    response = client.get("/designer/admin/processes/lead_to_cash")
    assert response.status_code == 403
    assert "只有管理员可以编辑、部署或回滚流程和表单" in _text(response)


# --- stage design -------------------------------------------------------------------------------


def test_stage_design_errors_name_the_stage_and_field_in_chinese(i18n_app):
    client = _client(i18n_app, "north_manager", ZH)
    data = _form(client, EDIT_NB)
    data.update(
        {
            "stages-2-win_rate": "150",
            "stages-3-label": "",
            "stages-4-key": "won",
            "action": "save",
            "comment": "",
        }
    )
    before = _deployments(i18n_app)
    response = client.post(EDIT_NB, data=data)
    html = _text(response)
    assert response.status_code == 422
    assert "第 2 阶段：赢率必须在 0 到 100 之间" in html
    assert 'data-error-for="stages-2-win_rate"' in html
    assert "第 3 阶段：名称为必填项" in html
    assert "第 4 阶段：键“won”是保留键" in html
    assert "请说明修改原因（随新版本一起保存）" in html
    assert "the win rate must be" not in html
    assert _deployments(i18n_app) == before


def test_stage_design_approval_row_error_is_in_chinese(i18n_app):
    client = _client(i18n_app, "dora", ZH)
    data = _form(client, EDIT_CHAIN)
    data.update({"rows-2-discount": "<= five", "action": "save", "comment": "typo"})
    response = client.post(EDIT_CHAIN, data=data)
    html = _text(response)
    assert response.status_code == 422
    assert "第 2 行，Discount (%)：“<= five”使用了未知名称“five”；请使用数字和" in html
    assert 'data-error-for="rows-2-discount"' in html


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (ZH, "只有管理员和负责销售流程“renewal”的经理可以编辑它"),
        ("en", "only admins and the managers owning pipeline 'renewal' may edit it"),
    ],
)
def test_stage_design_refusal_names_the_pipeline_in_the_readers_language(i18n_app, lang, expected):
    client = _client(i18n_app, "north_manager", lang)
    response = client.get("/designer/stages/renewal")
    assert response.status_code == 403
    assert expected in _text(response)


def test_stage_design_unknown_approval_table_is_not_found_in_chinese(i18n_app):
    client = _client(i18n_app, "ada", ZH)
    response = client.get("/designer/approvals/unknown")
    assert response.status_code == 404
    assert "审批表“unknown”不存在" in _text(response)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        (ZH, ["新增阶段 Technical review", "Proposal：赢率 40 -> 45"]),
        ("en", ["added stage Technical review", "Proposal: win rate 40 -> 45"]),
    ],
)
def test_stage_design_history_sentences_follow_the_readers_language(i18n_app, lang, expected):
    from crm.stage_design.pipelines import describe_change
    from webapp.errors import translate

    changes = [
        {"kind": "added", "key": "technical_review", "label": "Technical review"},
        {"kind": "win_rate", "key": "proposal", "label": "Proposal", "old": 40, "new": 45},
    ]
    with i18n_app.test_request_context(f"/?lang={lang}"):
        assert [translate(describe_change(c)) for c in changes] == expected
