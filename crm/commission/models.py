"""Commission plans (rules as data), per-rep coefficients, month-end runs and statements.

A plan pays `base_rate` on a base (collected cash or won sales) with multipliers by attainment
band (`CommissionTier`); a rep's performance coefficient for the month multiplies the result.
A run computes one statement per rep; each statement keeps the lines behind its total.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base

BASES = ("cash", "sales")  # receipts collected in the month; opportunities won in the month
RUN_STATUSES = ("calculating", "in_review", "awaiting_finance", "issued")
LINE_KINDS = ("receipt", "deal", "adjustment", "cap")


class CommissionPlan(Base):
    __tablename__ = "commission_plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    basis: Mapped[str] = mapped_column(String(8))
    base_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4))  # 0.0500 = 5 %
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]  # inclusive; None = open-ended
    cap: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))  # most a rep earns in a month
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime]

    tiers: Mapped[list[CommissionTier]] = relationship(
        order_by="CommissionTier.lower_pct", lazy="selectin", cascade="all, delete-orphan"
    )
    members: Mapped[list[CommissionPlanMember]] = relationship(
        lazy="selectin", cascade="all, delete-orphan"
    )


class CommissionTier(Base):
    """From `lower_pct` % attainment up to the next tier's, the base earns `multiplier` x rate."""

    __tablename__ = "commission_tier"
    __table_args__ = (UniqueConstraint("plan_id", "lower_pct"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("commission_plan.id", ondelete="CASCADE"))
    lower_pct: Mapped[Decimal] = mapped_column(Numeric(7, 2))
    multiplier: Mapped[Decimal] = mapped_column(Numeric(6, 3))


class CommissionPlanMember(Base):
    """A plan applies to one rep (`user_id`) or to every rep of a team subtree (`team_id`)."""

    __tablename__ = "commission_plan_member"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("commission_plan.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))


class CommissionCoefficient(Base):
    """A rep's performance coefficient for one month, set by their manager with a reason."""

    __tablename__ = "commission_coefficient"
    __table_args__ = (UniqueConstraint("user_id", "period_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    period_start: Mapped[date]
    coefficient: Mapped[Decimal] = mapped_column(Numeric(4, 2))
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(80))
    set_at: Mapped[datetime]


class CommissionRun(Base):
    """The month-end run of one month, driven by the `commission_run` process."""

    __tablename__ = "commission_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[date] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(String(20), default="calculating")
    started_by: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime]
    calculated_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(80))
    issued_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)  # the last rejection's reason

    statements: Mapped[list[CommissionStatement]] = relationship(
        order_by="CommissionStatement.id", cascade="all, delete-orphan"
    )


class CommissionStatement(Base):
    __tablename__ = "commission_statement"
    __table_args__ = (UniqueConstraint("run_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("commission_run.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("commission_plan.id"))
    basis: Mapped[str] = mapped_column(String(8))
    target: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    achieved: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    attainment_pct: Mapped[Decimal | None] = mapped_column(Numeric(9, 2))
    coefficient: Mapped[Decimal] = mapped_column(Numeric(4, 2))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    issued_at: Mapped[datetime | None]

    lines: Mapped[list[CommissionLine]] = relationship(
        order_by="CommissionLine.id", lazy="selectin", cascade="all, delete-orphan"
    )


class CommissionLine(Base):
    """One number behind a statement: a receipt or won deal (or a slice of it), or a correction."""

    __tablename__ = "commission_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("commission_statement.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(12))
    source_id: Mapped[int | None]  # receipt.id or opportunity.id
    label: Mapped[str] = mapped_column(String(200))
    occurred_on: Mapped[date | None]
    base: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    rate: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    tier: Mapped[str] = mapped_column(String(40))
    multiplier: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    coefficient: Mapped[Decimal] = mapped_column(Numeric(4, 2))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    comment: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]


class CommissionAudit(Base):
    """Who changed a plan or a coefficient, when, and the values before and after."""

    __tablename__ = "commission_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(24))  # plan_created | plan_changed | coefficient_set
    plan_id: Mapped[int | None] = mapped_column(
        ForeignKey("commission_plan.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    detail: Mapped[dict[str, Any]]
