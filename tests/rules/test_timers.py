"""Firing BPMN timers: on time, once, and never twice when two schedulers run."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.actor import Actor
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.models import HumanTask, InstanceEvent
from engine.tasks import complete_task
from rules.models import RuleRun
from rules.runner import run_rule
from rules.timers import fire_due_timers
from tests.conftest import FORMS, NOW, PROCESSES

REP = Actor("rita", frozenset({"rep"}))


def _waiting_instance(session: Session) -> int:
    """A lead_followup instance waiting one day before calling again."""
    instance = start_instance(
        session, REP, "lead_followup", now=NOW, data={"lead_name": "Acme", "budget": 1}
    ).instance
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
    complete_task(session, REP, task.id, {"outcome": "no_answer"}, now=NOW)
    return instance.id


def test_timers_fire_when_due_and_only_once(session, deploy):
    deploy("lead_followup.bpmn")
    instance_id = _waiting_instance(session)
    assert fire_due_timers(session, NOW + timedelta(hours=23)) == 0
    assert fire_due_timers(session, NOW + timedelta(days=1)) == 1
    assert fire_due_timers(session, NOW + timedelta(days=1, seconds=5)) == 0
    open_titles = session.scalars(
        select(HumanTask.title).where(
            HumanTask.instance_id == instance_id, HumanTask.status == "open"
        )
    ).all()
    assert open_titles == ["Call the lead"]


def test_timers_two_schedulers_at_once_fire_each_timer_once(committing_engine):
    make_session = sessionmaker(bind=committing_engine, expire_on_commit=False)
    with make_session() as setup:
        deploy_files(
            setup,
            "admin",
            collect_files([PROCESSES / "lead_followup.bpmn"]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        ids = [_waiting_instance(setup) for _ in range(6)]
        setup.commit()
    barrier = threading.Barrier(2)
    due = NOW + timedelta(days=1)

    def scheduler() -> None:
        barrier.wait()
        run_rule(make_session, "fire_timers", due)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with make_session() as check:
        fired = check.scalars(
            select(InstanceEvent.instance_id).where(InstanceEvent.kind == "timer_fired")
        ).all()
        assert sorted(fired) == sorted(ids)
        runs = check.scalars(select(RuleRun).where(RuleRun.rule == "fire_timers")).all()
        assert len(runs) == 2
        assert all(run.error is None for run in runs)
        assert sum(run.rows for run in runs) == 6
        open_calls = check.scalar(
            select(func.count())
            .select_from(HumanTask)
            .where(HumanTask.status == "open", HumanTask.bpmn_id == "call_lead")
        )
        assert open_calls == 6
