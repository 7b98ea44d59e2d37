"""The rows one instance change writes, as a few prebuilt Core statements.

The ORM's unit of work costs more per change than the rows it writes: it sorts mappers, fetches
generated keys and compares attribute histories. An instance change always writes the same
kinds of rows, so the statements are built once and the session's copies are told the new
values directly (`set_committed_value`), leaving nothing for a later flush to write twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    bindparam,
    insert,
    inspect,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from engine.db import table_of
from engine.driver import DriverStatement, driver_errors, pipeline
from engine.models import InstanceEvent, ProcessDefinition, ProcessInstance

_INSTANCE = table_of(ProcessInstance)
_EVENT = table_of(InstanceEvent)

# What every change may alter on the instance row; anything else a caller changes is left to
# the ORM, which then checks the version this update wrote.
INSTANCE_FIELDS = (
    "status",
    "state",
    "serializer_version",
    "state_token",
    "next_timer_at",
    "updated_at",
    "ended_at",
)

_UPDATE_INSTANCE = DriverStatement(
    update(_INSTANCE)
    .where(
        _INSTANCE.c.id == bindparam("match_id"),
        _INSTANCE.c.version == bindparam("match_version"),
    )
    .values({name: bindparam(name) for name in (*INSTANCE_FIELDS, "version")})
)
# Inline: no primary key is read back, so the statement can go out in a pipeline.
_INSERT_EVENTS = DriverStatement(insert(_EVENT).inline())
_EVENT_FIELDS = ("instance_id", "at", "kind", "actor", "bpmn_id", "task_id", "detail")


class WriteBatch:
    """Statements whose rows nobody reads until the change is complete, held until then.

    On PostgreSQL they are sent in one pipeline: one round trip instead of one per statement.
    A statement may say how many rows it must change, which is checked once the batch is
    sent, or ask for the rows it returns (new ids), which are handed over then.
    """

    def __init__(self) -> None:
        self.steps: list[_Step] = []

    def execute(
        self, statement: DriverStatement, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> None:
        """Queue a statement, once per row when given a list."""
        self.steps.append(_Step(statement, params))

    def execute_checked(
        self, statement: DriverStatement, params: Mapping[str, Any], rows: int
    ) -> None:
        """Queue a statement that must change exactly `rows` rows."""
        self.steps.append(_Step(statement, params, rows=rows))

    def execute_returning(
        self,
        statement: DriverStatement,
        rows: Sequence[Mapping[str, Any]],
        receive: Callable[[list[Any]], None],
    ) -> None:
        """Queue a statement once per row; `receive` gets each row's first returned value."""
        self.steps.append(_Step(statement, rows, receive=receive))

    def send(self, session: Session) -> None:
        """Send the statements in order; raise StaleDataError if a checked one missed its rows."""
        connection = session.connection()
        steps, self.steps = self.steps, []
        shared = connection.connection.cursor()
        checked: list[tuple[Any, int]] = []
        returning: list[tuple[list[Any], Callable[[list[Any]], None]]] = []
        with driver_errors(connection), pipeline(connection):
            for step in steps:
                statement, params = step.statement, step.params
                if step.receive is not None:
                    assert not isinstance(params, Mapping)
                    cursors = [statement.execute(connection, row) for row in params]
                    returning.append((cursors, step.receive))
                elif step.rows is not None:
                    assert isinstance(params, Mapping)
                    checked.append((statement.execute(connection, params), step.rows))
                elif isinstance(params, Mapping):
                    statement.execute(connection, params, shared)
                elif params:
                    statement.execute_many(connection, params, shared)
        for cursor, rows in checked:
            if cursor.rowcount != rows:
                raise StaleDataError(f"expected {rows} row(s) to change, not {cursor.rowcount}")
        for cursors, receive in returning:
            receive([cursor.fetchall()[0][0] for cursor in cursors])


@dataclass(frozen=True)
class _Step:
    statement: DriverStatement
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    rows: int | None = None
    receive: Callable[[list[Any]], None] | None = None


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


def send_change(session: Session, instance: ProcessInstance, writes: WriteBatch) -> None:
    """Send a change's writes: the history entries added so far, what `writes` holds, and last
    the instance row, if its version is still the one read.

    Raises StaleDataError, as the ORM would, when another transaction changed the row.
    """
    _queue_pending_events(session, writes)
    values: dict[str, Any] = {name: getattr(instance, name) for name in INSTANCE_FIELDS}
    version = instance.version
    values.update(match_id=instance.id, match_version=version, version=version + 1)
    writes.execute_checked(_UPDATE_INSTANCE, values, rows=1)
    writes.send(session)
    for name in INSTANCE_FIELDS:
        set_committed_value(instance, name, values[name])
    set_committed_value(instance, "version", version + 1)
    state = inspect(instance)
    if not state.committed_state:
        # No other change is pending: the session may see the object as clean again, so that
        # the next flush need not compare its attributes only to find nothing to write.
        state._commit_all(state.dict, session.identity_map)


def _queue_pending_events(session: Session, writes: WriteBatch) -> None:
    """Queue the history entries added to the session so far as one insert.

    Entries go in the order they were added, so ids keep following the order of events.
    """
    events = [obj for obj in session.new if isinstance(obj, InstanceEvent)]
    if not events:
        return
    rows = [{name: getattr(event, name) for name in _EVENT_FIELDS} for event in events]
    for event in events:
        session.expunge(event)
    writes.execute(_INSERT_EVENTS, rows)
