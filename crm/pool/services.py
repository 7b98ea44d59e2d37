"""Claiming and releasing pool customers, and what a rep sees of a customer before claiming."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from crm.customers.models import Contact, Customer, OwnerChange, Pool
from crm.customers.services import record_owner_change
from crm.directory.models import User
from crm.directory.services import can_see_owner, visible_owner_ids
from crm.errors import Conflict, Forbidden, NotFound, fields_error, msg
from crm.pool.models import ClaimLimit, PoolPolicy

CLAIMING_ROLES = frozenset({"rep", "supervisor"})


@dataclass(frozen=True)
class ContactView:
    name: str
    title: str | None
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class PoolCustomerView:
    """A customer as a rep may see it; contact details are masked until the rep owns it."""

    id: int
    name: str
    tier: str
    industry: str | None
    territory_id: int | None
    pool_id: int | None
    owner_id: int | None
    masked: bool
    phone: str | None
    email: str | None
    address: str | None
    contacts: tuple[ContactView, ...]


def mask_phone(phone: str | None) -> str | None:
    """Keep the first three and last four digits: `138****5678`."""
    if not phone:
        return phone
    digits = [c for c in phone if c.isdigit()]
    if len(digits) < 8:
        return "****"
    return "".join(digits[:3]) + "****" + "".join(digits[-4:])


def mask_email(email: str | None) -> str | None:
    """Keep the first letter and the domain: `j***@acme.com`."""
    if not email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_address(address: str | None) -> str | None:
    """Keep the city-level start of an address."""
    if not address:
        return address
    return address[:6] + "…" if len(address) > 6 else "…"


def customer_view(session: Session, user: User, customer_id: int) -> PoolCustomerView:
    """Return a pool or own customer; contact details are masked unless the user may see them."""
    customer = session.get(Customer, customer_id)
    if customer is None or not can_see_owner(session, user, customer.owner_id):
        raise NotFound(msg("customer %(id)s does not exist", id=customer_id))
    contacts = session.scalars(
        select(Contact).where(Contact.customer_id == customer.id).order_by(Contact.id)
    ).all()
    return _view(customer, list(contacts), masked=customer.owner_id is None)


def list_pool_customers(
    session: Session, user: User, pool_id: int, *, tier: str | None = None, limit: int = 100
) -> list[PoolCustomerView]:
    """Return the unowned customers of a pool, masked, oldest first."""
    if session.get(Pool, pool_id) is None:
        raise NotFound(msg("pool %(id)s does not exist", id=pool_id))
    query = select(Customer).where(Customer.pool_id == pool_id, Customer.owner_id.is_(None))
    if tier:
        query = query.where(Customer.tier == tier)
    customers = session.scalars(query.order_by(Customer.id).limit(limit)).all()
    return [_view(c, [], masked=True) for c in customers]


def _view(customer: Customer, contacts: list[Contact], *, masked: bool) -> PoolCustomerView:
    def phone(value: str | None) -> str | None:
        return mask_phone(value) if masked else value

    def email(value: str | None) -> str | None:
        return mask_email(value) if masked else value

    return PoolCustomerView(
        id=customer.id,
        name=customer.name,
        tier=customer.tier,
        industry=customer.industry,
        territory_id=customer.territory_id,
        pool_id=customer.pool_id,
        owner_id=customer.owner_id,
        masked=masked,
        phone=phone(customer.phone),
        email=email(customer.email),
        address=mask_address(customer.address) if masked else customer.address,
        contacts=tuple(
            ContactView(c.name, c.title, phone(c.phone), email(c.email)) for c in contacts
        ),
    )


def policy_of(session: Session, pool_id: int) -> PoolPolicy | None:
    return session.get(PoolPolicy, pool_id)


def day_start(now: datetime) -> datetime:
    """Return the start of `now`'s UTC day (caps count per UTC day)."""
    return datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)


def lock_users(session: Session, user_ids: list[int]) -> None:
    """Take the users' rows for update, in id order: caps and quotas are checked under it."""
    session.execute(
        select(User.id).where(User.id.in_(sorted(user_ids))).order_by(User.id).with_for_update()
    ).all()


def _check_cooldown(
    session: Session, user: User, customer: Customer, policy: PoolPolicy | None, now: datetime
) -> None:
    if policy is None or policy.cooldown_days <= 0:
        return
    left_at = session.scalar(
        select(func.max(OwnerChange.changed_at)).where(
            OwnerChange.customer_id == customer.id,
            OwnerChange.from_user_id == user.id,
            OwnerChange.reason.in_(("release", "recycle")),
        )
    )
    if left_at is None:
        return
    free_at = left_at + timedelta(days=policy.cooldown_days)
    if now < free_at:
        raise Forbidden(
            msg(
                (
                    "you gave up '%(name)s' on %(left_at)s; you may claim it again from "
                    "%(free_at)s UTC"
                ),
                name=customer.name,
                left_at=format(left_at, "%Y-%m-%d"),
                free_at=format(free_at, "%Y-%m-%d %H:%M"),
            )
        )


def _check_caps(
    session: Session, user: User, customer: Customer, policy: PoolPolicy | None, now: datetime
) -> None:
    claims_today = (
        select(func.count())
        .select_from(OwnerChange)
        .join(Customer, Customer.id == OwnerChange.customer_id)
        .where(
            OwnerChange.to_user_id == user.id,
            OwnerChange.reason == "claim",
            OwnerChange.changed_at >= day_start(now),
        )
    )
    if policy is not None and (session.scalar(claims_today) or 0) >= policy.daily_claim_cap:
        raise Forbidden(
            msg(
                "you have made today's %(daily_claim_cap)s claims; try tomorrow",
                daily_claim_cap=policy.daily_claim_cap,
            )
        )
    limit = session.get(ClaimLimit, (customer.pool_id, customer.tier))
    if limit is None:
        return
    if limit.daily_claims is not None:
        tier_today = session.scalar(claims_today.where(Customer.tier == customer.tier)) or 0
        if tier_today >= limit.daily_claims:
            raise Forbidden(
                msg(
                    "you have made today's %(daily_claims)s claims of tier %(tier)s",
                    daily_claims=limit.daily_claims,
                    tier=customer.tier,
                )
            )
    if limit.max_held is not None:
        held = session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.owner_id == user.id, Customer.tier == customer.tier)
        )
        if (held or 0) >= limit.max_held:
            raise Forbidden(
                msg(
                    (
                        "you already hold %(held)s tier %(tier)s customers (at most "
                        "%(max_held)s); release one first"
                    ),
                    held=held,
                    tier=customer.tier,
                    max_held=limit.max_held,
                )
            )


def _claimed_first(name: str) -> str:
    return msg("'%(name)s' is no longer in the pool: someone claimed it first", name=name)


def claim_customer(session: Session, user: User, customer_id: int, *, now: datetime) -> Customer:
    """Become the owner of a pool customer, within the pool's caps and cooldown.

    :raises Conflict: someone else claimed it first (exactly one of many concurrent claims wins).
    :raises Forbidden: a cap or the previous owner's cooldown forbids it.
    """
    if not user.active or not user.roles & CLAIMING_ROLES:
        raise Forbidden("only active reps may claim customers")
    lock_users(session, [user.id])
    customer = session.get(Customer, customer_id, populate_existing=True)
    if customer is None:
        raise NotFound(msg("customer %(id)s does not exist", id=customer_id))
    if customer.owner_id is not None or customer.pool_id is None:
        if not can_see_owner(session, user, customer.owner_id):
            # A claimer who lost a race saw it in the pool; nobody else learns whose it is.
            if customer.home_pool_id is None:
                raise NotFound(msg("customer %(id)s does not exist", id=customer_id))
            raise Conflict(
                msg(
                    "customer %(id)s is no longer in the pool: someone claimed it first",
                    id=customer_id,
                )
            )
        raise Conflict(_claimed_first(customer.name))
    pool_id = customer.pool_id
    policy = policy_of(session, pool_id)
    _check_cooldown(session, user, customer, policy, now)
    _check_caps(session, user, customer, policy, now)
    moved = move_customer(session, customer.id, user.id, pool_id, expected_owner_id=None, now=now)
    if not moved:
        raise Conflict(_claimed_first(customer.name))
    record_owner_change(
        session,
        customer,
        None,
        user.id,
        "claim",
        by=user.username,
        now=now,
        detail={"pool": pool_id},
    )
    session.refresh(customer)
    return customer


def move_customer(
    session: Session,
    customer_id: int,
    to_user_id: int | None,
    pool_id: int,
    *,
    expected_owner_id: int | None,
    now: datetime,
) -> bool:
    """Give a customer to a user (from `pool_id`) or put it into `pool_id`, if still as expected.

    One conditional UPDATE: of two concurrent moves of the same customer only one applies.
    """
    condition: tuple[ColumnElement[bool], ...]
    if expected_owner_id is None:
        condition = (Customer.owner_id.is_(None), Customer.pool_id == pool_id)
    else:
        condition = (Customer.owner_id == expected_owner_id,)
    result = session.execute(
        update(Customer)
        .where(Customer.id == customer_id, *condition)
        .values(
            owner_id=to_user_id,
            pool_id=None if to_user_id else pool_id,
            home_pool_id=pool_id,
            owner_since=now if to_user_id else None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release_customer(
    session: Session,
    user: User,
    customer_id: int,
    reason: str,
    *,
    now: datetime,
    pool_id: int | None = None,
) -> Customer:
    """Put an owned customer back into a pool (its home pool unless one is named), with a reason."""
    if not reason or not reason.strip():
        raise fields_error(reason="say why the customer goes back to the pool")
    customer = session.get(Customer, customer_id, populate_existing=True)
    if customer is None or not can_see_owner(session, user, customer.owner_id):
        raise NotFound(msg("customer %(id)s does not exist", id=customer_id))
    owner_id = customer.owner_id
    if owner_id is None:
        raise Conflict(msg("'%(name)s' is already in the pool", name=customer.name))
    scope = visible_owner_ids(session, user)
    if owner_id != user.id and scope is not None and owner_id not in scope:
        raise Forbidden(msg("'%(name)s' is not yours to release", name=customer.name))
    target = pool_id or customer.home_pool_id or territory_pool_id(session, customer.territory_id)
    pool = session.get(Pool, target) if target else None
    if pool is None or pool.kind != "customer":
        raise fields_error(pool="choose the customer pool to release into")
    if not move_customer(session, customer.id, None, pool.id, expected_owner_id=owner_id, now=now):
        raise Conflict(
            msg("'%(name)s' changed owner meanwhile; reload and retry", name=customer.name)
        )
    record_owner_change(
        session,
        customer,
        owner_id,
        None,
        "release",
        by=user.username,
        now=now,
        note=reason.strip(),
        detail={"pool": pool.id},
    )
    session.refresh(customer)
    return customer


def territory_pool_id(session: Session, territory_id: int | None) -> int | None:
    """Return the customer pool of a territory (the lowest id if there are several)."""
    if territory_id is None:
        return None
    return session.scalar(
        select(func.min(Pool.id)).where(Pool.kind == "customer", Pool.territory_id == territory_id)
    )


def pools_with_waiting(
    session: Session, kind: str, pool_id: Any, *waiting: ColumnElement[bool]
) -> list[tuple[Pool, int]]:
    """Return the pools of `kind` by name, each with how many records wait in it.

    `pool_id` is the records' pool column; `waiting` says which of them are waiting.
    """
    counts = (
        select(pool_id.label("pool_id"), func.count().label("n"))
        .where(*waiting)
        .group_by(pool_id)
        .subquery()
    )
    rows = session.execute(
        select(Pool, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.pool_id == Pool.id)
        .where(Pool.kind == kind)
        .order_by(Pool.name)
    ).all()
    return [(pool, int(n)) for pool, n in rows]


def list_customer_pools(session: Session) -> list[tuple[Pool, int]]:
    """Return the customer pools with how many customers wait in each."""
    return pools_with_waiting(session, "customer", Customer.pool_id, Customer.owner_id.is_(None))


def customers_held_by(session: Session, user: User, *, limit: int = 200) -> list[Customer]:
    """Return the customers the user owns, newest first (for releasing)."""
    return list(
        session.scalars(
            select(Customer)
            .where(Customer.owner_id == user.id)
            .order_by(Customer.owner_since.desc(), Customer.id.desc())
            .limit(limit)
        )
    )
