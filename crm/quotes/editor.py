"""The quote editor: read its fields, price lines from the price book, save a draft."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.errors import fields_error, msg
from crm.quotes.models import PriceBook, PriceBookEntry, Product, Quote
from crm.quotes.services import create_quote, get_quote, update_draft_quote
from crm.sales.services import get_opportunity

LINE_FIELDS = ("product", "description", "quantity", "unit_price")
MAX_LINES = 100
_LINE_KEY = re.compile(r"^line-(\d{1,3})-(?:product|description|quantity|unit_price)$")


@dataclass
class QuoteForm:
    """What the editor shows and sends back: every value as typed."""

    lines: list[dict[str, str]] = field(default_factory=list)
    discount_pct: str = "0"
    payment_days: str = "30"
    delivery_date: str = ""
    valid_until: str = ""
    comment: str = ""


@dataclass(frozen=True)
class PriceChoice:
    product_id: int
    sku: str
    name: str
    unit_price: Decimal | None


def read_quote_form(values: Mapping[str, Any]) -> QuoteForm:
    """Collect the editor's fields; line rows left wholly blank are dropped."""
    indexes = sorted({int(m.group(1)) for key in values if (m := _LINE_KEY.match(str(key)))})
    lines = []
    for i in indexes:
        row = {name: str(values.get(f"line-{i}-{name}") or "").strip() for name in LINE_FIELDS}
        if any(row.values()):
            lines.append(row)
    return QuoteForm(
        lines=lines,
        discount_pct=str(values.get("discount_pct") or "").strip() or "0",
        payment_days=str(values.get("payment_days") or "").strip(),
        delivery_date=str(values.get("delivery_date") or "").strip(),
        valid_until=str(values.get("valid_until") or "").strip(),
        comment=str(values.get("comment") or "").strip(),
    )


def quote_form_of(quote: Quote) -> QuoteForm:
    """Return the editor's fields for an existing quote."""
    return QuoteForm(
        lines=[
            {
                "product": str(line.product_id or ""),
                "description": line.description,
                "quantity": str(line.quantity.normalize()),
                "unit_price": str(line.unit_price),
            }
            for line in quote.lines
        ],
        discount_pct=str(quote.discount_pct.normalize()),
        payment_days=str(quote.payment_days),
        delivery_date=quote.delivery_date.isoformat() if quote.delivery_date else "",
        valid_until=quote.valid_until.isoformat() if quote.valid_until else "",
        comment=quote.comment or "",
    )


def _price_book(session: Session, currency: str) -> PriceBook | None:
    return session.scalar(
        select(PriceBook)
        .where(PriceBook.currency == currency)
        .order_by(PriceBook.is_default.desc(), PriceBook.id)
        .limit(1)
    )


def price_choices(session: Session, currency: str) -> list[PriceChoice]:
    """Return the active products with their list price in the currency (None if unlisted)."""
    book = _price_book(session, currency)
    prices: dict[int, Decimal] = {}
    if book is not None:
        rows = session.execute(
            select(PriceBookEntry.product_id, PriceBookEntry.unit_price).where(
                PriceBookEntry.price_book_id == book.id
            )
        )
        prices = {product_id: price for product_id, price in rows}
    products = session.scalars(
        select(Product).where(Product.active.is_(True)).order_by(Product.product_line, Product.sku)
    )
    return [PriceChoice(p.id, p.sku, p.name, prices.get(p.id)) for p in products]


def _priced_lines(
    session: Session, rows: list[dict[str, str]], currency: str, problems: dict[str, str]
) -> list[dict[str, Any]]:
    catalogue = {c.product_id: c for c in price_choices(session, currency)}
    lines = []
    for n, row in enumerate(rows[:MAX_LINES], start=1):
        choice = None
        if row.get("product"):
            product = row["product"]
            choice = catalogue.get(int(product)) if product.isdigit() else None
            if choice is None:
                problems[f"lines.{n}.product"] = "is not a product of the price book"
        description = row.get("description") or (choice.name if choice else "")
        price = row.get("unit_price") or (
            str(choice.unit_price) if choice and choice.unit_price is not None else ""
        )
        if not description:
            problems[f"lines.{n}.description"] = "is required (or choose a product)"
        if not row.get("quantity"):
            problems[f"lines.{n}.quantity"] = "is required"
        if not price:
            problems[f"lines.{n}.unit_price"] = "is required (the product has no list price)"
        lines.append(
            {
                "product_id": choice.product_id if choice else None,
                "description": description,
                "quantity": row.get("quantity"),
                "unit_price": price,
            }
        )
    if len(rows) > MAX_LINES:
        problems["lines"] = msg("a quote has at most %(MAX_LINES)s lines", MAX_LINES=MAX_LINES)
    return lines


def _whole_days(text: str, problems: dict[str, str]) -> int:
    if not text:
        return 30
    if not re.fullmatch(r"\d{1,4}", text):
        problems["payment_days"] = "must be a whole number of days from 0 to 365"
        return 0
    return int(text)


def _day(text: str, name: str, problems: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems[name] = msg("'%(text)s' is not a date (YYYY-MM-DD)", text=text)
        return None


def save_quote_form(
    session: Session,
    user: User,
    form: QuoteForm,
    *,
    now: datetime,
    opportunity_id: int | None = None,
    quote_id: int | None = None,
) -> Quote:
    """Create a draft for a deal, or revise a draft, from the editor's fields."""
    if quote_id is not None:
        currency = get_quote(session, user, quote_id).currency
    elif opportunity_id is not None:
        currency = get_opportunity(session, user, opportunity_id).currency
    else:
        raise ValueError("give an opportunity or a quote")
    problems: dict[str, str] = {}
    if not form.lines:
        problems["lines"] = "a quote needs at least one line"
    lines = _priced_lines(session, form.lines, currency, problems)
    terms: dict[str, Any] = {
        "discount_pct": form.discount_pct,
        "payment_days": _whole_days(form.payment_days, problems),
        "delivery_date": _day(form.delivery_date, "delivery_date", problems),
        "valid_until": _day(form.valid_until, "valid_until", problems),
        "comment": form.comment[:5000] or None,
    }
    if problems:
        raise fields_error(**problems)
    if quote_id is not None:
        return update_draft_quote(session, user, quote_id, lines, now=now, **terms)
    assert opportunity_id is not None
    return create_quote(session, user, opportunity_id, lines, now=now, **terms)
