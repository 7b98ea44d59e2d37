"""The rows a change sends at its end (one statement on PostgreSQL, one per row elsewhere)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from engine.actor import Actor
from engine.change_rows import ChangeRows
from engine.db import table_of
from engine.models import (
    HumanTask,
    InstanceEvent,
    InstanceTaskState,
    InstanceTimer,
    MessageSubscription,
    ProcessInstance,
)
from engine.runtime import log_event
from engine.writes import send_change
from tests.conftest import NOW

REP = Actor("rita", frozenset({"rep"}))
LATER = NOW + timedelta(hours=1)


def _event(instance_id: int, kind: str) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "at": NOW,
        "kind": kind,
        "actor": None,
        "bpmn_id": None,
        "task_id": None,
        "detail": {"kind": kind},
    }


def _timer(instance_id: int, task_id: str, fire_at) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "task_id": task_id,
        "bpmn_id": "wait",
        "fire_at": fire_at,
        "status": "waiting",
        "attempts": 0,
        "last_error": None,
        "created_at": NOW,
    }


def _subscription(instance_id: int, task_id: str, name: str) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "task_id": task_id,
        "bpmn_id": "catch",
        "message_name": name,
        "correlation_key": "deal-7",
        "created_at": NOW,
    }


def _new_task(instance: ProcessInstance, task_id: str) -> HumanTask:
    return HumanTask(
        instance_id=instance.id,
        task_id=task_id,
        process_id=instance.process_id,
        bpmn_id="review",
        title="审批报价 Review",
        lane="Managers",
        candidate_role="manager",
        candidate_team=None,
        candidate_user=None,
        assignee=None,
        status="open",
        form="review.schema.json",
        ui_form=None,
        instructions="Check the <b>discount</b>",
        properties={"max_days": "2"},
        subject_type="quote",
        subject_id=7,
        due_at=NOW + timedelta(days=2),
        created_at=NOW,
        completed_at=None,
        completed_by=None,
        draft=None,
    )


def test_every_kind_of_row_is_written_as_given(session, lead_instance):
    iid = lead_instance.id
    [open_task] = session.scalars(select(HumanTask).where(HumanTask.instance_id == iid))
    timers, subscriptions = table_of(InstanceTimer), table_of(MessageSubscription)
    session.execute(timers.insert(), [_timer(iid, "t-end", NOW), _timer(iid, "t-move", NOW)])
    session.execute(subscriptions.insert(), [_subscription(iid, "s-old", "quote_signed")])
    session.add(InstanceTaskState(instance_id=iid, task_id="gone", workflow_key="", body="{}"))
    session.flush()

    rows = ChangeRows(
        closed_tasks=[
            {
                "task_id": open_task.task_id,
                "status": "completed",
                "completed_at": LATER,
                "completed_by": "rita",
            }
        ],
        opened_tasks=[_new_task(lead_instance, "n-1"), _new_task(lead_instance, "n-2")],
        ended_timers=["t-end"],
        moved_timers=[{"task_id": "t-move", "fire_at": LATER + timedelta(days=1)}],
        new_timers=[_timer(iid, "t-new", LATER)],
        dropped_subscriptions=[{"task_id": "s-old", "message_name": "quote_signed"}],
        new_subscriptions=[_subscription(iid, "s-new", "payment_received")],
        removed_states=["gone"],
        states=[{"task_id": "kept", "workflow_key": "", "body": '{"state": 16}'}],
    )
    log_event(session, iid, LATER, "noted", "rita", detail={"客户": "华为"})
    version = lead_instance.version
    lead_instance.status, lead_instance.updated_at = "waiting", LATER
    send_change(session, lead_instance, rows)
    session.flush()
    session.expire_all()

    assert session.get(ProcessInstance, iid).version == version + 1
    assert session.get(ProcessInstance, iid).status == "waiting"
    closed = session.get(HumanTask, open_task.id)
    assert (closed.status, closed.completed_at, closed.completed_by) == ("completed", LATER, "rita")
    opened = rows.opened_tasks
    assert opened[0].id < opened[1].id  # ids follow the order the tasks were opened in
    stored = session.get(HumanTask, opened[0].id)
    assert (stored.task_id, stored.title, stored.properties) == (
        "n-1",
        "审批报价 Review",
        {"max_days": "2"},
    )
    assert stored.due_at == NOW + timedelta(days=2)
    assert {
        t.task_id: (t.status, t.fire_at)
        for t in session.scalars(
            select(InstanceTimer).where(
                InstanceTimer.instance_id == iid, InstanceTimer.task_id.like("t-%")
            )
        )
    } == {
        "t-end": ("done", NOW),
        "t-move": ("waiting", LATER + timedelta(days=1)),
        "t-new": ("waiting", LATER),
    }
    assert session.scalars(
        select(MessageSubscription.message_name).where(MessageSubscription.instance_id == iid)
    ).all() == ["payment_received"]
    states = dict(
        session.execute(
            select(InstanceTaskState.task_id, InstanceTaskState.body).where(
                InstanceTaskState.instance_id == iid
            )
        ).all()
    )
    assert "gone" not in states
    assert states["kept"] == '{"state": 16}'
    noted = session.scalars(
        select(InstanceEvent).where(InstanceEvent.instance_id == iid, InstanceEvent.kind == "noted")
    ).one()
    assert (noted.at, noted.detail) == (LATER, {"客户": "华为"})


def test_a_row_that_fails_raises_the_usual_error(session, lead_instance):
    rows = ChangeRows(events=[_event(987654, "orphan")])
    with pytest.raises(IntegrityError):
        send_change(session, lead_instance, rows)


def test_a_stale_instance_version_raises_stale_data(session, lead_instance):
    instances = table_of(ProcessInstance)
    session.execute(
        update(instances)
        .where(instances.c.id == lead_instance.id)
        .values(version=instances.c.version + 1)
    )
    with pytest.raises(StaleDataError, match="expected 1 instance row"):
        send_change(session, lead_instance, ChangeRows())


def test_history_entries_keep_the_order_they_were_added_in(session, lead_instance):
    for kind in ("first", "second", "third"):
        log_event(session, lead_instance.id, LATER, kind, None)
    send_change(session, lead_instance, ChangeRows())
    kinds = session.scalars(
        select(InstanceEvent.kind)
        .where(InstanceEvent.instance_id == lead_instance.id)
        .order_by(InstanceEvent.id)
    ).all()
    assert kinds[-3:] == ["first", "second", "third"]


def test_the_postgresql_statement_stays_short_enough_for_the_driver_to_keep():
    """psycopg keeps the converted text of statements up to 4 KB; a longer one is parsed anew
    on every change (about 0.4 ms each)."""
    from sqlalchemy.dialects import postgresql

    from engine.writes_postgres import _WRITE_CHANGE

    form = _WRITE_CHANGE.form(postgresql.psycopg.dialect(), frozenset())
    assert len(form.sql.encode()) <= 4096
