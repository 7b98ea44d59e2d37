"""Allocation: to chosen reps, random even within a territory, weekly quotas, fairness."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm.customers.models import Customer, OwnerChange
from crm.errors import Forbidden, InvalidInput
from crm.pool.allocation import allocate_customers, allocate_pools_weekly
from tests.conftest import NOW
from tests.rules.pool_setup import pool_customer, pool_org

DAY = timedelta(days=1)


@pytest.fixture
def org(session, make_user, make_team):
    return pool_org(session, make_user, make_team, reps=4, weekly_quota=1000)


def _held(session, reps):
    return [
        session.scalar(select(func.count()).select_from(Customer).where(Customer.owner_id == r.id))
        for r in reps
    ]


def test_allocation_to_chosen_reps_shares_evenly_and_records_it(session, org):
    chosen = org.reps[:2]
    customers = [pool_customer(session, org.pool) for _ in range(5)]
    result = allocate_customers(
        session,
        org.manager,
        org.pool.id,
        [c.id for c in customers],
        now=NOW,
        to_user_ids=[r.id for r in chosen],
        rng=random.Random(1),
    )
    assert len(result.given) == 5
    assert sorted(_held(session, chosen)) == [2, 3]
    assert _held(session, org.reps[2:]) == [0, 0]
    reasons = session.scalars(select(OwnerChange.reason)).all()
    assert reasons == ["allocation"] * 5


def test_random_even_allocation_stays_fair_over_many_runs(session, org):
    rng = random.Random(7)
    for run in range(40):
        batch = [pool_customer(session, org.pool) for _ in range(rng.randint(1, 5))]
        allocate_customers(
            session, org.manager, org.pool.id, [c.id for c in batch], now=NOW + run * DAY, rng=rng
        )
        held = _held(session, org.reps)
        assert max(held) - min(held) <= 1, f"run {run}: {held}"
    assert sum(_held(session, org.reps)) > 100


def test_random_even_skips_reps_on_leave_and_inactive_reps(session, org):
    away, gone = org.reps[0], org.reps[1]
    away.on_leave = True
    gone.active = False
    session.flush()
    batch = [pool_customer(session, org.pool) for _ in range(6)]
    allocate_customers(session, org.manager, org.pool.id, [c.id for c in batch], now=NOW)
    assert _held(session, org.reps) == [0, 0, 3, 3]


def test_weekly_quota_stops_allocation_until_next_week(session, org):
    org.policy.weekly_quota = 2
    batch = [pool_customer(session, org.pool) for _ in range(10)]
    result = allocate_customers(
        session, org.manager, org.pool.id, [c.id for c in batch], now=NOW, rng=random.Random(3)
    )
    assert len(result.given) == 8
    assert len(result.left) == 2
    assert _held(session, org.reps) == [2, 2, 2, 2]
    later_same_week = allocate_customers(
        session, org.manager, org.pool.id, result.left, now=NOW + 2 * DAY
    )
    assert later_same_week.given == {}
    monday = NOW - NOW.weekday() * DAY + 7 * DAY
    next_week = allocate_customers(session, org.manager, org.pool.id, result.left, now=monday)
    assert len(next_week.given) == 2


def test_allocation_needs_a_manager_in_charge(session, org, make_user):
    customer = pool_customer(session, org.pool)
    with pytest.raises(Forbidden):
        allocate_customers(session, org.reps[0], org.pool.id, [customer.id], now=NOW)
    stranger = make_user("manager")
    with pytest.raises(Forbidden):
        allocate_customers(session, stranger, org.pool.id, [customer.id], now=NOW)
    with pytest.raises(Forbidden):
        allocate_customers(
            session, stranger, org.pool.id, [customer.id], now=NOW, to_user_ids=[org.reps[0].id]
        )


def test_allocation_leaves_customers_claimed_meanwhile(session, org):
    customer = pool_customer(session, org.pool)
    customer.owner_id, customer.pool_id = org.reps[0].id, None
    session.flush()
    result = allocate_customers(session, org.manager, org.pool.id, [customer.id], now=NOW)
    assert result.given == {}


def test_allocation_to_inactive_chosen_rep_is_refused(session, org):
    org.reps[0].active = False
    customer = pool_customer(session, org.pool)
    with pytest.raises(InvalidInput):
        allocate_customers(
            session, org.manager, org.pool.id, [customer.id], now=NOW, to_user_ids=[org.reps[0].id]
        )


def test_weekly_rule_allocates_auto_pools_up_to_quotas_once(session, org):
    org.policy.auto_allocate = True
    org.policy.weekly_quota = 3
    for _ in range(20):
        pool_customer(session, org.pool)
    assert allocate_pools_weekly(session, NOW) == 12
    assert _held(session, org.reps) == [3, 3, 3, 3]
    assert allocate_pools_weekly(session, NOW + timedelta(hours=1)) == 0
    monday = NOW - NOW.weekday() * DAY + 7 * DAY
    assert allocate_pools_weekly(session, monday) == 8
    held = _held(session, org.reps)
    assert max(held) - min(held) <= 1


def test_allocation_to_chosen_reps_needs_at_least_one(session, org):
    customer = pool_customer(session, org.pool)
    with pytest.raises(InvalidInput):
        allocate_customers(
            session, org.manager, org.pool.id, [customer.id], now=NOW, to_user_ids=[]
        )
