"""Sign-in: password check with a limit on failed attempts per user and per address."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from crm.directory.models import LoginAttempt, User
from crm.errors import Forbidden, InvalidInput

WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5
MIN_PASSWORD = 8


class TooManyAttempts(Forbidden):
    """Sign-in is paused for this user or address after repeated failures."""


def authenticate(session: Session, username: str, password: str, *, ip: str, now: datetime) -> User:
    """Return the user whose password matches, or raise without telling which part was wrong."""
    username = (username or "").strip()
    failures = (
        session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(
                LoginAttempt.at > now - WINDOW,
                or_(LoginAttempt.username == username, LoginAttempt.ip == ip),
            )
        )
        or 0
    )
    if failures >= MAX_FAILURES:
        raise TooManyAttempts("too many failed sign-ins; wait 15 minutes and try again")
    user = session.scalar(select(User).where(User.username == username))
    if (
        user is None
        or not user.active
        or not user.password_hash
        or not check_password_hash(user.password_hash, password or "")
    ):
        session.add(LoginAttempt(username=username[:80], ip=ip[:64], at=now))
        raise InvalidInput("wrong username or password")
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
    return user


def set_password(user: User, password: str) -> None:
    """Store a new password as a salted hash; short passwords are refused."""
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(
            "password too short", {"password": [f"needs {MIN_PASSWORD} characters or more"]}
        )
    user.password_hash = generate_password_hash(password)
