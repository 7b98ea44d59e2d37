"""Two users completing the same task at once: exactly one wins, the other gets a Conflict."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.errors import Conflict
from engine.instances import start_instance
from engine.models import HumanTask, InstanceEvent, InstanceTimer, ProcessInstance
from engine.runtime import apply_change
from engine.tasks import complete_task
from tests.conftest import FORMS, NOW, PROCESSES

REPS = [Actor("rita", frozenset({"rep"})), Actor("rob", frozenset({"rep"}))]


def test_concurrent_completions_of_one_task_exactly_one_wins(committing_engine):
    with Session(committing_engine) as setup:
        deploy_files(
            setup,
            "admin",
            collect_files([PROCESSES / "lead_followup.bpmn"]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        instance = start_instance(
            setup, REPS[0], "lead_followup", now=NOW, data={"lead_name": "Acme", "budget": 1}
        ).instance
        task_id = setup.scalars(
            select(HumanTask.id).where(HumanTask.instance_id == instance.id)
        ).one()
        instance_id = instance.id
        setup.commit()

    barrier = threading.Barrier(2)
    results: list[str] = []
    outcomes = {0: "not_interested", 1: "interested"}

    def attempt(n: int) -> None:
        with Session(committing_engine) as session:
            barrier.wait()
            try:
                complete_task(session, REPS[n], task_id, {"outcome": outcomes[n]}, now=NOW)
                session.commit()
                results.append("won")
            except Conflict:
                session.rollback()
                results.append("conflict")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["conflict", "won"]

    with Session(committing_engine) as check:
        completions = check.scalars(
            select(InstanceEvent).where(
                InstanceEvent.instance_id == instance_id, InstanceEvent.kind == "task_completed"
            )
        ).all()
        assert len(completions) == 1
        task = check.get(HumanTask, task_id)
        assert task.status == "completed"
        assert task.completed_by == completions[0].actor


def test_a_change_made_from_a_stale_copy_is_refused_and_writes_nothing(committing_engine):
    """The version column catches what a missing row lock would let through."""
    with Session(committing_engine) as setup:
        deploy_files(
            setup,
            "admin",
            collect_files([PROCESSES / "lead_followup.bpmn"]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        instance_id = start_instance(
            setup, REPS[0], "lead_followup", now=NOW, data={"lead_name": "Acme", "budget": 1}
        ).instance.id
        setup.commit()

    with Session(committing_engine, expire_on_commit=False) as stale:
        # Read without the lock, as a careless caller would, and keep the copy.
        instance = stale.get(ProcessInstance, instance_id)
        read_version = instance.version
        stale.commit()
        with Session(committing_engine) as other:
            task_id = other.scalars(
                select(HumanTask.id).where(HumanTask.instance_id == instance_id)
            ).one()
            complete_task(other, REPS[0], task_id, {"outcome": "no_answer"}, now=NOW)
            other.commit()
        with pytest.raises(Conflict, match="changed by someone else"):
            apply_change(stale, instance, REPS[0], NOW, lambda workflow: None)
        stale.rollback()

    with Session(committing_engine) as check:
        saved = check.get(ProcessInstance, instance_id)
        assert saved.version == read_version + 1
        kinds = check.scalars(
            select(InstanceEvent.kind)
            .where(InstanceEvent.instance_id == instance_id)
            .order_by(InstanceEvent.id)
        ).all()
        assert kinds == ["started", "task_completed"]
        waiting = check.scalars(
            select(InstanceTimer.bpmn_id).where(
                InstanceTimer.instance_id == instance_id, InstanceTimer.status == "waiting"
            )
        ).all()
        assert waiting == ["wait_retry"]  # the wait the other change began is intact
