"""Builders for pool and reminder tests: a territory with a pool, its manager and reps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.activities.models import Activity
from crm.customers.models import Customer, Pool
from crm.customers.services import create_pool, record_owner_change
from crm.directory.models import Territory, User
from crm.orders.models import Installment, SalesOrder
from crm.pool.models import ClaimLimit, PoolPolicy, RecycleLimit, RecycleRule
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.models import HumanTask
from tests.conftest import NOW

_serial = count(1)
ALL_TIERS = {"A": 90, "B": 60, "C": 30, "D": 30, "E": 30}


@dataclass
class PoolOrg:
    territory: Territory
    pool: Pool
    manager: User
    reps: list[User]
    policy: PoolPolicy
    other_pool: Pool
    extra: dict[str, Any] = field(default_factory=dict)


def pool_org(
    session: Session, make_user: Any, make_team: Any, *, reps: int = 3, **policy: Any
) -> PoolOrg:
    """A territory with a customer pool (and a second one), its manager and `reps` reps."""
    n = next(_serial)
    territory = Territory(code=f"T{n}", name=f"Territory {n}")
    session.add(territory)
    session.flush()
    manager = make_user(
        "manager", username=f"pm{n}", territory_id=territory.id, email=f"pm{n}@example.com"
    )
    team = make_team(manager=manager)
    manager.team_id = team.id
    people = [
        make_user(
            "rep",
            team=team,
            username=f"rep{n}_{i}",
            territory_id=territory.id,
            email=f"rep{n}_{i}@example.com",
        )
        for i in range(1, reps + 1)
    ]
    pool = create_pool(session, f"Pool {n}", "customer", territory_id=territory.id)
    other = create_pool(session, f"Holding pool {n}", "customer")
    values = {
        "warning_days": 3,
        "cooldown_days": 30,
        "daily_claim_cap": 10,
        "weekly_quota": 20,
        "exempt_win_rate": 60,
        **policy,
    }
    settings = PoolPolicy(pool_id=pool.id, manager_id=manager.id, updated_at=NOW, **values)
    session.add(settings)
    session.flush()
    return PoolOrg(territory, pool, manager, people, settings, other)


def add_rule(
    session: Session,
    pool: Pool,
    trigger: str,
    days: dict[str, int] | None = None,
    **extra: Any,
) -> RecycleRule:
    rule = RecycleRule(pool_id=pool.id, trigger_kind=trigger, created_at=NOW, **extra)
    session.add(rule)
    session.flush()
    for tier, limit in (days or ALL_TIERS).items():
        session.add(RecycleLimit(rule_id=rule.id, tier=tier, days=limit))
    session.flush()
    return rule


def claim_limit(session: Session, pool: Pool, tier: str, **values: Any) -> ClaimLimit:
    limit = ClaimLimit(pool_id=pool.id, tier=tier, **values)
    session.add(limit)
    session.flush()
    return limit


def owned_customer(
    session: Session,
    owner: User,
    pool: Pool,
    *,
    tier: str = "C",
    owner_since: datetime = NOW - timedelta(days=200),
    **extra: Any,
) -> Customer:
    """A customer `owner` took from `pool` at `owner_since` (with its owner history row)."""
    n = next(_serial)
    customer = Customer(
        name=extra.pop("name", f"Customer {n}"),
        name_key=f"customer{n}",
        tier=tier,
        owner_id=owner.id,
        home_pool_id=pool.id,
        territory_id=pool.territory_id,
        owner_since=owner_since,
        created_at=owner_since - timedelta(days=1),
        **extra,
    )
    session.add(customer)
    session.flush()
    record_owner_change(
        session, customer, None, owner.id, "claim", by=owner.username, now=owner_since
    )
    session.flush()
    return customer


def pool_customer(session: Session, pool: Pool, *, tier: str = "C", **extra: Any) -> Customer:
    n = next(_serial)
    customer = Customer(
        name=extra.pop("name", f"Pool customer {n}"),
        name_key=f"poolcustomer{n}",
        tier=tier,
        pool_id=pool.id,
        territory_id=pool.territory_id,
        created_at=NOW - timedelta(days=400),
        phone=extra.pop("phone", "13812345678"),
        email=extra.pop("email", f"buyer{n}@client.example"),
        **extra,
    )
    session.add(customer)
    session.flush()
    return customer


def log_activity(
    session: Session,
    customer: Customer,
    user: User,
    at: datetime,
    *,
    next_followup_on: date | None = None,
    subject: str = "Call",
) -> Activity:
    activity = Activity(
        customer_id=customer.id,
        user_id=user.id,
        kind="call",
        subject=subject,
        happened_at=at,
        next_followup_on=next_followup_on,
    )
    session.add(activity)
    session.flush()
    return activity


def opportunity(
    session: Session, customer: Customer, owner: User, *, created_at: datetime, **extra: Any
) -> Opportunity:
    deal = Opportunity(
        customer_id=customer.id,
        owner_id=owner.id,
        name=extra.pop("name", "Deal"),
        amount=Decimal("1000"),
        pipeline="new_business",
        created_at=created_at,
        stage_since=extra.pop("stage_since", created_at),
        **extra,
    )
    session.add(deal)
    session.flush()
    return deal


def order(
    session: Session,
    customer: Customer,
    owner: User,
    *,
    ends_on: date | None,
    installments: list[tuple[date, str]] = (),  # type: ignore[assignment]
) -> SalesOrder:
    deal = opportunity(session, customer, owner, created_at=NOW - timedelta(days=400), status="won")
    n = next(_serial)
    sales_order = SalesOrder(
        number=f"SO-T-{n}",
        opportunity_id=deal.id,
        customer_id=customer.id,
        owner_id=owner.id,
        amount=Decimal("1000"),
        signed_on=NOW.date() - timedelta(days=400),
        ends_on=ends_on,
        created_at=NOW - timedelta(days=400),
        installments=[
            Installment(seq=i, due_date=d, amount=Decimal(a))
            for i, (d, a) in enumerate(installments, 1)
        ],
    )
    session.add(sales_order)
    session.flush()
    return sales_order


def pending_quote(session: Session, customer: Customer, owner: User) -> Quote:
    deal = opportunity(session, customer, owner, created_at=NOW - timedelta(days=300))
    quote = Quote(
        number=f"Q-T-{next(_serial)}",
        opportunity_id=deal.id,
        customer_id=customer.id,
        owner_id=owner.id,
        status="pending",
        created_at=NOW - timedelta(days=300),
    )
    session.add(quote)
    session.flush()
    return quote


def open_tasks(session: Session, **where: Any) -> list[HumanTask]:
    query = select(HumanTask).where(HumanTask.status == "open")
    for name, value in where.items():
        query = query.where(getattr(HumanTask, name) == value)
    return list(session.scalars(query.order_by(HumanTask.id)))
