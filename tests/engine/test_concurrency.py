"""Two users completing the same task at once: exactly one wins, the other gets a Conflict."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.errors import Conflict
from engine.instances import start_instance
from engine.models import HumanTask, InstanceEvent
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
