"""Orders (contracts), payment plans with installments, receipts and invoice requests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base


class SalesOrder(Base):
    __tablename__ = "sales_order"
    # The inbox's "On my customers" reads a user's records' ids from (owner_id, id) alone.
    __table_args__ = (Index("ix_sales_order_owner_id_id", "owner_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunity.id"), index=True)
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quote.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    signed_on: Mapped[date]
    starts_on: Mapped[date | None]
    ends_on: Mapped[date | None]
    status: Mapped[str] = mapped_column(String(12), default="open")
    created_at: Mapped[datetime]

    installments: Mapped[list[Installment]] = relationship(
        order_by="Installment.seq", lazy="selectin", cascade="all, delete-orphan"
    )


class Installment(Base):
    __tablename__ = "installment"
    __table_args__ = (UniqueConstraint("order_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id", ondelete="CASCADE"))
    seq: Mapped[int]
    due_date: Mapped[date] = mapped_column(index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    paid_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    status: Mapped[str] = mapped_column(String(10), default="open")
    paid_at: Mapped[datetime | None]


class Receipt(Base):
    __tablename__ = "receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    received_on: Mapped[date]
    reference: Mapped[str | None] = mapped_column(String(80))
    registered_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]


class ReceiptAllocation(Base):
    """The part of a receipt applied to one installment."""

    __tablename__ = "receipt_allocation"

    receipt_id: Mapped[int] = mapped_column(
        ForeignKey("receipt.id", ondelete="CASCADE"), primary_key=True
    )
    installment_id: Mapped[int] = mapped_column(ForeignKey("installment.id"), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))


class InvoiceRequest(Base):
    __tablename__ = "invoice_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    title: Mapped[str] = mapped_column(String(200))
    tax_number: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    requested_by: Mapped[str] = mapped_column(String(80))
    decided_by: Mapped[str | None] = mapped_column(String(80))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
