"""Who owns each pipeline and approval table, and the record of every design change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

PIPELINE = "pipeline"
APPROVAL_TABLE = "approval_table"
DESIGN_KINDS = (PIPELINE, APPROVAL_TABLE)


class DesignOwner(Base):
    """The team that owns a pipeline (`new_business`) or approval table (`quote_approval_chain`).

    Its manager, and the managers of the teams above it, may edit the design; admins set owners.
    """

    __tablename__ = "design_owner"
    __table_args__ = (UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(80))
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), index=True)
    set_by: Mapped[str | None] = mapped_column(String(80))
    set_at: Mapped[datetime]


class DesignChange(Base):
    """One saved edit of a pipeline or approval table: who, when, why, what, which deploy."""

    __tablename__ = "design_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(80), index=True)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployment.id"))
    process_version: Mapped[int | None]
    changed_by: Mapped[str] = mapped_column(String(80))
    changed_at: Mapped[datetime]
    comment: Mapped[str] = mapped_column(Text)
    # {"changes": ["added stage ...", ...]}: the human summary shown in the history.
    summary: Mapped[dict[str, Any]]
