"""Orders as people read them: installments due, paid or overdue, receipts and invoice requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.directory.services import visible_owner_ids
from crm.errors import fields_error, msg
from crm.lookups import customer_names, user_names
from crm.orders.models import Installment, InvoiceRequest, Receipt, SalesOrder
from crm.orders.services import get_order

ORDER_STATUSES = ("open", "paid")
MAX_ORDERS = 5000


@dataclass(frozen=True)
class InstallmentLine:
    installment: Installment
    state: str  # "paid", "overdue" or "due"
    outstanding: Decimal


@dataclass
class OrderSummary:
    order: SalesOrder
    customer_name: str
    owner_name: str
    installments: list[InstallmentLine]
    receipts: list[Receipt] = field(default_factory=list)
    invoice_requests: list[InvoiceRequest] = field(default_factory=list)

    @property
    def outstanding(self) -> Decimal:
        return sum((line.outstanding for line in self.installments), Decimal("0"))

    @property
    def overdue(self) -> Decimal:
        return sum(
            (line.outstanding for line in self.installments if line.state == "overdue"),
            Decimal("0"),
        )

    @property
    def paid(self) -> Decimal:
        return self.order.amount - self.outstanding


def installment_state(installment: Installment, today: date) -> str:
    """Tell whether an installment is paid, overdue (past its due date) or still due."""
    if installment.status == "paid":
        return "paid"
    return "overdue" if installment.due_date < today else "due"


def _lines(order: SalesOrder, today: date) -> list[InstallmentLine]:
    return [
        InstallmentLine(
            i,
            installment_state(i, today),
            Decimal("0") if i.status == "paid" else i.amount - i.paid_amount,
        )
        for i in order.installments
    ]


def _summaries(session: Session, orders: list[SalesOrder], today: date) -> list[OrderSummary]:
    customers = customer_names(session, (o.customer_id for o in orders))
    owners = user_names(session, (o.owner_id for o in orders))
    return [
        OrderSummary(
            o, customers.get(o.customer_id, ""), owners.get(o.owner_id, ""), _lines(o, today)
        )
        for o in orders
    ]


def list_orders(
    session: Session,
    user: User,
    *,
    today: date,
    status: str = "",
    overdue_only: bool = False,
    customer_id: int | None = None,
) -> list[OrderSummary]:
    """Return the orders the user may see (finance: all), newest first."""
    if status and status not in ORDER_STATUSES:
        raise fields_error(status=msg("must be one of %(items)s", items=", ".join(ORDER_STATUSES)))
    conditions: list[ColumnElement[bool]] = []
    scope = visible_owner_ids(session, user, money=True)
    if scope is not None:
        conditions.append(SalesOrder.owner_id.in_(scope))
    if status:
        conditions.append(SalesOrder.status == status)
    if customer_id is not None:
        conditions.append(SalesOrder.customer_id == customer_id)
    if overdue_only:
        overdue = (
            select(Installment.id)
            .where(
                Installment.order_id == SalesOrder.id,
                Installment.status != "paid",
                Installment.due_date < today,
            )
            .exists()
        )
        conditions.append(overdue)
    orders = list(
        session.scalars(
            select(SalesOrder)
            .where(*conditions)
            .order_by(SalesOrder.signed_on.desc(), SalesOrder.id.desc())
            .limit(MAX_ORDERS)
        )
    )
    return _summaries(session, orders, today)


def attach_payments(session: Session, summaries: list[OrderSummary]) -> list[OrderSummary]:
    """Fill in each order's receipts and invoice requests (two queries for any number)."""
    by_id = {s.order.id: s for s in summaries}
    if not by_id:
        return summaries
    for receipt in session.scalars(
        select(Receipt).where(Receipt.order_id.in_(by_id)).order_by(Receipt.received_on, Receipt.id)
    ):
        by_id[receipt.order_id].receipts.append(receipt)
    for request in session.scalars(
        select(InvoiceRequest).where(InvoiceRequest.order_id.in_(by_id)).order_by(InvoiceRequest.id)
    ):
        by_id[request.order_id].invoice_requests.append(request)
    return summaries


def order_detail(session: Session, user: User, order_id: int, *, today: date) -> OrderSummary:
    """Return an order the user may see with its installments, receipts and invoice requests."""
    order = get_order(session, user, order_id)
    [summary] = attach_payments(session, _summaries(session, [order], today))
    return summary
