"""Pool rules under the scheduler: registered, and safe with two schedulers at once."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from crm.customers.models import Customer, OwnerChange
from crm.customers.services import create_pool
from crm.directory.models import Territory
from crm.directory.services import create_user
from crm.pool import recycling
from crm.pool.models import PoolPolicy
from rules.models import RuleRun
from rules.runner import INTERVALS, RULES, run_rule
from tests.conftest import NOW
from tests.rules.pool_setup import add_rule, owned_customer, pool_customer

DAY = timedelta(days=1)


def test_every_rule_has_an_interval():
    assert set(RULES) == set(INTERVALS)
    assert {"recycle_pools", "allocate_pools", "task_reminders", "send_reminder_mail"} <= set(RULES)


def _run_twice_at_once(make_session, rule: str, now) -> list[RuleRun]:
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        barrier.wait(timeout=60)
        run_rule(make_session, rule, now)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with make_session() as check:
        return list(check.scalars(select(RuleRun).where(RuleRun.rule == rule)))


def test_recycle_two_schedulers_at_once_recycle_each_customer_once(committing_engine, monkeypatch):
    monkeypatch.setattr(recycling, "BATCH", 7)  # many small batches, so the two interleave
    make_session = sessionmaker(bind=committing_engine, expire_on_commit=False)
    with make_session() as setup:
        manager = create_user(setup, "mgr", "Mgr", ["manager"], now=NOW)
        pool = create_pool(setup, "Pool", "customer")
        setup.add(PoolPolicy(pool_id=pool.id, manager_id=manager.id, updated_at=NOW))
        add_rule(setup, pool, "no_followup", {"C": 30})
        reps = [create_user(setup, f"r{i}", f"R{i}", ["rep"], now=NOW) for i in range(4)]
        for i in range(120):
            owned_customer(setup, reps[i % 4], pool, owner_since=NOW - (40 if i % 3 else 5) * DAY)
        setup.commit()
    runs = _run_twice_at_once(make_session, "recycle_pools", NOW)
    assert [r.error for r in runs] == [None, None]
    assert sum(r.rows for r in runs) == 80
    with make_session() as check:
        recycled = check.scalars(
            select(OwnerChange.customer_id).where(OwnerChange.reason == "recycle")
        ).all()
        assert len(recycled) == len(set(recycled)) == 80
        in_pool = check.scalar(
            select(func.count()).select_from(Customer).where(Customer.owner_id.is_(None))
        )
        assert in_pool == 80
    again = run_rule(make_session, "recycle_pools", NOW)
    assert (again.rows, again.error) == (0, None)


def test_allocate_two_schedulers_at_once_keep_quotas(committing_engine):
    make_session = sessionmaker(bind=committing_engine, expire_on_commit=False)
    with make_session() as setup:
        territory = Territory(code="N", name="North")
        setup.add(territory)
        setup.flush()
        manager = create_user(setup, "mgr", "Mgr", ["manager"], now=NOW)
        pool = create_pool(setup, "Pool", "customer", territory_id=territory.id)
        setup.add(
            PoolPolicy(
                pool_id=pool.id,
                manager_id=manager.id,
                updated_at=NOW,
                auto_allocate=True,
                weekly_quota=5,
            )
        )
        for i in range(3):
            create_user(setup, f"r{i}", f"R{i}", ["rep"], now=NOW, territory_id=territory.id)
        for _ in range(40):
            pool_customer(setup, pool)
        setup.commit()
    runs = _run_twice_at_once(make_session, "allocate_pools", NOW)
    assert [r.error for r in runs] == [None, None]
    with make_session() as check:
        held = check.execute(
            select(Customer.owner_id, func.count())
            .where(Customer.owner_id.is_not(None))
            .group_by(Customer.owner_id)
        ).all()
        assert sorted(n for _, n in held) == [5, 5, 5]
        allocations = check.scalar(
            select(func.count()).select_from(OwnerChange).where(OwnerChange.reason == "allocation")
        )
        assert allocations == 15
