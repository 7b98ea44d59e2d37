"""Forecast inputs people enter (commit, best case, manager adjustments), weekly snapshots, and
the funnel's daily roll-up of stage stays."""

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


class FunnelEntryDay(Base):
    """Stays that began on one day, grouped by what decides which of them count in a period.

    A stay counts as its deal's entry into a period's stage when the deal's previous entry into
    the stage (`prev_day`) lies before the period; the deal moved on in the period when its first
    stay that moved on from here (`moved_on_day`) began before the period's end. See
    docs/analytics.md, "How the funnel stays fast".
    """

    __tablename__ = "funnel_entry_day"
    # Unique, and the index a period reads: days first.
    __table_args__ = (UniqueConstraint("pipeline", "day", "stage", "prev_day", "moved_on_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(40))
    day: Mapped[date]  # UTC day the stay began
    prev_day: Mapped[date]  # of the deal's previous stay in this stage; NO_DAY_BEFORE if none
    moved_on_day: Mapped[date]  # NO_DAY_AFTER if no stay from this one on moved on
    stays: Mapped[int]
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))  # the deals' current amounts
    won: Mapped[int]  # stays of deals that are now won
    lost: Mapped[int]


class FunnelDwellDay(Base):
    """Stays that began on one day by their length rounded to a tenth of a day (`cell`).

    Open stays (no next move yet) have cell OPEN_CELL and `seconds` holds the sum of their
    start times' seconds after midnight, so their length up to any `now` can be added up.
    """

    __tablename__ = "funnel_dwell_day"
    __table_args__ = (UniqueConstraint("pipeline", "day", "stage", "cell"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str] = mapped_column(String(40))
    day: Mapped[date]
    cell: Mapped[int]
    stays: Mapped[int]
    seconds: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    # The shortest and longest closed stay, for a median between two cells; unknown
    # (lengths_known false) once a stay was taken out again (a move recorded out of order).
    shortest: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    longest: Mapped[Decimal | None] = mapped_column(Numeric(24, 6))
    lengths_known: Mapped[bool]


class FunnelDeal(Base):
    """What one deal has added to the funnel tables: the state they were computed from."""

    __tablename__ = "funnel_deal"

    opportunity_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    pipeline: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(10))
    last_move_id: Mapped[int]  # the newest stage_change row counted (0: none)
    left_out: Mapped[bool]  # moved into a stage outside the layout, see FunnelRollup


class FunnelRollup(Base):
    """Whether the funnel tables of a pipeline are usable, and for which stage layout."""

    __tablename__ = "funnel_rollup"

    pipeline: Mapped[str] = mapped_column(String(40), primary_key=True)
    stages: Mapped[str] = mapped_column(Text)  # the stage names in order, comma separated
    left_out_deals: Mapped[int]  # while any, the funnel reads the stage history instead
    built_at: Mapped[datetime]


class FunnelStaleDeal(Base):
    """A deal changed without its funnel share being refreshed (marked by PostgreSQL triggers
    on `opportunity` and `stage_change`); while any is marked, the funnel reads the history."""

    __tablename__ = "funnel_stale_deal"

    opportunity_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
