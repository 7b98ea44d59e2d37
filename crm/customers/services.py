"""Customers and contacts: creation with duplicate warnings, scoped reads, owner changes."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm.customers.models import BUYING_ROLES, TIERS, Contact, Customer, OwnerChange, Pool
from crm.directory.models import User
from crm.directory.services import can_see_owner
from crm.errors import Conflict, InvalidInput, NotFound, fields_error, msg

_LEGAL_SUFFIXES = re.compile(
    r"\b(co|company|corp|corporation|inc|ltd|limited|llc|gmbh|plc|group)\b|"
    r"(有限责任公司|股份有限公司|有限公司|集团|公司)"
)


class PossibleDuplicate(InvalidInput):
    """A customer with a very similar name exists; `matches` lists them. Retry to confirm."""

    def __init__(self, name: str, matches: list[Customer]) -> None:
        listed = "; ".join(f"{c.name} (#{c.id})" for c in matches)
        super().__init__(
            f"'{name}' looks like an existing customer: {listed}",
            {"name": [f"possible duplicate of {listed}"]},
        )
        self.matches = matches


def name_key(name: str) -> str:
    """Return the comparable form of a company name (case, width, punctuation, legal suffix)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    folded = _LEGAL_SUFFIXES.sub(" ", folded)
    return re.sub(r"[\W_]+", "", folded)


def possible_duplicates(session: Session, name: str, limit: int = 5) -> list[Customer]:
    """Return customers whose comparable name equals this one's."""
    key = name_key(name)
    if not key:
        return []
    return list(session.scalars(select(Customer).where(Customer.name_key == key).limit(limit)))


def create_customer(
    session: Session,
    by: User,
    name: str,
    *,
    now: datetime,
    tier: str = "C",
    owner: User | None = None,
    pool_id: int | None = None,
    territory_id: int | None = None,
    industry: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    source: str | None = None,
    confirm_duplicate: bool = False,
    reason: str = "create",
) -> Customer:
    """Add a customer owned by `owner` (or in a pool). Near-duplicate names need confirming."""
    problems = {}
    if not name or not name.strip():
        problems["name"] = "is required"
    elif len(name) > 200:
        problems["name"] = "is longer than 200 characters"
    if tier not in TIERS:
        problems["tier"] = msg("must be one of %(items)s", items=", ".join(TIERS))
    if owner is None and pool_id is None:
        problems["owner"] = "give an owner or a pool"
    if problems:
        raise fields_error(**problems)
    if not confirm_duplicate:
        matches = possible_duplicates(session, name)
        if matches:
            raise PossibleDuplicate(name, matches)
    customer = Customer(
        name=name.strip(),
        name_key=name_key(name),
        tier=tier,
        industry=industry,
        phone=phone,
        email=email,
        territory_id=territory_id,
        owner_id=owner.id if owner else None,
        pool_id=None if owner else pool_id,
        source=source,
        created_at=now,
        owner_since=now if owner else None,
    )
    session.add(customer)
    session.flush()
    if owner is not None:
        record_owner_change(session, customer, None, owner.id, reason, by=by.username, now=now)
    return customer


def get_customer(session: Session, user: User, customer_id: int) -> Customer:
    """Return a customer the user may see; another rep's customer looks like it does not exist."""
    customer = session.get(Customer, customer_id)
    if customer is None or not can_see_owner(session, user, customer.owner_id):
        raise NotFound(msg("customer %(id)s does not exist", id=customer_id))
    return customer


def record_owner_change(
    session: Session,
    customer: Customer,
    from_user_id: int | None,
    to_user_id: int | None,
    reason: str,
    *,
    by: str | None,
    now: datetime,
    note: str | None = None,
    detail: dict[str, Any] | None = None,
) -> OwnerChange:
    change = OwnerChange(
        customer_id=customer.id,
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        reason=reason,
        note=note,
        detail=detail or {},
        changed_at=now,
        changed_by=by,
    )
    session.add(change)
    return change


def transfer_customer(
    session: Session,
    customer_id: int,
    to_user: User | None,
    reason: str,
    *,
    by: str | None,
    now: datetime,
    note: str | None = None,
    pool_id: int | None = None,
    expected_owner_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> Customer:
    """Move a customer to another owner (or into a pool) in one conditional update.

    The update only applies while the owner is still `expected_owner_id`, so two people
    moving the same customer at once cannot both succeed.
    """
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(msg("customer %(id)s does not exist", id=customer_id))
    session.refresh(customer)
    previous = customer.owner_id
    expected = previous if expected_owner_id is None else expected_owner_id
    condition = Customer.owner_id.is_(None) if expected is None else Customer.owner_id == expected
    result = session.execute(
        update(Customer)
        .where(Customer.id == customer_id, condition)
        .values(
            owner_id=to_user.id if to_user else None,
            pool_id=None if to_user else (pool_id or customer.pool_id),
            owner_since=now if to_user else None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(
            msg("customer '%(name)s' changed owner meanwhile; reload and retry", name=customer.name)
        )
    session.refresh(customer)
    record_owner_change(
        session,
        customer,
        previous,
        to_user.id if to_user else None,
        reason,
        by=by,
        now=now,
        note=note,
        detail=detail,
    )
    return customer


def add_contact(
    session: Session,
    user: User,
    customer_id: int,
    name: str,
    *,
    title: str | None = None,
    buying_role: str | None = None,
    influence: int = 3,
    phone: str | None = None,
    email: str | None = None,
) -> Contact:
    """Add a contact with their role in the buying decision."""
    get_customer(session, user, customer_id)
    problems = {}
    if not name or not name.strip():
        problems["name"] = "is required"
    if buying_role is not None and buying_role not in BUYING_ROLES:
        problems["buying_role"] = msg("must be one of %(items)s", items=", ".join(BUYING_ROLES))
    if not (isinstance(influence, int) and 1 <= influence <= 5):
        problems["influence"] = "must be a whole number from 1 to 5"
    if problems:
        raise fields_error(**problems)
    contact = Contact(
        customer_id=customer_id,
        name=name.strip(),
        title=title,
        buying_role=buying_role,
        influence=influence,
        phone=phone,
        email=email,
    )
    session.add(contact)
    session.flush()
    return contact


def create_pool(
    session: Session,
    name: str,
    kind: str,
    *,
    territory_id: int | None = None,
    product_line: str | None = None,
) -> Pool:
    if kind not in ("lead", "customer"):
        raise fields_error(kind="must be 'lead' or 'customer'")
    pool = Pool(name=name, kind=kind, territory_id=territory_id, product_line=product_line)
    session.add(pool)
    session.flush()
    return pool
