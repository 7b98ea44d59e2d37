"""Pools, customers, contacts and the history of who owned each customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

TIERS = ("A", "B", "C", "D", "E")
BUYING_ROLES = ("decision_maker", "user", "technical_owner", "coach")
OWNER_CHANGE_REASONS = (
    "create",
    "convert",
    "claim",
    "allocation",
    "recycle",
    "handover",
    "release",
)


class Pool(Base):
    """A public pool of leads or customers, per territory or product line."""

    __tablename__ = "pool"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # "lead" or "customer"
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territory.id"))
    product_line: Mapped[str | None] = mapped_column(String(80))


class Customer(Base):
    __tablename__ = "customer"
    # Pool recycling reads owned customers by tier; the inbox's "On my customers" reads a
    # user's customers' ids, index-only thanks to the trailing id.
    __table_args__ = (Index("ix_customer_owner_tier", "owner_id", "tier", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Lower-cased, punctuation- and legal-suffix-free name, for finding likely duplicates.
    name_key: Mapped[str] = mapped_column(String(200), index=True)
    tier: Mapped[str] = mapped_column(String(1), default="C")
    industry: Mapped[str | None] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(255))
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territory.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pool.id"), index=True)
    # The pool whose recycling rules govern the customer while owned (set by claim, allocation,
    # release and recycling); None: the customer pool of its territory.
    home_pool_id: Mapped[int | None] = mapped_column(ForeignKey("pool.id"), index=True)
    source: Mapped[str | None] = mapped_column(String(40))
    locked: Mapped[bool] = mapped_column(default=False)
    owner_since: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(255))
    buying_role: Mapped[str | None] = mapped_column(String(20))
    influence: Mapped[int] = mapped_column(default=3)


class OwnerChange(Base):
    """Every change of a customer's owner, with its reason and the numbers behind it."""

    __tablename__ = "owner_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    from_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    to_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    reason: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]]
    changed_at: Mapped[datetime]
    changed_by: Mapped[str | None] = mapped_column(String(80))
