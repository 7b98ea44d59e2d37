"""The batch of writes a change sends at its end (one pipeline on PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from engine.db import table_of
from engine.driver import DriverStatement
from engine.models import InstanceEvent, ProcessInstance
from engine.writes import WriteBatch
from tests.conftest import NOW

EVENTS = table_of(InstanceEvent)
INSERT_EVENT = DriverStatement(insert(EVENTS).inline())


def _event(instance_id: int, kind: str) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "at": NOW,
        "kind": kind,
        "actor": None,
        "bpmn_id": None,
        "task_id": None,
        "detail": {},
    }


def test_a_statement_that_fails_in_the_batch_raises_the_usual_error(session):
    writes = WriteBatch()
    writes.execute(INSERT_EVENT, [_event(987654, "orphan")])
    with pytest.raises(IntegrityError):
        writes.send(session)
    assert writes.steps == []  # a failed batch is not sent again by the next change


def test_a_checked_statement_that_misses_its_row_raises_stale_data(session):
    instances = table_of(ProcessInstance)
    writes = WriteBatch()
    writes.execute_checked(
        DriverStatement(update(instances).where(instances.c.id == 987654).values(status="done")),
        {},
        rows=1,
    )
    with pytest.raises(StaleDataError, match="expected 1 row"):
        writes.send(session)


def test_statements_go_out_in_the_order_they_were_added(session, deploy):
    from engine.actor import Actor
    from engine.instances import start_instance

    deploy("lead_followup.bpmn")
    instance = start_instance(
        session, Actor("rita", frozenset({"rep"})), "lead_followup", now=NOW, data={"budget": 1}
    ).instance
    writes = WriteBatch()
    for kind in ("first", "second", "third"):
        writes.execute(INSERT_EVENT, [_event(instance.id, kind)])
    writes.send(session)
    kinds = session.scalars(
        select(InstanceEvent.kind)
        .where(InstanceEvent.instance_id == instance.id)
        .order_by(InstanceEvent.id)
    ).all()
    assert kinds[-3:] == ["first", "second", "third"]
