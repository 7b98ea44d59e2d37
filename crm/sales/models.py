"""Opportunities and their stage history."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

PIPELINES = ("new_business", "renewal")


class Opportunity(Base):
    __tablename__ = "opportunity"
    __table_args__ = (
        # Analytics: the forecast reads open deals by close month and won deals by close time,
        # the funnel closed deals by close time and stale deals by stage (index-only on
        # PostgreSQL thanks to the included columns).
        Index(
            "ix_opportunity_status_expected_close",
            "status",
            "expected_close",
            postgresql_include=["owner_id", "amount", "win_rate_override", "stage_win_rate"],
        ),
        Index(
            "ix_opportunity_status_closed_at",
            "status",
            "closed_at",
            postgresql_include=["owner_id", "amount"],
        ),
        Index("ix_opportunity_status_stage_since", "status", "stage", "stage_since"),
        # The inbox's "On my customers" reads a user's records' ids from (owner_id, id) alone.
        Index("ix_opportunity_owner_id_id", "owner_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id"))
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    expected_close: Mapped[date | None]
    pipeline: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str | None] = mapped_column(String(40))
    stage_win_rate: Mapped[int] = mapped_column(default=0)
    # A rep's own estimate; stage moves never overwrite it.
    win_rate_override: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(10), default="open")
    close_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    stage_since: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    @property
    def win_rate(self) -> int:
        return self.win_rate_override if self.win_rate_override is not None else self.stage_win_rate


class StageChange(Base):
    """One move of an opportunity into a stage (the source of funnel and dwell-time figures)."""

    __tablename__ = "stage_change"
    # The funnel reads the history of a period, and each deal's first move after it
    # (index-only on PostgreSQL).
    __table_args__ = (
        Index(
            "ix_stage_change_changed_at",
            "changed_at",
            postgresql_include=["opportunity_id", "to_stage", "id"],
        ),
        Index(
            "ix_stage_change_opportunity_changed",
            "opportunity_id",
            "changed_at",
            "id",
            postgresql_include=["to_stage"],
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("opportunity.id", ondelete="CASCADE"), index=True
    )
    from_stage: Mapped[str | None] = mapped_column(String(40))
    to_stage: Mapped[str] = mapped_column(String(40))
    win_rate: Mapped[int]
    changed_at: Mapped[datetime]
    changed_by: Mapped[str | None] = mapped_column(String(80))
