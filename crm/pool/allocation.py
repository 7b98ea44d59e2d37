"""Managers hand pool customers to reps: to chosen reps, or "random even" within a territory.

Fairness: each customer goes to the eligible rep with the fewest allocations this ISO week
(then the fewest ever), ties drawn at random. So however many runs
there are, no rep ends more than one customer ahead of another unless a weekly quota stops them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from crm.customers.models import Customer, OwnerChange, Pool
from crm.directory.models import User, UserRole
from crm.directory.services import managed_user_ids
from crm.errors import Forbidden, NotFound, fields_error, msg
from crm.pool.models import PoolPolicy
from crm.pool.services import day_start, lock_users

ALLOCATING_ROLES = frozenset({"manager", "supervisor", "director", "admin"})
DEFAULT_WEEKLY_QUOTA = 20


@dataclass
class AllocationResult:
    """Who got which customer, and which customers stayed in the pool (all quotas full)."""

    given: dict[int, int] = field(default_factory=dict)  # customer id -> rep id
    left: list[int] = field(default_factory=list)


def week_start(now: datetime) -> datetime:
    """Return Monday 00:00 UTC of `now`'s ISO week (quotas count per week)."""
    start = day_start(now)
    return start - timedelta(days=start.weekday())


def eligible_reps(session: Session, territory_id: int) -> list[User]:
    """Return the active reps of a territory who are not on leave."""
    return list(
        session.scalars(
            select(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(
                UserRole.role == "rep",
                User.territory_id == territory_id,
                User.active.is_(True),
                User.on_leave.is_(False),
            )
            .order_by(User.id)
        )
    )


def allocate_customers(
    session: Session,
    manager: User,
    pool_id: int,
    customer_ids: list[int],
    *,
    now: datetime,
    to_user_ids: list[int] | None = None,
    rng: random.Random | None = None,
) -> AllocationResult:
    """Give pool customers to chosen reps, or "random even" to the pool territory's reps."""
    pool = session.get(Pool, pool_id)
    if pool is None:
        raise NotFound(msg("pool %(id)s does not exist", id=pool_id))
    policy = session.get(PoolPolicy, pool_id)
    roles = manager.roles
    in_charge = bool(roles & {"director", "admin"}) or (
        policy is not None and policy.manager_id == manager.id
    )
    if not roles & ALLOCATING_ROLES:
        raise Forbidden("only managers allocate pool customers")
    if to_user_ids is not None:
        if not to_user_ids:
            raise fields_error(reps="choose at least one rep")
        reps = list(session.scalars(select(User).where(User.id.in_(to_user_ids))))
        if len(reps) != len(set(to_user_ids)):
            raise fields_error(reps="some chosen reps do not exist")
        inactive = [r.username for r in reps if not r.active]
        if inactive:
            raise fields_error(reps=msg("not active: %(items)s", items=", ".join(sorted(inactive))))
        if not in_charge and not {r.id for r in reps} <= managed_user_ids(session, manager):
            raise Forbidden("you may only allocate to reps of your own teams")
    else:
        if not in_charge:
            raise Forbidden(
                msg("only the manager of '%(name)s' allocates it at random", name=pool.name)
            )
        if pool.territory_id is None:
            raise fields_error(reps="this pool has no territory; choose the reps")
        reps = eligible_reps(session, pool.territory_id)
        if not reps:
            raise fields_error(reps="no active rep of this territory is at work")
    return allocate_to(
        session, pool, policy, customer_ids, reps, now=now, by=manager.username, rng=rng
    )


def allocate_to(
    session: Session,
    pool: Pool,
    policy: PoolPolicy | None,
    customer_ids: list[int],
    reps: list[User],
    *,
    now: datetime,
    by: str,
    rng: random.Random | None = None,
) -> AllocationResult:
    """Share out those of `customer_ids` still in `pool` among `reps`, fewest-first, in quota."""
    rng = rng or random.Random()  # noqa: S311 - a fair draw, not a secret
    quota = policy.weekly_quota if policy is not None else DEFAULT_WEEKLY_QUOTA
    rep_ids = [r.id for r in reps]
    # Concurrent allocations (and claims) touching these reps wait here, so counts stay true.
    lock_users(session, rep_ids)
    week = _allocation_counts(session, rep_ids, since=week_start(now))
    ever = _allocation_counts(session, rep_ids, since=None)
    free = session.scalars(
        select(Customer.id)
        .where(
            Customer.id.in_(customer_ids),
            Customer.pool_id == pool.id,
            Customer.owner_id.is_(None),
        )
        .order_by(Customer.id)
        .with_for_update(skip_locked=True)
    ).all()
    result = AllocationResult()
    batches: dict[int, list[int]] = defaultdict(list)
    for customer_id in free:
        open_reps = [r for r in rep_ids if week[r] < quota]
        if not open_reps:
            result.left.append(customer_id)
            continue
        fewest = min((week[r], ever[r]) for r in open_reps)
        rep_id = rng.choice([r for r in open_reps if (week[r], ever[r]) == fewest])
        week[rep_id] += 1
        ever[rep_id] += 1
        batches[rep_id].append(customer_id)
        result.given[customer_id] = rep_id
    for rep_id, ids in batches.items():
        session.execute(
            update(Customer)
            .where(Customer.id.in_(ids), Customer.owner_id.is_(None))
            .values(owner_id=rep_id, pool_id=None, home_pool_id=pool.id, owner_since=now)
            .execution_options(synchronize_session=False)
        )
    if result.given:
        session.execute(
            insert(OwnerChange),
            [
                {
                    "customer_id": customer_id,
                    "from_user_id": None,
                    "to_user_id": rep_id,
                    "reason": "allocation",
                    "detail": {"pool": pool.id, "territory": pool.territory_id},
                    "changed_at": now,
                    "changed_by": by,
                }
                for customer_id, rep_id in result.given.items()
            ],
        )
    return result


def _allocation_counts(
    session: Session, rep_ids: list[int], *, since: datetime | None
) -> dict[int, int]:
    query = (
        select(OwnerChange.to_user_id, func.count())
        .where(OwnerChange.reason == "allocation", OwnerChange.to_user_id.in_(rep_ids))
        .group_by(OwnerChange.to_user_id)
    )
    if since is not None:
        query = query.where(OwnerChange.changed_at >= since)
    counts = dict.fromkeys(rep_ids, 0)
    counts.update({rep: n for rep, n in session.execute(query).all() if rep is not None})
    return counts


def allocate_pools_weekly(session: Session, now: datetime) -> int:
    """Allocate the customers of every auto-allocated pool "random even", up to weekly quotas."""
    given = 0
    policies = session.scalars(
        select(PoolPolicy).where(PoolPolicy.auto_allocate.is_(True)).order_by(PoolPolicy.pool_id)
    ).all()
    for policy in policies:
        pool = session.get(Pool, policy.pool_id)
        if pool is None or pool.territory_id is None:
            continue
        reps = eligible_reps(session, pool.territory_id)
        if not reps:
            continue
        counts = _allocation_counts(session, [r.id for r in reps], since=week_start(now))
        room = sum(max(policy.weekly_quota - n, 0) for n in counts.values())
        if room == 0:
            continue
        waiting = session.scalars(
            select(Customer.id)
            .where(Customer.pool_id == pool.id, Customer.owner_id.is_(None))
            .order_by(Customer.id)
            .limit(room)
        ).all()
        rng = random.Random(f"{pool.id}:{now.isoformat()}")  # noqa: S311 - a fair draw
        result = allocate_to(
            session, pool, policy, list(waiting), reps, now=now, by="rule:allocate_pools", rng=rng
        )
        given += len(result.given)
    return given
