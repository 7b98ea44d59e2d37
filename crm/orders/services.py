"""Orders with payment plans, receipts matched to installments, invoice requests."""

from __future__ import annotations

from contextlib import suppress
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.directory.services import actor_for, can_see_owner
from crm.errors import Conflict, NotFound, fields_error, msg
from crm.orders.models import Installment, InvoiceRequest, Receipt, ReceiptAllocation, SalesOrder
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from crm.sales.services import parse_amount
from engine.actor import SYSTEM
from engine.errors import NotFound as NobodyWaiting
from engine.instances import send_message, start_instance

PAYMENT_COLLECTION = "payment_collection"
INVOICE_REQUEST = "invoice_request"


def _parse_plan(installments: list[dict[str, Any]]) -> list[tuple[date, Decimal]]:
    if not installments:
        raise fields_error(installments="give at least one installment")
    plan = []
    for n, item in enumerate(installments, start=1):
        try:
            due = date.fromisoformat(str(item.get("due_date")))
        except ValueError:
            raise fields_error(
                **{f"installments.{n}.due_date": "is not a date (YYYY-MM-DD)"}
            ) from None
        plan.append((due, parse_amount(item.get("amount"), f"installments.{n}.amount")))
    if [d for d, _ in plan] != sorted(d for d, _ in plan):
        raise fields_error(installments="due dates must be in order")
    return plan


def create_order(
    session: Session,
    opportunity_id: int,
    signed_on: date,
    installments: list[dict[str, Any]],
    *,
    now: datetime,
    by: str | None,
    start_collection: bool = True,
) -> SalesOrder:
    """Turn a won deal into an order; the installments must add up to the agreed amount."""
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise NotFound(msg("opportunity %(id)s does not exist", id=opportunity_id))
    quote = session.scalar(
        select(Quote)
        .where(Quote.opportunity_id == opportunity.id, Quote.status == "accepted")
        .order_by(Quote.id.desc())
        .limit(1)
    )
    agreed = quote.total if quote is not None else opportunity.amount
    plan = _parse_plan(installments)
    planned = sum((amount for _, amount in plan), Decimal("0"))
    if planned != agreed:
        raise fields_error(
            installments=msg(
                "add up to %(planned)s, but the agreed amount is %(agreed)s",
                planned=planned,
                agreed=agreed,
            )
        )
    order = SalesOrder(
        number=f"draft-{now.timestamp()}-{opportunity.id}",
        opportunity_id=opportunity.id,
        quote_id=quote.id if quote else None,
        customer_id=opportunity.customer_id,
        owner_id=opportunity.owner_id,
        amount=agreed,
        currency=opportunity.currency,
        signed_on=signed_on,
        status="open",
        created_at=now,
        installments=[Installment(seq=n, due_date=d, amount=a) for n, (d, a) in enumerate(plan, 1)],
    )
    session.add(order)
    session.flush()
    order.number = f"SO-{now:%Y}-{order.id:05d}"
    if start_collection:
        owner = session.get(User, order.owner_id)
        for installment in order.installments:
            start_instance(
                session,
                actor_for(owner) if owner else SYSTEM,
                PAYMENT_COLLECTION,
                now=now,
                business_key=f"installment:{installment.id}",
                subject=("installment", installment.id),
                data=installment_data(order, installment),
            )
    return order


def installment_data(order: SalesOrder, installment: Installment) -> dict[str, Any]:
    return {
        "installment_id": installment.id,
        "order_id": order.id,
        "order_number": order.number,
        "due_date": installment.due_date.isoformat(),
        "amount": str(installment.amount),
        "seq": installment.seq,
    }


def get_order(session: Session, user: User, order_id: int) -> SalesOrder:
    order = session.get(SalesOrder, order_id)
    if order is None or not can_see_owner(session, user, order.owner_id, money=True):
        raise NotFound(msg("order %(id)s does not exist", id=order_id))
    return order


def register_receipt(
    session: Session,
    user: User,
    order_id: int,
    amount: Any,
    received_on: date,
    *,
    now: datetime,
    reference: str | None = None,
) -> Receipt:
    """Record money received and apply it to the oldest open installments."""
    order = get_order(session, user, order_id)
    value = parse_amount(amount)
    open_items = [i for i in order.installments if i.status == "open"]
    outstanding = sum((i.amount - i.paid_amount for i in open_items), Decimal("0"))
    if value > outstanding:
        raise fields_error(
            amount=msg(
                "is more than the %(outstanding)s still due on %(number)s",
                outstanding=outstanding,
                number=order.number,
            )
        )
    receipt = Receipt(
        order_id=order.id,
        amount=value,
        received_on=received_on,
        reference=reference,
        registered_by=user.username,
        created_at=now,
    )
    session.add(receipt)
    session.flush()
    left = value
    for installment in open_items:
        if left <= 0:
            break
        part = min(left, installment.amount - installment.paid_amount)
        installment.paid_amount += part
        left -= part
        session.add(
            ReceiptAllocation(receipt_id=receipt.id, installment_id=installment.id, amount=part)
        )
        if installment.paid_amount == installment.amount:
            installment.status, installment.paid_at = "paid", now
            _tell(
                session,
                "receipt_registered",
                f"installment:{installment.id}",
                {"receipt_id": receipt.id, "amount": str(part)},
                now,
            )
    if all(i.status == "paid" for i in order.installments):
        order.status = "paid"
        opportunity = session.get(Opportunity, order.opportunity_id)
        if opportunity is not None and opportunity.lead_id is not None:
            _tell(session, "order_paid", f"lead:{opportunity.lead_id}", {"order_id": order.id}, now)
    return receipt


def _tell(session: Session, message: str, key: str, payload: dict[str, Any], now: datetime) -> None:
    # Nothing may wait for it (the process already moved on, or none was started).
    with suppress(NobodyWaiting):
        send_message(session, SYSTEM, message, key, payload, now=now)


def mark_order_paid(session: Session, order_id: int) -> SalesOrder:
    order = session.get(SalesOrder, order_id)
    if order is None:
        raise NotFound(msg("order %(id)s does not exist", id=order_id))
    if any(i.status != "paid" for i in order.installments):
        raise Conflict(msg("order %(number)s still has unpaid installments", number=order.number))
    order.status = "paid"
    return order


def request_invoice(
    session: Session,
    user: User,
    order_id: int,
    amount: Any,
    title: str,
    *,
    now: datetime,
    tax_number: str | None = None,
) -> InvoiceRequest:
    """Ask finance to issue an invoice for (part of) an order."""
    order = get_order(session, user, order_id)
    value = parse_amount(amount)
    if value > order.amount:
        raise fields_error(amount=msg("is more than the order's %(amount)s", amount=order.amount))
    if not title.strip():
        raise fields_error(title="is required")
    request = InvoiceRequest(
        order_id=order.id,
        amount=value,
        title=title.strip(),
        tax_number=tax_number,
        status="pending",
        requested_by=user.username,
        created_at=now,
    )
    session.add(request)
    session.flush()
    start_instance(
        session,
        actor_for(user),
        INVOICE_REQUEST,
        now=now,
        business_key=f"invoice:{request.id}",
        subject=("invoice_request", request.id),
        data={
            "invoice_request_id": request.id,
            "order_id": order.id,
            "order_number": order.number,
            "amount": str(value),
            "title": request.title,
        },
    )
    return request


def decide_invoice_request(
    session: Session,
    request_id: int,
    decision: str,
    comment: str,
    *,
    now: datetime,
    by: str | None,
) -> InvoiceRequest:
    request = session.get(InvoiceRequest, request_id)
    if request is None:
        raise NotFound(msg("invoice request %(id)s does not exist", id=request_id))
    if decision not in ("approved", "rejected", "approve", "reject"):
        raise fields_error(decision="must be approve or reject")
    if request.status != "pending":
        raise Conflict(
            msg(
                "invoice request %(id)s was already %(status)s",
                id=request_id,
                status=request.status,
            )
        )
    request.status = "approved" if decision.startswith("approve") else "rejected"
    request.comment, request.decided_by, request.decided_at = comment or None, by, now
    return request
