"""Pool settings that managers edit: claim limits, allocation quotas and recycling rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

# What a recycling rule measures, each as "days since ...":
TRIGGERS = (
    "no_followup",  # the last activity (call, visit, e-mail, note) or taking the customer over
    "no_opportunity",  # the last opportunity opened or closed; none may be open
    "no_deal",  # the last won deal, or taking the customer over
    "stage_unchanged",  # the last stage move of an open opportunity; one must be open
    "contract_ended",  # the end of the last order's contract; none may still run
)


class PoolPolicy(Base):
    """How one pool works: who manages it, claiming limits, quotas, exemptions, warnings."""

    __tablename__ = "pool_policy"

    pool_id: Mapped[int] = mapped_column(
        ForeignKey("pool.id", ondelete="CASCADE"), primary_key=True
    )
    # Gets the open tasks of recycled customers, and may allocate this pool's customers.
    manager_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    # Where recycled customers go when a rule names no pool; None: back into this pool.
    target_pool_id: Mapped[int | None] = mapped_column(ForeignKey("pool.id"))
    warning_days: Mapped[int] = mapped_column(default=3)
    # The previous owner may not claim a released or recycled customer back for this long.
    cooldown_days: Mapped[int] = mapped_column(default=30)
    # Claims from this pool per rep per UTC day, over all tiers.
    daily_claim_cap: Mapped[int] = mapped_column(default=10)
    # Customers each rep may receive from this pool by allocation per ISO week.
    weekly_quota: Mapped[int] = mapped_column(default=20)
    # Let the weekly allocation rule hand out this pool's customers "random even".
    auto_allocate: Mapped[bool] = mapped_column(default=False)
    exempt_locked: Mapped[bool] = mapped_column(default=True)
    exempt_open_approval: Mapped[bool] = mapped_column(default=True)
    # An open deal at or above this stage win rate keeps the customer; None: no such exemption.
    exempt_win_rate: Mapped[int | None] = mapped_column(default=60)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(80))


class ClaimLimit(Base):
    """Per pool and tier: how many such customers one rep may hold, and claim per day."""

    __tablename__ = "pool_claim_limit"

    pool_id: Mapped[int] = mapped_column(
        ForeignKey("pool.id", ondelete="CASCADE"), primary_key=True
    )
    tier: Mapped[str] = mapped_column(String(1), primary_key=True)
    max_held: Mapped[int | None]
    daily_claims: Mapped[int | None]


class RecycleRule(Base):
    """One reason to send a pool's owned customers back: a trigger with day limits per tier."""

    __tablename__ = "pool_recycle_rule"
    id: Mapped[int] = mapped_column(primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id", ondelete="CASCADE"), index=True)
    trigger_kind: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(default=True)
    # None: the policy's target pool, else the pool itself.
    target_pool_id: Mapped[int | None] = mapped_column(ForeignKey("pool.id"))
    created_at: Mapped[datetime]


class RecycleLimit(Base):
    """The days a rule allows a customer of one tier; a tier without a row is never recycled."""

    __tablename__ = "pool_recycle_limit"

    rule_id: Mapped[int] = mapped_column(
        ForeignKey("pool_recycle_rule.id", ondelete="CASCADE"), primary_key=True
    )
    tier: Mapped[str] = mapped_column(String(1), primary_key=True)
    days: Mapped[int]
