"""Statements run on the driver's cursor: typed like SQLAlchemy's, and adopted by the session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select, update

from engine.actor import Actor
from engine.db import table_of
from engine.driver import DriverStatement
from engine.models import HumanTask, InstanceEvent, InstanceTimer, ProcessInstance
from engine.tasks import complete_task, lock_task
from tests.conftest import NOW

EVENTS = table_of(InstanceEvent)
REP = Actor("rita", frozenset({"rep"}))


def test_driver_statement_keeps_aware_times_and_json(session, lead_instance):
    at = datetime(2026, 11, 22, 17, 30, tzinfo=timezone(timedelta(hours=8)))  # Beijing time
    statement = DriverStatement(insert(EVENTS).inline())
    statement.execute(
        session.connection(),
        {
            "instance_id": lead_instance.id,
            "at": at,
            "kind": "note",
            "actor": "rita",
            "bpmn_id": None,
            "task_id": None,
            "detail": {"客户": "华为", "amount": 12.5},
        },
    )
    read = DriverStatement(
        select(EVENTS.c.at, EVENTS.c.detail).where(
            EVENTS.c.instance_id == bindparam("of"), EVENTS.c.kind == "note"
        )
    )
    [(stored_at, detail)] = read.fetch(session.connection(), {"of": lead_instance.id})
    assert stored_at == at
    assert stored_at.tzinfo is not None
    assert stored_at.utcoffset() == timedelta(0)
    assert detail == {"客户": "华为", "amount": 12.5}
    # The ORM reads the same row the same way.
    event = session.scalars(
        select(InstanceEvent).where(
            InstanceEvent.instance_id == lead_instance.id, InstanceEvent.kind == "note"
        )
    ).one()
    assert (event.at, event.detail) == (at.astimezone(UTC), detail)


def test_driver_statement_refuses_what_only_sqlalchemy_could_run(session):
    timers = table_of(InstanceTimer)
    expanding = DriverStatement(
        update(timers).where(timers.c.task_id.in_(bindparam("ids", expanding=True)))
    )
    with pytest.raises(ValueError, match="expanding IN"):
        expanding.execute(session.connection(), {"ids": ["a"], "status": "done"})
    # `attempts` has a Python-side default that SQLAlchemy's execution would fill in.
    defaulted = DriverStatement(insert(timers).inline())
    with pytest.raises(ValueError, match="column defaults"):
        defaulted.execute(session.connection(), {"instance_id": 1, "task_id": "t"})


def test_lock_task_refreshes_a_copy_the_session_already_holds(session, lead_instance):
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == lead_instance.id)).one()
    instances = table_of(ProcessInstance)
    # Someone else suspends the instance behind this session's back.
    session.execute(
        update(instances).where(instances.c.id == lead_instance.id).values(status="suspended")
    )
    assert lead_instance.status == "running"  # the session's copy is stale
    locked_task, locked = lock_task(session, task.id)
    assert locked is lead_instance
    assert locked_task is task
    assert lead_instance.status == "suspended"
    assert lead_instance.definition.process_id == "lead_followup"
    assert not session.dirty  # what was read counts as loaded, not as a change


def test_lock_task_gives_objects_that_load_and_change_like_queried_ones(session, lead_instance):
    task_id = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == lead_instance.id))
    session.expunge_all()
    task, locked = lock_task(session, task_id)
    assert task.instance_id == locked.id == lead_instance.id
    assert task.status == "open"
    assert task.created_at == NOW
    # The definition's spec is deferred: it loads when first used.
    assert locked.definition.spec_json.startswith("{")
    outcome = complete_task(session, REP, task_id, {"outcome": "not_interested"}, now=NOW)
    assert outcome.instance.status == "completed"
    session.flush()
    session.expire_all()
    assert session.get(HumanTask, task_id).completed_by == "rita"


def test_lock_instance_refreshes_a_held_copy_and_raises_for_a_missing_one(session, lead_instance):
    from engine.errors import NotFound
    from engine.runtime import lock_instance

    instances = table_of(ProcessInstance)
    session.execute(
        update(instances).where(instances.c.id == lead_instance.id).values(status="suspended")
    )
    assert lock_instance(session, lead_instance.id) is lead_instance
    assert lead_instance.status == "suspended"
    assert lead_instance.definition.version == 1
    with pytest.raises(NotFound, match="process instance 987654 does not exist"):
        lock_instance(session, 987654)
