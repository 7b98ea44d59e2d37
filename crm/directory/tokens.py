"""Personal API tokens: shown once, stored as a hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import ApiToken, User
from crm.errors import Forbidden, fields_error

PREFIX = "sct_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, user: User, name: str, *, now: datetime) -> tuple[ApiToken, str]:
    """Create a token for the user; return the row and the token text (not stored anywhere)."""
    if not name.strip():
        raise fields_error(name="is required")
    text = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name.strip(), token_hash=_digest(text), created_at=now)
    session.add(token)
    session.flush()
    return token, text


def user_for_token(session: Session, text: str, *, now: datetime) -> User:
    """Return the active user a token belongs to, or raise Forbidden."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(text or "")))
    if token is None or token.revoked_at is not None:
        raise Forbidden("invalid or revoked API token")
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        raise Forbidden("the token's user is not active")
    token.last_used_at = now
    return user


def revoke_token(session: Session, user: User, token_id: int, *, now: datetime) -> None:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != user.id and "admin" not in user.roles):
        raise Forbidden("not your token")
    token.revoked_at = now
