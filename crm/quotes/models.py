"""Products, price books, and quotes with lines and revisions."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base

QUOTE_STATUSES = ("draft", "pending", "approved", "rejected", "accepted", "withdrawn", "superseded")


class Product(Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    product_line: Mapped[str] = mapped_column(String(80))
    unit: Mapped[str] = mapped_column(String(20), default="unit")
    active: Mapped[bool] = mapped_column(default=True)


class PriceBook(Base):
    __tablename__ = "price_book"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    is_default: Mapped[bool] = mapped_column(default=False)


class PriceBookEntry(Base):
    __tablename__ = "price_book_entry"
    __table_args__ = (UniqueConstraint("price_book_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    price_book_id: Mapped[int] = mapped_column(ForeignKey("price_book.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))


class Quote(Base):
    __tablename__ = "quote"
    __table_args__ = (
        UniqueConstraint("number", "revision"),
        # The inbox's "On my customers" reads a user's records' ids from (owner_id, id) alone.
        Index("ix_quote_owner_id_id", "owner_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40))
    revision: Mapped[int] = mapped_column(default=1)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunity.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    status: Mapped[str] = mapped_column(String(12), default="draft")
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    discount_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("0"))
    subtotal: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    payment_days: Mapped[int] = mapped_column(default=30)
    delivery_date: Mapped[date | None]
    valid_until: Mapped[date | None]
    comment: Mapped[str | None] = mapped_column(Text)
    decision_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]

    lines: Mapped[list[QuoteLine]] = relationship(
        cascade="all, delete-orphan", order_by="QuoteLine.id", lazy="selectin"
    )


class QuoteLine(Base):
    __tablename__ = "quote_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    quote_id: Mapped[int] = mapped_column(ForeignKey("quote.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    description: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    line_total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
