"""Forecast inputs people enter (commit, best case, manager adjustments) and weekly snapshots."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base


class ForecastEntry(Base):
    """A rep's own commit and best case for one close month."""

    __tablename__ = "forecast_entry"
    __table_args__ = (UniqueConstraint("user_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    month: Mapped[date]  # the first day of the close month
    commit_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    best_case_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime]


class ForecastAdjustment(Base):
    """A manager's number for a subordinate's month; it replaces the rep's commit in roll-ups."""

    __tablename__ = "forecast_adjustment"
    __table_args__ = (UniqueConstraint("user_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    month: Mapped[date]
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    comment: Mapped[str] = mapped_column(Text)
    adjusted_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    adjusted_at: Mapped[datetime]


class ForecastSnapshot(Base):
    """One rep's forecast for one close month as it stood in one week (for accuracy)."""

    __tablename__ = "forecast_snapshot"
    __table_args__ = (UniqueConstraint("week_start", "user_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    week_start: Mapped[date]  # the Monday of the week the snapshot was taken
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    month: Mapped[date] = mapped_column(index=True)  # accuracy reads the snapshots of a month
    weighted: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    commit_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    best_case_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    adjusted_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    taken_at: Mapped[datetime]
