"""The rows one instance change writes, gathered while it runs and sent when it ends.

The ORM's unit of work costs more per change than the rows it writes: it sorts mappers, fetches
generated keys and compares attribute histories. An instance change always writes the same
kinds of rows, so they are collected as plain values (`ChangeRows`) and sent with statements
built once: on PostgreSQL as one statement (engine/writes_postgres.py), elsewhere one per
row. The session's copies are told the new values directly (`set_committed_value`), leaving
nothing for a later flush to write twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    bindparam,
    delete,
    insert,
    inspect,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from engine.change_rows import EVENT_FIELDS, INSTANCE_FIELDS, TASK_FIELDS, ChangeRows
from engine.db import table_of
from engine.driver import DriverStatement, driver_errors
from engine.models import (
    HumanTask,
    InstanceEvent,
    InstanceTaskState,
    InstanceTimer,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
)
from engine.writes_postgres import send_as_one

_INSTANCE = table_of(ProcessInstance)
_UPDATE_INSTANCE = DriverStatement(
    update(_INSTANCE)
    .where(
        _INSTANCE.c.id == bindparam("instance_id"),
        _INSTANCE.c.version == bindparam("match_version"),
    )
    .values({name: bindparam(name) for name in (*INSTANCE_FIELDS, "version")})
)
_TASKS = table_of(HumanTask)
_TIMERS = table_of(InstanceTimer)
_SUBSCRIPTIONS = table_of(MessageSubscription)
_STATES = table_of(InstanceTaskState)
_OF_INSTANCE: BindParameter[int] = bindparam("of_instance")
# One statement per kind of row, for databases without the single statement (SQLite).
_CLOSE_TASK = DriverStatement(
    update(_TASKS)
    .where(
        _TASKS.c.instance_id == _OF_INSTANCE,
        _TASKS.c.task_id == bindparam("of_task"),
        _TASKS.c.status == "open",
    )
    .values(
        status=bindparam("status"),
        completed_at=bindparam("completed_at"),
        completed_by=bindparam("completed_by"),
    )
)
_OPEN_TASK = DriverStatement(insert(_TASKS).returning(_TASKS.c.id))
_WAITING_TIMER = (
    _TIMERS.c.instance_id == _OF_INSTANCE,
    _TIMERS.c.task_id == bindparam("of_task"),
    _TIMERS.c.status == "waiting",
)
_END_TIMER = DriverStatement(update(_TIMERS).where(*_WAITING_TIMER).values(status="done"))
_MOVE_TIMER = DriverStatement(
    update(_TIMERS).where(*_WAITING_TIMER).values(fire_at=bindparam("fire_at"))
)
_NEW_TIMER = DriverStatement(insert(_TIMERS).inline())
_DROP_SUBSCRIPTION = DriverStatement(
    delete(_SUBSCRIPTIONS).where(
        _SUBSCRIPTIONS.c.instance_id == _OF_INSTANCE,
        _SUBSCRIPTIONS.c.task_id == bindparam("of_task"),
        _SUBSCRIPTIONS.c.message_name == bindparam("message_name"),
    )
)
_NEW_SUBSCRIPTION = DriverStatement(insert(_SUBSCRIPTIONS).inline())
_REMOVE_STATE = DriverStatement(
    delete(_STATES).where(
        _STATES.c.instance_id == _OF_INSTANCE, _STATES.c.task_id == bindparam("of_task")
    )
)
_UPSERT = sqlite_insert(_STATES).inline()
_SAVE_STATE = DriverStatement(
    _UPSERT.on_conflict_do_update(
        index_elements=["instance_id", "task_id"],
        set_={"body": _UPSERT.excluded.body, "workflow_key": _UPSERT.excluded.workflow_key},
    )
)
_NEW_EVENT = DriverStatement(insert(table_of(InstanceEvent)).inline())


def _send_each(
    connection: Connection, rows: ChangeRows, instance: dict[str, Any]
) -> tuple[int, list[int]]:
    """Write the rows one statement per row; return the instance rows changed and new ids."""
    of = {"of_instance": instance["instance_id"]}

    def each(statement: DriverStatement, values: Iterable[dict[str, Any]]) -> None:
        for value in values:
            statement.execute(connection, value)

    each(
        _CLOSE_TASK,
        (
            {**of, "of_task": r["task_id"], **{k: v for k, v in r.items() if k != "task_id"}}
            for r in rows.closed_tasks
        ),
    )
    ids = [
        _OPEN_TASK.execute(connection, {n: getattr(task, n) for n in TASK_FIELDS}).fetchall()[0][0]
        for task in rows.opened_tasks
    ]
    each(_END_TIMER, ({**of, "of_task": task_id} for task_id in rows.ended_timers))
    each(
        _MOVE_TIMER,
        ({**of, "of_task": r["task_id"], "fire_at": r["fire_at"]} for r in rows.moved_timers),
    )
    each(_NEW_TIMER, rows.new_timers)
    each(
        _DROP_SUBSCRIPTION,
        (
            {**of, "of_task": r["task_id"], "message_name": r["message_name"]}
            for r in rows.dropped_subscriptions
        ),
    )
    each(_NEW_SUBSCRIPTION, rows.new_subscriptions)
    each(_REMOVE_STATE, ({**of, "of_task": task_id} for task_id in rows.removed_states))
    each(_SAVE_STATE, ({"instance_id": instance["instance_id"], **row} for row in rows.states))
    each(_NEW_EVENT, rows.events)
    changed = _UPDATE_INSTANCE.execute(connection, instance).rowcount
    return changed, ids


_DEFINITION = table_of(ProcessDefinition)
# The columns a new instance is given; definition_id comes from the newest deployed version.
_STARTED_FIELDS = tuple(
    c.key for c in _INSTANCE.columns if c.key not in ("id", "definition_id", "version")
)
_START_NEWEST = DriverStatement(
    insert(_INSTANCE)
    .from_select(
        ["definition_id", "version", *_STARTED_FIELDS],
        select(
            _DEFINITION.c.id,
            literal(1),
            *(bindparam(f"new_{name}", type_=_INSTANCE.c[name].type) for name in _STARTED_FIELDS),
        )
        .where(_DEFINITION.c.process_id == bindparam("newest_of"))
        .order_by(_DEFINITION.c.version.desc())
        .limit(1),
    )
    .returning(
        _INSTANCE.c.id,
        _INSTANCE.c.definition_id,
        # Written out: SQLAlchemy renders RETURNING's columns unqualified and would not
        # correlate these subqueries with the inserted row.
        literal_column(
            "(SELECT chosen.version FROM process_definition AS chosen"
            " WHERE chosen.id = process_instance.definition_id)",
            type_=_DEFINITION.c.version.type,
        ),
        literal_column(
            "(SELECT chosen.spec_hash FROM process_definition AS chosen"
            " WHERE chosen.id = process_instance.definition_id)",
            type_=_DEFINITION.c.spec_hash.type,
        ),
    )
)


@dataclass(frozen=True)
class StartedRow:
    definition_id: int
    version: int
    spec_hash: str


def insert_instance_of_newest(session: Session, instance: ProcessInstance) -> StartedRow | None:
    """Insert a new instance of the newest version of its process, in one statement.

    Choosing the version and inserting the row together saves a round trip per start. Returns
    None, inserting nothing, when the process is not deployed. The object becomes the
    session's persistent copy of the row.
    """
    values = {f"new_{name}": getattr(instance, name) for name in _STARTED_FIELDS}
    connection = session.connection()
    with driver_errors(connection):
        rows = _START_NEWEST.execute(
            connection, {**values, "newest_of": instance.process_id}
        ).fetchall()
    row = rows[0] if rows else None
    if row is None:
        return None
    instance.id, instance.definition_id, instance.version = row[0], row[1], 1
    for name in _STARTED_FIELDS:
        # Unset columns would otherwise count as expired and be read back on first use.
        setattr(instance, name, values[f"new_{name}"])
    make_transient_to_detached(instance)
    session.add(instance)
    return StartedRow(row[1], row[2], row[3])


def send_change(session: Session, instance: ProcessInstance, rows: ChangeRows) -> None:
    """Send a change's rows, the history entries added so far, and the instance row, if its
    version is still the one read.

    Raises StaleDataError, as the ORM would, when another transaction changed the row.
    """
    _take_pending_events(session, rows)
    values: dict[str, Any] = {name: getattr(instance, name) for name in INSTANCE_FIELDS}
    version = instance.version
    values.update(instance_id=instance.id, match_version=version, version=version + 1)
    connection = session.connection()
    with driver_errors(connection):
        if connection.dialect.name == "postgresql":
            changed, ids = send_as_one(connection, rows, values)
        else:
            changed, ids = _send_each(connection, rows, values)
    if changed != 1:
        raise StaleDataError(f"expected 1 instance row to change, not {changed}")
    for task, task_id in zip(rows.opened_tasks, ids, strict=True):
        task.id = task_id
        make_transient_to_detached(task)
        session.add(task)
    for name in INSTANCE_FIELDS:
        set_committed_value(instance, name, values[name])
    set_committed_value(instance, "version", version + 1)
    state = inspect(instance)
    if not state.committed_state:
        # No other change is pending: the session may see the object as clean again, so that
        # the next flush need not compare its attributes only to find nothing to write.
        state._commit_all(state.dict, session.identity_map)


def _take_pending_events(session: Session, rows: ChangeRows) -> None:
    """Move the history entries added to the session so far into the change's rows.

    Entries keep the order they were added in, so ids follow the order of events.
    """
    for obj in list(session.new):
        if isinstance(obj, InstanceEvent):
            rows.events.append({name: getattr(obj, name) for name in EVENT_FIELDS})
            session.expunge(obj)
