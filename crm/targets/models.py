"""Targets: an amount of sales or collected cash for one scope and one period.

A target may name the target it was decomposed from (`parent_id`): a company year split into
territories, a team quarter split into its reps' months. The services check that the parts add up.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

METRICS = ("sales", "cash")  # won opportunity amount; collected receipts
PERIOD_KINDS = ("year", "quarter", "month")
SCOPE_KINDS = ("company", "territory", "team", "user")


class Target(Base):
    __tablename__ = "sales_target"
    __table_args__ = (
        UniqueConstraint("metric", "period_kind", "period_start", "scope_kind", "scope_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(8))
    period_kind: Mapped[str] = mapped_column(String(8))
    period_start: Mapped[date]
    scope_kind: Mapped[str] = mapped_column(String(10))
    # territory.id, team.id or app_user.id according to scope_kind; NULL for the company.
    scope_id: Mapped[int | None]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("sales_target.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    set_by: Mapped[str | None] = mapped_column(String(80))
    set_at: Mapped[datetime]
