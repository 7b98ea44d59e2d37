"""A change's rows written to PostgreSQL in one statement.

Each kind of row arrives as one JSON array parameter, unpacked by `json_to_recordset` in a
data-modifying WITH clause of its own; PostgreSQL runs every such clause exactly once, all
within the one statement, and an empty array writes nothing. The text never changes, so the
driver prepares it once per connection and the server plans it once. Against a pipeline of a
statement per kind, this saves the driver's Python work per statement, which was the larger
part of a change's cost, and the server's per-statement overhead.

All clauses see the database as it was before the statement, which is why a change never
writes the same row twice (see ChangeRows); foreign keys are checked at its end.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import NullType

from engine.change_rows import EVENT_FIELDS, INSTANCE_FIELDS, TASK_FIELDS, ChangeRows
from engine.db import UTCDateTime, table_of
from engine.driver import DriverStatement
from engine.models import InstanceTimer, MessageSubscription, ProcessInstance

_DIALECT = postgresql.dialect()
_quote = _DIALECT.identifier_preparer.quote
_INSTANCE = table_of(ProcessInstance)
_TIMER_FIELDS = tuple(c.key for c in table_of(InstanceTimer).columns if c.key != "id")
_SUBSCRIPTION_FIELDS = tuple(c.key for c in table_of(MessageSubscription).columns if c.key != "id")


def _rows(param: str, table: str, ordinality: str = "") -> str:
    """The rows of one JSON array parameter as rows of `table`, named `r`."""
    return f"json_populate_recordset(NULL::{table}, CAST(:{param} AS json)){ordinality} AS r"


def _insert(param: str, table: str, names: tuple[str, ...], tail: str = "") -> str:
    """Insert the rows of a JSON array in its order, so that ids follow it."""
    columns = ", ".join(_quote(n) for n in names)
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns}"  # noqa: S608 - names from our schema
        f" FROM {_rows(param, table, ' WITH ORDINALITY')} ORDER BY ordinality{tail}"
    )


# Every name in it comes from the models, every value is a parameter. Kept within 4 KB, the
# longest statement the driver keeps converted (it would otherwise parse it on every use): so
# no casts on parameters, whose types the server takes from the columns they are compared with.
_SQL = " ".join(
    f"""
WITH closed AS (
    UPDATE human_task AS t SET status = r.status, completed_at = r.completed_at,
        completed_by = r.completed_by
    FROM {_rows("closed", "human_task")}
    WHERE t.instance_id = :instance_id AND t.task_id = r.task_id AND t.status = 'open'
), opened AS (
    {_insert("opened", "human_task", TASK_FIELDS, " RETURNING id, task_id")}
), timers_ended AS (
    UPDATE instance_timer AS t SET status = 'done' FROM {_rows("ended_timers", "instance_timer")}
    WHERE t.instance_id = :instance_id AND t.task_id = r.task_id AND t.status = 'waiting'
), timers_moved AS (
    UPDATE instance_timer AS t SET fire_at = r.fire_at
    FROM {_rows("moved_timers", "instance_timer")}
    WHERE t.instance_id = :instance_id AND t.task_id = r.task_id AND t.status = 'waiting'
), timers_new AS (
    {_insert("new_timers", "instance_timer", _TIMER_FIELDS)}
), subscriptions_dropped AS (
    DELETE FROM message_subscription AS s
    USING {_rows("dropped_subscriptions", "message_subscription")}
    WHERE s.instance_id = :instance_id AND s.task_id = r.task_id
        AND s.message_name = r.message_name
), subscriptions_new AS (
    {_insert("new_subscriptions", "message_subscription", _SUBSCRIPTION_FIELDS)}
), states_removed AS (
    DELETE FROM instance_task_state AS s USING {_rows("removed_states", "instance_task_state")}
    WHERE s.instance_id = :instance_id AND s.task_id = r.task_id
), states_saved AS (
    INSERT INTO instance_task_state (instance_id, task_id, workflow_key, body)
    SELECT :instance_id, r.task_id, r.workflow_key, r.body
    FROM {_rows("states", "instance_task_state")}
    ON CONFLICT (instance_id, task_id)
    DO UPDATE SET body = excluded.body, workflow_key = excluded.workflow_key
), events AS (
    {_insert("events", "instance_event", EVENT_FIELDS)}
), changed AS (
    UPDATE process_instance SET {", ".join(f"{_quote(n)} = :{n}" for n in INSTANCE_FIELDS)},
        version = :version
    WHERE id = :instance_id AND version = :match_version
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed),
    (SELECT json_agg(json_build_array(o.id, o.task_id)) FROM opened AS o)
""".split()  # noqa: S608
)
_ARRAYS = (
    "closed",
    "opened",
    "ended_timers",
    "moved_timers",
    "new_timers",
    "dropped_subscriptions",
    "new_subscriptions",
    "removed_states",
    "states",
    "events",
)
_WRITE_CHANGE = DriverStatement(
    text(_SQL).bindparams(
        *(bindparam(name, type_=NullType()) for name in (*_ARRAYS, *INSTANCE_FIELDS)),
        *(
            bindparam(name, type_=NullType())
            for name in ("instance_id", "version", "match_version")
        ),
    )
)
_TIMES = tuple(name for name in INSTANCE_FIELDS if isinstance(_INSTANCE.c[name].type, UTCDateTime))


def _utc(value: datetime | None) -> datetime | None:
    # As UTCDateTime does for the ORM.
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given; pass an aware UTC datetime")
    return value.astimezone(UTC)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value).isoformat()  # type: ignore[union-attr]
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def _array(rows: list[Any]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def send_as_one(
    connection: Connection, rows: ChangeRows, instance: dict[str, Any]
) -> tuple[int, list[int]]:
    """Write the rows and the instance update; return the instance rows changed and new ids."""
    opened = [{name: getattr(task, name) for name in TASK_FIELDS} for task in rows.opened_tasks]
    arrays = {
        "closed": rows.closed_tasks,
        "opened": opened,
        "ended_timers": [{"task_id": task_id} for task_id in rows.ended_timers],
        "moved_timers": rows.moved_timers,
        "new_timers": rows.new_timers,
        "dropped_subscriptions": rows.dropped_subscriptions,
        "new_subscriptions": rows.new_subscriptions,
        "removed_states": [{"task_id": task_id} for task_id in rows.removed_states],
        "states": rows.states,
        "events": rows.events,
    }
    values: dict[str, Any] = {name: _array(found) for name, found in arrays.items()}
    for name in _TIMES:
        values[name] = _utc(instance[name])
    [(changed, new_ids)] = _WRITE_CHANGE.fetch(connection, {**instance, **values})
    id_of = {task_id: row_id for row_id, task_id in new_ids or ()}
    return changed, [id_of[row["task_id"]] for row in opened]
