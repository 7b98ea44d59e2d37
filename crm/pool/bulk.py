"""SQL for batches of thousands of rows: id lists as one parameter, rows in one statement."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, Table, any_, bindparam, cast, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session


def as_json(rows: list[dict[str, Any]]) -> str:
    """Serialize rows for jsonb_to_recordset (datetimes and dates as ISO 8601)."""

    def default(value: Any) -> str:
        if isinstance(value, datetime | date):
            return value.isoformat()
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

    return json.dumps(rows, default=default, ensure_ascii=False)


def recordset(table: Table, columns: list[str]) -> str:
    """Return `jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(col type, ...)` for `columns`."""
    types = ", ".join(
        f'"{name}" {table.c[name].type.compile(dialect=postgresql.dialect())}' for name in columns
    )
    return f"jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({types})"


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) in the session's transaction.

    PostgreSQL gets them as one JSON document unpacked by jsonb_to_recordset: one statement
    and one parameter however many rows; other databases get an executemany.
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    session.execute(
        text(
            f'INSERT INTO "{table.name}" ({names}) '  # noqa: S608 - names from our own schema
            f"SELECT {names} FROM {recordset(table, columns)}"
        ),
        {"rows": as_json(rows)},
    )


def among(session: Session, column: Any, ids: list[int]) -> ColumnElement[bool]:
    """Return `column IN ids`; one array parameter on PostgreSQL, however many ids.

    The array goes as one text parameter the server parses: psycopg would adapt each id in
    Python.
    """
    if session.get_bind().dialect.name == "postgresql":
        text_ids = bindparam(None, "{" + ",".join(map(str, ids)) + "}", type_=String)
        return column == any_(cast(text_ids, postgresql.ARRAY(Integer)))
    return column.in_(ids)
