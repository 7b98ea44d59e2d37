"""The repair log: each bulk run and each manual rule run, with who, when and the results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.actor import Actor
from engine.db import Base
from engine.errors import NotFound
from engine.repair.common import require_repairer


class RepairLog(Base):
    """One bulk repair or manual rule run: who, when, what, and what happened to each instance."""

    __tablename__ = "repair_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]]
    # {"items": [BulkResult.as_dict(), ...]} for a bulk run; the rule run's figures otherwise.
    results: Mapped[dict[str, Any]]
    counts: Mapped[dict[str, Any]]


def record_repair(
    session: Session,
    actor: Actor,
    action: str,
    params: Mapping[str, Any],
    results: dict[str, Any],
    counts: dict[str, Any],
    *,
    now: datetime,
) -> RepairLog:
    """Keep a bulk run's report (or a manual rule run) for the audit trail and its download."""
    require_repairer(actor)
    entry = RepairLog(
        at=now,
        actor=actor.username,
        action=action,
        params=dict(params),
        results=results,
        counts=counts,
    )
    session.add(entry)
    session.flush()
    return entry


def get_repair_log(session: Session, actor: Actor, log_id: int) -> RepairLog:
    require_repairer(actor)
    entry = session.get(RepairLog, log_id)
    if entry is None:
        raise NotFound(f"repair report {log_id} does not exist")
    return entry
