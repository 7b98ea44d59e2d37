"""Saved filters: named searches a user keeps for a list page, visible only to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import SavedFilter, User
from crm.errors import NotFound, fields_error, msg

KINDS = ("customers", "opportunities", "orders", "tasks")
MAX_PER_KIND = 50


def list_saved_filters(session: Session, user: User, kind: str) -> list[SavedFilter]:
    return list(
        session.scalars(
            select(SavedFilter)
            .where(SavedFilter.user_id == user.id, SavedFilter.kind == kind)
            .order_by(SavedFilter.name)
        )
    )


def save_filter(
    session: Session, user: User, kind: str, name: str, params: dict[str, Any], *, now: datetime
) -> SavedFilter:
    """Keep a search under a name; saving under an existing name replaces it."""
    name = (name or "").strip()
    if kind not in KINDS:
        raise fields_error(kind=msg("must be one of %(items)s", items=", ".join(KINDS)))
    if not name:
        raise fields_error(filter_name="is required")
    if len(name) > 120:
        raise fields_error(filter_name="is longer than 120 characters")
    existing = session.scalar(
        select(SavedFilter).where(
            SavedFilter.user_id == user.id, SavedFilter.kind == kind, SavedFilter.name == name
        )
    )
    if existing is not None:
        existing.params, existing.created_at = params, now
        return existing
    if len(list_saved_filters(session, user, kind)) >= MAX_PER_KIND:
        raise fields_error(
            filter_name=msg(
                "you already keep %(MAX_PER_KIND)s filters here", MAX_PER_KIND=MAX_PER_KIND
            )
        )
    saved = SavedFilter(user_id=user.id, kind=kind, name=name, params=params, created_at=now)
    session.add(saved)
    session.flush()
    return saved


def get_saved_filter(session: Session, user: User, filter_id: int) -> SavedFilter:
    """Return one of the user's own filters; anyone else's looks like it does not exist."""
    saved = session.get(SavedFilter, filter_id)
    if saved is None or saved.user_id != user.id:
        raise NotFound(msg("saved filter %(id)s does not exist", id=filter_id))
    return saved


def delete_saved_filter(session: Session, user: User, filter_id: int) -> None:
    session.delete(get_saved_filter(session, user, filter_id))
    session.flush()
