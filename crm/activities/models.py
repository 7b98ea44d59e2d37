"""Activities (calls, visits, e-mails, notes), daily work reports and knowledge articles."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

ACTIVITY_KINDS = ("call", "visit", "email", "note")


class Activity(Base):
    __tablename__ = "activity"
    # The latest activity per customer, read from the index alone (pool recycling, timelines).
    __table_args__ = (Index("ix_activity_customer_happened", "customer_id", "happened_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("opportunity.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    happened_at: Mapped[datetime]
    next_followup_on: Mapped[date | None]


class DailyReport(Base):
    __tablename__ = "daily_report"
    __table_args__ = (UniqueConstraint("user_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    day: Mapped[date]
    summary: Mapped[str] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Article(Base):
    """A knowledge-base article (product sheets, objection handling, process how-tos)."""

    __tablename__ = "article"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[str | None] = mapped_column(String(255))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
