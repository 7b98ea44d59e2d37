"""The rows one instance change writes, as a few prebuilt Core statements.

The ORM's unit of work costs more per change than the rows it writes: it sorts mappers, fetches
generated keys and compares attribute histories. An instance change always writes the same
kinds of rows, so the statements are built once and the session's copies are told the new
values directly (`set_committed_value`), leaving nothing for a later flush to write twice.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Executable,
    bindparam,
    insert,
    inspect,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from engine.db import table_of
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

_UPDATE_INSTANCE = (
    update(_INSTANCE)
    .where(
        _INSTANCE.c.id == bindparam("match_id"),
        _INSTANCE.c.version == bindparam("match_version"),
    )
    .values({name: bindparam(name) for name in (*INSTANCE_FIELDS, "version")})
)
# Inline: no primary key is read back, so the statement can go out in a pipeline.
_INSERT_EVENTS = insert(_EVENT).inline()
_EVENT_FIELDS = ("instance_id", "at", "kind", "actor", "bpmn_id", "task_id", "detail")


class WriteBatch:
    """Statements whose rows nobody reads, held until the change is complete.

    On PostgreSQL they are sent in one pipeline: one round trip instead of one per statement.
    Nothing that reads rows may run inside it, so only these writes are batched; a statement
    may instead say how many rows it must change, which is checked once the batch is sent.
    """

    def __init__(self) -> None:
        self.steps: list[tuple[Executable, Any, int | None]] = []

    def execute(self, statement: Executable, params: Any = None) -> None:
        self.steps.append((statement, params, None))

    def execute_checked(self, statement: Executable, params: Any, rows: int) -> None:
        self.steps.append((statement, params, rows))

    def send(self, session: Session) -> None:
        """Send the statements in order; raise StaleDataError if a checked one missed its rows."""
        connection = session.connection()
        checked = []
        dbapi_error = connection.dialect.loaded_dbapi.Error
        try:
            with _pipeline(connection):
                for statement, params, rows in self.steps:
                    result = connection.execute(statement, params)
                    if rows is not None:
                        checked.append((result, rows))
        except dbapi_error as exc:
            # A statement that failed in the pipeline is reported when it ends, outside
            # SQLAlchemy: give callers the same exception (IntegrityError, …) as without one.
            raise DBAPIError.instance(
                None, None, exc, dbapi_error, dialect=connection.dialect
            ) from exc
        finally:
            self.steps.clear()
        for result, rows in checked:
            if _rowcount(result) != rows:
                raise StaleDataError(f"expected {rows} row(s) to change, not {_rowcount(result)}")


def _pipeline(connection: Connection) -> AbstractContextManager[Any]:
    if connection.dialect.name != "postgresql":
        return nullcontext()
    driver: Any = connection.connection.driver_connection
    return driver.pipeline()


def _rowcount(result: CursorResult[Any]) -> int:
    count = result.rowcount
    if count == -1:
        # In a pipeline the count arrives with the sync, after the result was set up; the
        # driver's cursor has it by then.
        count = result.context.cursor.rowcount
    return count


_DEFINITION = table_of(ProcessDefinition)
# The columns a new instance is given; definition_id comes from the newest deployed version.
_STARTED_FIELDS = tuple(
    c.key for c in _INSTANCE.columns if c.key not in ("id", "definition_id", "version")
)
_START_NEWEST = (
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
    row = (
        session.connection()
        .execute(_START_NEWEST, {**values, "newest_of": instance.process_id})
        .first()
    )
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
