"""Web fixtures: an app on the test database, a client, signed-in users; tables emptied after."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from crm.directory.models import User
from crm.directory.services import create_user
from engine.db import Base
from tests.conftest import NOW

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    from webapp import create_app, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "TESTING": True, "SECRET_KEY": "test"})
    # No app context stays pushed during requests: each request must get its own `g`.
    yield app
    with app.app_context():
        for table in reversed(Base.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def web_user(app: Flask) -> Callable[..., User]:
    from webapp import db

    def make(username: str, *roles: str, **extra: Any) -> User:
        with app.app_context():
            user = create_user(
                db.session,
                username,
                username.title(),
                roles or ("rep",),
                now=NOW,
                password_hash=generate_password_hash(PASSWORD),
                **extra,
            )
            db.session.commit()
            db.session.expunge(user)
        return user

    return make


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    match = _CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def sign_in(client: FlaskClient) -> Callable[[str], Any]:
    def run(username: str, password: str = PASSWORD) -> Any:
        token = csrf_token(client)
        return client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )

    return run
