"""Claiming and releasing: masking, caps per day and tier, cooldown, history, races."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from crm.customers.models import Customer, OwnerChange
from crm.directory.models import User
from crm.directory.services import create_user
from crm.errors import Conflict, Forbidden, InvalidInput, NotFound
from crm.pool.services import (
    claim_customer,
    customer_view,
    list_pool_customers,
    mask_email,
    mask_phone,
    release_customer,
)
from tests.conftest import NOW
from tests.rules.pool_setup import claim_limit, owned_customer, pool_customer, pool_org

DAY = timedelta(days=1)


@pytest.fixture
def org(session, make_user, make_team):
    return pool_org(session, make_user, make_team, cooldown_days=30, daily_claim_cap=3)


def test_masks_keep_enough_to_recognise_a_customer():
    assert mask_phone("138-1234-5678") == "138****5678"
    assert mask_email("john.doe@acme.com") == "j***@acme.com"
    assert mask_phone(None) is None


def test_pool_customers_are_masked_until_claimed(session, org):
    rep = org.reps[0]
    customer = pool_customer(session, org.pool, phone="13812345678", email="buyer@client.cn")
    listed = list_pool_customers(session, rep, org.pool.id)
    assert [(v.name, v.phone, v.email, v.masked) for v in listed] == [
        (customer.name, "138****5678", "b***@client.cn", True)
    ]
    claim_customer(session, rep, customer.id, now=NOW)
    view = customer_view(session, rep, customer.id)
    assert (view.phone, view.email, view.masked) == ("13812345678", "buyer@client.cn", False)
    with pytest.raises(NotFound):
        customer_view(session, org.reps[1], customer.id)


def test_claim_makes_the_rep_owner_and_records_it(session, org):
    rep = org.reps[0]
    customer = pool_customer(session, org.pool)
    claim_customer(session, rep, customer.id, now=NOW)
    assert (customer.owner_id, customer.pool_id, customer.home_pool_id) == (
        rep.id,
        None,
        org.pool.id,
    )
    assert customer.owner_since == NOW
    change = session.scalars(
        select(OwnerChange).where(OwnerChange.customer_id == customer.id)
    ).one()
    assert (change.reason, change.to_user_id, change.detail) == (
        "claim",
        rep.id,
        {"pool": org.pool.id},
    )


def test_claim_of_an_owned_customer_is_refused(session, org):
    customer = pool_customer(session, org.pool)
    claim_customer(session, org.reps[0], customer.id, now=NOW)
    with pytest.raises(Conflict, match="someone claimed it first"):
        claim_customer(session, org.reps[1], customer.id, now=NOW)


def test_only_reps_claim(session, org):
    customer = pool_customer(session, org.pool)
    with pytest.raises(Forbidden):
        claim_customer(session, org.manager, customer.id, now=NOW)


def test_claim_daily_cap_counts_the_utc_day(session, org):
    rep = org.reps[0]
    customers = [pool_customer(session, org.pool) for _ in range(4)]
    for customer in customers[:3]:
        claim_customer(session, rep, customer.id, now=NOW)
    with pytest.raises(Forbidden, match="today's 3 claims"):
        claim_customer(session, rep, customers[3].id, now=NOW + timedelta(hours=1))
    next_day = NOW.replace(hour=0) + DAY
    claim_customer(session, rep, customers[3].id, now=next_day)
    assert customers[3].owner_id == rep.id


def test_claim_tier_caps_on_held_customers_and_daily_claims(session, org):
    claim_limit(session, org.pool, "A", max_held=2, daily_claims=None)
    claim_limit(session, org.pool, "B", max_held=None, daily_claims=1)
    rep = org.reps[0]
    owned_customer(session, rep, org.pool, tier="A")
    first_a, second_a = (pool_customer(session, org.pool, tier="A") for _ in range(2))
    claim_customer(session, rep, first_a.id, now=NOW)
    with pytest.raises(Forbidden, match="already hold 2 tier A"):
        claim_customer(session, rep, second_a.id, now=NOW)
    claim_customer(session, org.reps[1], second_a.id, now=NOW)  # another rep has room
    b1, b2 = (pool_customer(session, org.pool, tier="B") for _ in range(2))
    claim_customer(session, rep, b1.id, now=NOW)
    with pytest.raises(Forbidden, match="1 claims of tier B"):
        claim_customer(session, rep, b2.id, now=NOW)
    c = pool_customer(session, org.pool, tier="C")
    claim_customer(session, rep, c.id, now=NOW)  # tier C has no limit of its own


def test_release_needs_a_reason_and_goes_to_the_home_pool(session, org):
    rep = org.reps[0]
    customer = owned_customer(session, rep, org.pool)
    with pytest.raises(InvalidInput):
        release_customer(session, rep, customer.id, "  ", now=NOW)
    release_customer(session, rep, customer.id, "moved abroad", now=NOW)
    assert (customer.owner_id, customer.pool_id) == (None, org.pool.id)
    change = session.scalars(
        select(OwnerChange).where(
            OwnerChange.customer_id == customer.id, OwnerChange.reason == "release"
        )
    ).one()
    assert (change.from_user_id, change.note) == (rep.id, "moved abroad")


def test_release_of_someone_elses_customer_is_refused(session, org):
    customer = owned_customer(session, org.reps[0], org.pool)
    with pytest.raises(NotFound):
        release_customer(session, org.reps[1], customer.id, "not mine", now=NOW)
    release_customer(session, org.manager, customer.id, "rep left the account", now=NOW)
    assert customer.owner_id is None


def test_cooldown_refuses_the_previous_owner_until_it_ends(session, org):
    rep, other = org.reps[0], org.reps[1]
    customer = owned_customer(session, rep, org.pool)
    release_customer(session, rep, customer.id, "no budget", now=NOW)
    with pytest.raises(Forbidden, match="may claim it again from"):
        claim_customer(session, rep, customer.id, now=NOW + 29 * DAY)
    claim_customer(session, other, customer.id, now=NOW + DAY)  # others may
    release_customer(session, other, customer.id, "no budget", now=NOW + 2 * DAY)
    claim_customer(session, rep, customer.id, now=NOW + 30 * DAY)
    assert customer.owner_id == rep.id


def test_cooldown_applies_after_recycling_too(session, org):
    from crm.pool.recycling import recycle_due_customers
    from tests.rules.pool_setup import add_rule

    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep = org.reps[0]
    customer = owned_customer(session, rep, org.pool)
    recycle_due_customers(session, NOW)
    with pytest.raises(Forbidden):
        claim_customer(session, rep, customer.id, now=NOW + 5 * DAY)


def test_claim_fifty_at_once_gives_exactly_one_owner(committing_engine):
    """50 reps press "claim" on the same pool customer at the same moment."""
    make_session = sessionmaker(bind=committing_engine, expire_on_commit=False)
    with make_session() as setup:
        from crm.customers.services import create_pool
        from crm.pool.models import PoolPolicy

        admin = create_user(setup, "boss", "Boss", ["manager"], now=NOW)
        pool = create_pool(setup, "Race pool", "customer")
        setup.add(PoolPolicy(pool_id=pool.id, manager_id=admin.id, updated_at=NOW))
        reps = [create_user(setup, f"racer{i}", f"Racer {i}", ["rep"], now=NOW) for i in range(50)]
        customer = pool_customer(setup, pool)
        setup.commit()
        rep_ids, customer_id = [r.id for r in reps], customer.id
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def claim(rep_id: int) -> None:
        barrier.wait(timeout=60)
        with make_session() as session:
            rep = session.get(User, rep_id)
            assert rep is not None
            try:
                claim_customer(session, rep, customer_id, now=NOW)
                session.commit()
                result = "won"
            except Conflict as exc:
                session.rollback()
                result = f"refused: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=claim, args=(rep_id,)) for rep_id in rep_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert outcomes.count("won") == 1
    refusals = [o for o in outcomes if o != "won"]
    assert len(refusals) == 49
    assert all("someone claimed it first" in o for o in refusals)
    with make_session() as check:
        owner = check.scalar(select(Customer.owner_id).where(Customer.id == customer_id))
        assert owner in rep_ids
        claims = check.scalar(
            select(func.count()).select_from(OwnerChange).where(OwnerChange.reason == "claim")
        )
        assert claims == 1
