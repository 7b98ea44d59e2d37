"""The scheduler page: rules with last and next runs, failures, timers due, and "run now"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.directory.models import User
from crm.directory.services import actor_for
from engine.deploy import deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.models import HumanTask, InstanceTimer
from engine.repair import RepairLog
from rules.models import RuleRun
from rules.runner import RULES
from tests.conftest import FIXTURES, NOW
from tests.webapp.conftest import csrf_token
from tests.webapp.test_ops_actions import make_users

TIMED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  id="d" targetNamespace="t">
  <bpmn:process id="timed" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="cool_off" name="Cool off">
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="call_back" name="Call back"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="cool_off"/>
    <bpmn:sequenceFlow id="f2" sourceRef="cool_off" targetRef="call_back"/>
    <bpmn:sequenceFlow id="f3" sourceRef="call_back" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def scheduled(app):
    """ops olga, admin ada, rep rita; two runs of fire_timers, one failed recycle; a due timer."""
    from webapp import db

    make_users(app, ("olga", "ops"), ("ada", "admin"), ("rita", "rep"), ("mona", "manager"))
    with app.app_context():
        db.session.add_all(
            [
                RuleRun(
                    rule="fire_timers",
                    started_at=NOW - timedelta(minutes=10),
                    finished_at=NOW - timedelta(minutes=10) + timedelta(milliseconds=90),
                    rows=1,
                ),
                RuleRun(
                    rule="fire_timers",
                    started_at=NOW,
                    finished_at=NOW + timedelta(milliseconds=250),
                    rows=3,
                ),
                RuleRun(
                    rule="recycle_pools",
                    started_at=NOW,
                    finished_at=NOW,
                    rows=0,
                    error="ValueError: pool 7 has no target pool",
                ),
            ]
        )
        deploy_files(
            db.session,
            "admin",
            {"timed.bpmn": TIMED.encode()},
            load_form=folder_form_loader(FIXTURES / "forms"),
            now=NOW,
        )
        olga = actor_for(db.session.scalar(select(User).where(User.username == "olga")))
        instance = start_instance(db.session, olga, "timed", now=NOW, business_key="T-1").instance
        db.session.commit()
        return instance.id


def test_page_lists_rules_runs_failures_and_due_timers(client, sign_in, scheduled):
    sign_in("olga")
    page = client.get("/ops/scheduler")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for rule in RULES:
        assert f'data-rule="{rule}"' in text
    fire = text.split('data-rule="fire_timers"')[1].split("</tr>")[0]
    assert "250 ms" in fire
    assert ">3<" in fire
    assert "✓" in fire
    assert "5 seconds" in fire  # its interval
    recycle = text.split('data-rule="recycle_pools"')[1].split("</tr>")[0]
    assert "failed" in recycle
    assert "pool 7 has no target pool" in text.split('id="failures"')[1]
    never = text.split('data-rule="allocate_pools"')[1].split("</tr>")[0]
    assert "never" in never
    timers = text.split('id="timers"')[1].split('id="failures"')[0]
    assert f'href="/ops/instances/{scheduled}"' in timers
    assert "cool_off" in timers
    assert "T-1" in timers
    assert "1 overdue" in timers


def test_run_now_fires_due_timers_and_is_audited(app, client, sign_in, scheduled):
    from webapp import db

    sign_in("ada")
    token = csrf_token(client, "/ops/scheduler")
    response = client.post("/ops/scheduler/fire_timers/run", data={"csrf_token": token})
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "fire_timers ran: 1 rows changed." in page
    with app.app_context():
        timer = db.session.scalars(
            select(InstanceTimer).where(InstanceTimer.instance_id == scheduled)
        ).one()
        assert timer.status == "done"
        task = db.session.scalars(select(HumanTask).where(HumanTask.instance_id == scheduled)).one()
        assert task.bpmn_id == "call_back"
        [audit] = db.session.scalars(select(RepairLog)).all()
        assert (audit.actor, audit.action, audit.params) == (
            "ada",
            "run_rule",
            {"rule": "fire_timers"},
        )
        assert (
            db.session.scalar(
                select(RuleRun).where(RuleRun.rule == "fire_timers").order_by(RuleRun.id.desc())
            ).rows
            == 1
        )
    manual = page.split('id="manual-runs"')[1]
    assert "ada" in manual
    assert "fire_timers" in manual


def test_unknown_rule_is_404(client, sign_in, scheduled):
    sign_in("olga")
    token = csrf_token(client, "/ops/scheduler")
    assert (
        client.post("/ops/scheduler/no_such_rule/run", data={"csrf_token": token}).status_code
        == 404
    )


@pytest.mark.parametrize("who", ["rita", "mona"])
def test_reps_and_managers_may_not_see_or_run(app, client, sign_in, scheduled, who):
    from webapp import db

    sign_in(who)
    assert client.get("/ops/scheduler").status_code == 403
    assert "/ops/scheduler" not in client.get("/").get_data(as_text=True)
    token = csrf_token(client, "/")
    response = client.post("/ops/scheduler/fire_timers/run", data={"csrf_token": token})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.scalars(select(RepairLog)).all() == []
        assert (
            db.session.scalar(
                select(InstanceTimer.status).where(InstanceTimer.instance_id == scheduled)
            )
            == "waiting"
        )


def test_nav_link_for_ops(client, sign_in, scheduled):
    sign_in("olga")
    assert 'id="nav-scheduler"' in client.get("/").get_data(as_text=True)


def test_run_now_needs_csrf(client, sign_in, scheduled):
    sign_in("olga")
    assert client.post("/ops/scheduler/fire_timers/run").status_code == 400


def test_page_in_chinese(client, sign_in, scheduled):
    sign_in("olga")
    text = client.get("/ops/scheduler?lang=zh_CN").get_data(as_text=True)
    assert "到期的定时器" in text
    assert "立即运行" in text
