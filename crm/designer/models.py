"""The audit trail of the designer: every save, deploy and rollback, by whom and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

# What a design change did; a deploy and a rollback also have their Deployment row.
ACTIONS = ("save_process", "deploy", "rollback", "save_form")


class DesignerAudit(Base):
    """One change an admin made through the designer."""

    __tablename__ = "designer_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(20))
    # The file changed: a name relative to processes/ or forms/.
    target: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployment.id"))
    # The content's SHA-256 before and after, and what else the reader should know.
    detail: Mapped[dict[str, Any]]
