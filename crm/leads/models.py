"""Leads and the campaigns they come from."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

LEAD_STATUSES = ("new", "working", "converted", "disqualified", "returned")


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(40))
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    starts_on: Mapped[date | None]
    ends_on: Mapped[date | None]
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))


class Lead(Base):
    __tablename__ = "lead"
    # The inbox's "On my customers" reads a user's records' ids from (owner_id, id) alone.
    __table_args__ = (Index("ix_lead_owner_id_id", "owner_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    company: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(40))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id"), index=True)
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("pool.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    status: Mapped[str] = mapped_column(String(20), default="new")
    status_reason: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    created_at: Mapped[datetime]
    converted_at: Mapped[datetime | None]
