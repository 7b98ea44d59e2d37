"""Quotes: lines and totals, submission into the approval process, the approval outcome."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.directory.services import actor_for, can_see_owner
from crm.errors import Conflict, NotFound, fields_error, msg
from crm.quotes.models import QUOTE_STATUSES, Quote, QuoteLine
from crm.sales.services import get_opportunity
from engine.instances import start_instance

QUOTE_APPROVAL = "quote_approval"
_CENT = Decimal("0.01")


def _decimal(value: Any, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise fields_error(**{field: f"'{value}' is not a number"}) from None
    if not number.is_finite():
        raise fields_error(**{field: "is not a number"})
    return number


def _lines(raw: list[dict[str, Any]]) -> list[QuoteLine]:
    if not raw:
        raise fields_error(lines="a quote needs at least one line")
    lines = []
    for n, item in enumerate(raw, start=1):
        quantity = _decimal(item.get("quantity"), f"lines.{n}.quantity")
        price = _decimal(item.get("unit_price"), f"lines.{n}.unit_price")
        if quantity <= 0:
            raise fields_error(**{f"lines.{n}.quantity": "must be greater than zero"})
        if price < 0:
            raise fields_error(**{f"lines.{n}.unit_price": "must not be negative"})
        description = str(item.get("description") or "").strip()
        if not description:
            raise fields_error(**{f"lines.{n}.description": "is required"})
        total = (quantity * price).quantize(_CENT, ROUND_HALF_UP)
        lines.append(
            QuoteLine(
                product_id=item.get("product_id"),
                description=description[:255],
                quantity=quantity,
                unit_price=price,
                line_total=total,
            )
        )
    return lines


def _priced(
    lines: list[dict[str, Any]], discount_pct: Any, payment_days: Any
) -> tuple[Decimal, list[QuoteLine], Decimal, Decimal]:
    """Check the terms and lines; return discount, lines, subtotal and total after discount."""
    discount = _decimal(discount_pct, "discount_pct")
    if discount < 0 or discount > 100:
        raise fields_error(discount_pct="must be between 0 and 100")
    if not isinstance(payment_days, int) or not 0 <= payment_days <= 365:
        raise fields_error(payment_days="must be a whole number of days from 0 to 365")
    quote_lines = _lines(lines)
    subtotal = sum((line.line_total for line in quote_lines), Decimal("0"))
    total = (subtotal * (100 - discount) / 100).quantize(_CENT, ROUND_HALF_UP)
    return discount, quote_lines, subtotal, total


def create_quote(
    session: Session,
    user: User,
    opportunity_id: int,
    lines: list[dict[str, Any]],
    *,
    now: datetime,
    discount_pct: Any = 0,
    payment_days: int = 30,
    delivery_date: date | None = None,
    valid_until: date | None = None,
    comment: str | None = None,
) -> Quote:
    """Draft a quote for a deal; totals are computed here, never taken from the client."""
    opportunity = get_opportunity(session, user, opportunity_id)
    if opportunity.status != "open":
        raise Conflict(
            msg(
                "opportunity '%(name)s' is %(status)s",
                name=opportunity.name,
                status=opportunity.status,
            )
        )
    discount, quote_lines, subtotal, total = _priced(lines, discount_pct, payment_days)
    quote = Quote(
        number=f"draft-{now.timestamp()}-{user.id}",
        revision=1,
        opportunity_id=opportunity.id,
        customer_id=opportunity.customer_id,
        owner_id=opportunity.owner_id,
        status="draft",
        currency=opportunity.currency,
        discount_pct=discount,
        subtotal=subtotal,
        total=total,
        payment_days=payment_days,
        delivery_date=delivery_date,
        valid_until=valid_until,
        comment=comment,
        created_at=now,
        lines=quote_lines,
    )
    session.add(quote)
    session.flush()
    quote.number = f"Q-{now:%Y}-{quote.id:05d}"  # from the id: unique without a counter race
    return quote


def get_quote(session: Session, user: User, quote_id: int) -> Quote:
    quote = session.get(Quote, quote_id)
    if quote is None or not can_see_owner(session, user, quote.owner_id):
        raise NotFound(msg("quote %(id)s does not exist", id=quote_id))
    return quote


def submit_quote(session: Session, user: User, quote_id: int, *, now: datetime) -> Quote:
    """Send a draft quote into its approval process (which may approve it at once)."""
    quote = get_quote(session, user, quote_id)
    if quote.status != "draft":
        raise Conflict(
            msg(
                "quote %(number)s is %(status)s, not a draft",
                number=quote.number,
                status=quote.status,
            )
        )
    quote.status, quote.submitted_at = "pending", now
    session.flush()
    delivery_days = (quote.delivery_date - now.date()).days if quote.delivery_date else 365
    start_instance(
        session,
        actor_for(user),
        QUOTE_APPROVAL,
        now=now,
        business_key=f"quote:{quote.id}",
        subject=("quote", quote.id),
        data={
            "quote_id": quote.id,
            "opportunity_id": quote.opportunity_id,
            "discount": float(quote.discount_pct),
            "amount": float(quote.total),
            "payment_days": quote.payment_days,
            "delivery_days": delivery_days,
        },
    )
    return quote


def set_quote_status(
    session: Session, quote_id: int, status: str, comment: str, *, now: datetime
) -> Quote:
    """Record the approval process's decision on a quote."""
    quote = session.get(Quote, quote_id)
    if quote is None:
        raise NotFound(msg("quote %(id)s does not exist", id=quote_id))
    if status not in QUOTE_STATUSES:
        raise fields_error(status=msg("unknown quote status '%(status)s'", status=status))
    quote.status, quote.decision_comment, quote.decided_at = status, comment or None, now
    return quote


def accept_quote(session: Session, user: User, quote_id: int, *, now: datetime) -> Quote:
    """Record that the customer accepted an approved quote."""
    quote = get_quote(session, user, quote_id)
    if quote.status != "approved":
        raise Conflict(
            msg(
                "quote %(number)s is %(status)s; only approved quotes can be accepted",
                number=quote.number,
                status=quote.status,
            )
        )
    quote.status, quote.decided_at = "accepted", now
    return quote


def update_draft_quote(
    session: Session,
    user: User,
    quote_id: int,
    lines: list[dict[str, Any]],
    *,
    now: datetime,
    discount_pct: Any = 0,
    payment_days: int = 30,
    delivery_date: date | None = None,
    valid_until: date | None = None,
    comment: str | None = None,
) -> Quote:
    """Replace a draft quote's lines and terms; totals are recomputed here, as on creation."""
    quote = get_quote(session, user, quote_id)
    if quote.status != "draft":
        raise Conflict(
            msg(
                "quote %(number)s is %(status)s; only drafts can be edited",
                number=quote.number,
                status=quote.status,
            )
        )
    discount, quote_lines, subtotal, total = _priced(lines, discount_pct, payment_days)
    quote.lines = quote_lines
    quote.discount_pct, quote.subtotal, quote.total = discount, subtotal, total
    quote.payment_days, quote.delivery_date, quote.valid_until = (
        payment_days,
        delivery_date,
        valid_until,
    )
    quote.comment = comment
    session.flush()
    return quote
