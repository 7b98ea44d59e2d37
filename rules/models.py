"""A record of every rule run, for ops and for the scheduler page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base


class RuleRun(Base):
    __tablename__ = "rule_run"
    __table_args__ = (Index("ix_rule_run_rule_started", "rule", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    rows: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)


class Reminder(Base):
    """One reminder sent to one user: in-app at once, then by e-mail through the outbox.

    The unique key (kind, record, user, step) is what makes each reminder go out exactly once,
    however many schedulers run; `step` is the due date (or "" when a record has one due time).
    """

    __tablename__ = "reminder"
    __table_args__ = (
        UniqueConstraint("kind", "record_id", "user_id", "step"),
        Index("ix_reminder_email_status", "email_status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[int]
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(40), default="")
    # What the message says (names, dates, amounts), rendered in the user's language when sent.
    params: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    # pending, sent, skipped (opted out, no address, no server) or failed (after 3 attempts)
    email_status: Mapped[str] = mapped_column(String(10), default="pending")
    email_attempts: Mapped[int] = mapped_column(default=0)
    emailed_at: Mapped[datetime | None]
    email_error: Mapped[str | None] = mapped_column(Text)


class MailOptOut(Base):
    """A user who wants no reminder e-mails of one kind ("*": of any kind); in-app ones stay."""

    __tablename__ = "reminder_mail_opt_out"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
