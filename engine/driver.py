"""Core statements compiled once and run on the database driver's own cursor.

An instance change sends the same dozen statements every time. Through SQLAlchemy's
execution machinery each costs about 80 µs of Python before the driver sees it (cache
lookup, parameter construction, result setup, events); on the driver's cursor it costs
about 20 µs. So the engine's hot statements are compiled once per database dialect and set
of parameter names, keep SQLAlchemy's type conversions (aware datetimes, JSON), and skip
the rest. Nothing here is seen by `before_cursor_execute` listeners.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from engine.db import Base


@dataclass(frozen=True)
class _Form:
    """One statement as the driver takes it: SQL text and how to turn values into parameters."""

    sql: str
    # Parameter names in placeholder order for positional drivers (SQLite); None for named.
    order: tuple[str, ...] | None
    processors: Mapping[str, Callable[[Any], Any]]
    # Values written into the statement itself (`status == "open"`), bound like the others.
    fixed: Mapping[str, Any]
    # Per returned column, what turns the driver's value into the column type's (or None).
    results: tuple[Callable[[Any], Any] | None, ...]

    def bind(self, values: Mapping[str, Any]) -> Any:
        processors = self.processors
        if self.fixed:
            values = {**self.fixed, **values}
        if self.order is not None:
            return tuple(
                processors[name](values[name]) if name in processors else values[name]
                for name in self.order
            )
        if not processors:
            return values
        bound = dict(values)
        for name, process in processors.items():
            if name in bound:
                bound[name] = process(bound[name])
        return bound


class DriverStatement:
    """A Core statement to run on the driver's cursor, compiled once per dialect and keys.

    Only plain statements qualify: no expanding IN lists (use one row per value), and no
    Python-side column defaults, which only SQLAlchemy's execution would fill in.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._forms: dict[tuple[str, frozenset[str]], _Form] = {}

    def form(self, dialect: Dialect, keys: frozenset[str]) -> _Form:
        found = self._forms.get((dialect.name, keys))
        if found is None:
            found = self._forms[(dialect.name, keys)] = self._compile(dialect, keys)
        return found

    def _compile(self, dialect: Dialect, keys: frozenset[str]) -> _Form:
        compiled = self.statement.compile(dialect=dialect, column_keys=sorted(keys))
        assert isinstance(compiled, SQLCompiler)
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError(f"{self.statement}: column defaults need SQLAlchemy's execution")
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError(f"{self.statement}: expanding IN lists cannot be precompiled")
        processors: dict[str, Callable[[Any], Any]] = {
            name: process  # type: ignore[misc]
            for name, process in compiled._bind_processors.items()
            if isinstance(name, str)
        }
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        fixed = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if name not in keys and not bind.required
        }
        results = tuple(
            column.type._cached_result_processor(dialect, None)
            for column in compiled._result_columns
        )
        return _Form(compiled.string, order, processors, fixed, results)

    def execute(self, connection: Connection, values: Mapping[str, Any], cursor: Any = None) -> Any:
        """Run with one set of values; return the driver's cursor (rows, rowcount)."""
        form = self.form(connection.dialect, frozenset(values))
        cursor = cursor if cursor is not None else connection.connection.cursor()
        cursor.execute(form.sql, form.bind(values))
        return cursor

    def fetch(self, connection: Connection, values: Mapping[str, Any]) -> Sequence[Any]:
        """Run with one set of values and return every row, typed as SQLAlchemy would."""
        form = self.form(connection.dialect, frozenset(values))
        cursor = connection.connection.cursor()
        cursor.execute(form.sql, form.bind(values))
        rows = cursor.fetchall()
        typed = [(i, process) for i, process in enumerate(form.results) if process is not None]
        if not typed:
            return rows
        found = []
        for row in rows:
            values_of_row = list(row)
            for i, process in typed:
                if values_of_row[i] is not None:
                    values_of_row[i] = process(values_of_row[i])
            found.append(values_of_row)
        return found

    def execute_many(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]], cursor: Any = None
    ) -> None:
        """Run once per row; every row must have the same keys."""
        form = self.form(connection.dialect, frozenset(rows[0]))
        cursor = cursor if cursor is not None else connection.connection.cursor()
        if len(rows) == 1:
            # The driver's executemany sets up more than one row is worth.
            cursor.execute(form.sql, form.bind(rows[0]))
        else:
            cursor.executemany(form.sql, [form.bind(row) for row in rows])


@contextmanager
def driver_errors(connection: Connection) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's (IntegrityError, OperationalError, …)."""
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi_error, dialect=connection.dialect) from exc


@contextmanager
def pipeline(connection: Connection) -> Iterator[None]:
    """Send what runs inside in one round trip where the driver can (psycopg), else as is."""
    if connection.dialect.name != "postgresql":
        yield
        return
    driver: Any = connection.connection.driver_connection
    with driver.pipeline():
        yield


def adopt(session: Session, model: type[Base], values: dict[str, Any]) -> Any:
    """Return the session's copy of a row read on the driver, as a query would give it.

    An object the session already holds for that key is refreshed in place, as with
    `populate_existing`; otherwise a new one is made persistent without a load. Columns not
    in `values` load on first use.
    """
    mapper = inspect(model)
    key = mapper.identity_key_from_primary_key(
        tuple(values[mapper.get_property_by_column(c).key] for c in mapper.primary_key)
    )
    held = session.identity_map.get(key)
    if held is not None:
        for name, value in values.items():
            set_committed_value(held, name, value)
        return held
    obj = mapper.class_manager.new_instance()
    # A new object has no history yet: its columns are written as if loaded, in one go.
    inspect(obj).dict.update(values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj


def columns_of(model: type[Base]) -> dict[str, Any]:
    """A model's loaded-by-default columns by attribute name, for a driver read to adopt."""
    # Deferred columns (a definition's spec) load when first used, as through the ORM.
    return {prop.key: prop.columns[0] for prop in inspect(model).column_attrs if not prop.deferred}


def adopt_row(
    session: Session, row: Sequence[Any], parts: Sequence[tuple[type[Base], dict[str, Any]]]
) -> list[Any]:
    """Adopt a row that holds several models' columns, in the order `parts` gives them."""
    values = iter(row)
    return [
        adopt(session, model, {key: next(values) for key in columns}) for model, columns in parts
    ]
