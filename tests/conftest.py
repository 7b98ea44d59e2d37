"""Shared fixtures: every database test runs on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.db import Base, create_db_engine
from engine.deploy import DeployResult, collect_files, deploy_files, folder_form_loader
from tests.pgserver import start_postgres

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ROOT / "processes"
FORMS = ROOT / "forms"
FIXTURES = ROOT / "tests" / "engine" / "bpmn"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def migrate_to_head(url: str) -> None:
    """Create the schema the way production does: by running the Alembic migrations."""
    from flask_migrate import upgrade

    from webapp import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        upgrade()
        from webapp import db

        db.engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    server = start_postgres()
    if server is None:
        if os.environ.get("STAGECRAFT_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed; `make test` installs it")
        pytest.skip("PostgreSQL is not installed")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate_to_head(url)
    return url


@pytest.fixture(scope="session")
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test."""
    connection = db_engine.connect()
    outer = connection.begin()
    db_session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield db_session
    finally:
        db_session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def committing_engine(db_engine: Engine) -> Iterator[Engine]:
    """The engine for tests that need real commits (concurrency); tables are emptied after."""
    yield db_engine
    with db_engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))


@pytest.fixture
def admin() -> Actor:
    return Actor("admin", frozenset({"admin"}))


@pytest.fixture
def deploy(session: Session, admin: Actor) -> Callable[..., DeployResult]:
    """Deploy files or folders (names relative to processes/ or the fixture corpus)."""

    def run(*names: str, forms: Path = FORMS, now: datetime = NOW) -> DeployResult:
        paths = [Path(p) if Path(p).is_absolute() else _find(p) for p in names] or [PROCESSES]
        return deploy_files(
            session,
            admin.username,
            collect_files(paths),
            load_form=folder_form_loader(forms),
            now=now,
        )

    return run


def _find(name: str) -> Path:
    for base in (PROCESSES, FIXTURES, ROOT):
        if (base / name).exists():
            return base / name
    raise FileNotFoundError(name)
