"""Recycling: each trigger, day limits per tier, exemptions, history, tasks, preview, reruns."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from crm.activities.models import Activity
from crm.customers.models import Customer, OwnerChange
from crm.pool.recycling import preview_recycling, recycle_due_customers
from engine.actor import Actor
from engine.instances import start_instance
from engine.models import HumanTask, InstanceEvent
from tests.conftest import NOW
from tests.rules.pool_setup import (
    add_rule,
    log_activity,
    open_tasks,
    opportunity,
    order,
    owned_customer,
    pending_quote,
    pool_org,
)

DAY = timedelta(days=1)


@pytest.fixture
def org(session, make_user, make_team):
    return pool_org(session, make_user, make_team)


def recycled(session, now):
    return recycle_due_customers(session, now)[0]


def _owner(session, customer):
    session.expire(customer)
    return customer.owner_id


def test_recycle_no_followup_counts_from_the_last_activity(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep = org.reps[0]
    idle = owned_customer(session, rep, org.pool)
    log_activity(session, idle, rep, NOW - 30 * DAY)
    busy = owned_customer(session, rep, org.pool)
    log_activity(session, busy, rep, NOW - 29 * DAY)
    assert recycled(session, NOW) == 1
    assert _owner(session, idle) is None
    assert idle.pool_id == org.pool.id
    assert _owner(session, busy) == rep.id


def test_recycle_counts_from_taking_over_when_nothing_happened_since(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep = org.reps[0]
    fresh = owned_customer(session, rep, org.pool, owner_since=NOW - 10 * DAY)
    log_activity(session, fresh, org.reps[1], NOW - 300 * DAY)  # the previous owner's call
    assert recycled(session, NOW) == 0
    assert recycled(session, NOW + 20 * DAY) == 1


def test_recycle_no_opportunity_needs_none_open_and_none_recent(session, org):
    add_rule(session, org.pool, "no_opportunity", {"C": 60})
    rep = org.reps[0]
    none = owned_customer(session, rep, org.pool)
    old_closed = owned_customer(session, rep, org.pool)
    opportunity(
        session, old_closed, rep, created_at=NOW - 90 * DAY, status="lost", closed_at=NOW - 61 * DAY
    )
    recent = owned_customer(session, rep, org.pool)
    opportunity(session, recent, rep, created_at=NOW - 10 * DAY, status="lost", closed_at=NOW - DAY)
    still_open = owned_customer(session, rep, org.pool)
    opportunity(session, still_open, rep, created_at=NOW - 100 * DAY)
    assert recycled(session, NOW) == 2
    assert [_owner(session, c) for c in (none, old_closed, recent, still_open)] == [
        None,
        None,
        rep.id,
        rep.id,
    ]


def test_recycle_no_deal_counts_from_the_last_won_deal(session, org):
    add_rule(session, org.pool, "no_deal", {"C": 180})
    rep = org.reps[0]
    never = owned_customer(session, rep, org.pool, owner_since=NOW - 181 * DAY)
    won = owned_customer(session, rep, org.pool, owner_since=NOW - 400 * DAY)
    opportunity(
        session, won, rep, created_at=NOW - 200 * DAY, status="won", closed_at=NOW - 100 * DAY
    )
    lost = owned_customer(session, rep, org.pool, owner_since=NOW - 400 * DAY)
    opportunity(
        session, lost, rep, created_at=NOW - 20 * DAY, status="lost", closed_at=NOW - 10 * DAY
    )
    assert recycled(session, NOW) == 2
    assert [_owner(session, c) for c in (never, won, lost)] == [None, rep.id, None]


def test_recycle_stage_unchanged_needs_an_open_deal_stuck_in_its_stage(session, org):
    add_rule(session, org.pool, "stage_unchanged", {"C": 45})
    rep = org.reps[0]
    stuck = owned_customer(session, rep, org.pool)
    opportunity(
        session,
        stuck,
        rep,
        created_at=NOW - 100 * DAY,
        stage="qualify",
        stage_since=NOW - 46 * DAY,
        stage_win_rate=10,
    )
    moving = owned_customer(session, rep, org.pool)
    opportunity(
        session,
        moving,
        rep,
        created_at=NOW - 100 * DAY,
        stage="propose",
        stage_since=NOW - 5 * DAY,
        stage_win_rate=30,
    )
    no_deal = owned_customer(session, rep, org.pool)
    assert recycled(session, NOW) == 1
    assert [_owner(session, c) for c in (stuck, moving, no_deal)] == [None, rep.id, rep.id]


def test_recycle_contract_ended_waits_for_every_contract_to_end(session, org):
    add_rule(session, org.pool, "contract_ended", {"C": 30})
    rep = org.reps[0]
    ended = owned_customer(session, rep, org.pool)
    order(session, ended, rep, ends_on=(NOW - 31 * DAY).date())
    just_ended = owned_customer(session, rep, org.pool)
    order(session, just_ended, rep, ends_on=(NOW - 10 * DAY).date())
    renewed = owned_customer(session, rep, org.pool)
    order(session, renewed, rep, ends_on=(NOW - 100 * DAY).date())
    order(session, renewed, rep, ends_on=(NOW + 300 * DAY).date())
    no_contract = owned_customer(session, rep, org.pool)
    assert recycled(session, NOW) == 1
    assert [_owner(session, c) for c in (ended, just_ended, renewed, no_contract)] == [
        None,
        rep.id,
        rep.id,
        rep.id,
    ]
    change = session.scalars(
        select(OwnerChange).where(
            OwnerChange.customer_id == ended.id, OwnerChange.reason == "recycle"
        )
    ).one()
    assert change.detail["days"] == 31


def test_recycle_day_limits_differ_by_tier_and_a_tier_without_limit_stays(session, org):
    add_rule(session, org.pool, "no_followup", {"A": 90, "C": 30})
    rep = org.reps[0]
    since = NOW - 60 * DAY
    a = owned_customer(session, rep, org.pool, tier="A", owner_since=since)
    c = owned_customer(session, rep, org.pool, tier="C", owner_since=since)
    e = owned_customer(session, rep, org.pool, tier="E", owner_since=NOW - 900 * DAY)
    assert recycled(session, NOW) == 1
    assert [_owner(session, x) for x in (a, c, e)] == [rep.id, None, rep.id]
    assert recycled(session, NOW + 30 * DAY) == 1
    assert [_owner(session, x) for x in (a, e)] == [None, rep.id]


def test_recycle_exemptions_locked_late_deal_and_open_approval(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep = org.reps[0]
    locked = owned_customer(session, rep, org.pool, locked=True)
    late = owned_customer(session, rep, org.pool)
    opportunity(
        session, late, rep, created_at=NOW - 100 * DAY, stage="negotiate", stage_win_rate=80
    )
    early = owned_customer(session, rep, org.pool)
    opportunity(session, early, rep, created_at=NOW - 100 * DAY, stage="qualify", stage_win_rate=10)
    approval = owned_customer(session, rep, org.pool)
    pending_quote(session, approval, rep)
    assert recycled(session, NOW) == 1
    assert [_owner(session, c) for c in (locked, late, early, approval)] == [
        rep.id,
        rep.id,
        None,
        rep.id,
    ]


def test_recycle_exemptions_are_settings(session, org):
    org.policy.exempt_locked = False
    org.policy.exempt_open_approval = False
    org.policy.exempt_win_rate = None
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep = org.reps[0]
    owned_customer(session, rep, org.pool, locked=True)
    late = owned_customer(session, rep, org.pool)
    opportunity(session, late, rep, created_at=NOW - 100 * DAY, stage_win_rate=80)
    approval = owned_customer(session, rep, org.pool)
    pending_quote(session, approval, rep)
    assert recycled(session, NOW) == 3


def test_recycle_records_the_rule_and_its_numbers_and_keeps_activities(session, org):
    rule = add_rule(session, org.pool, "no_followup", {"B": 60}, target_pool_id=org.other_pool.id)
    rep = org.reps[0]
    customer = owned_customer(session, rep, org.pool, tier="B")
    log_activity(session, customer, rep, NOW - 75 * DAY)
    assert recycled(session, NOW) == 1
    session.expire_all()
    assert customer.pool_id == org.other_pool.id
    assert customer.home_pool_id == org.other_pool.id
    assert customer.owner_since is None
    change = session.scalars(
        select(OwnerChange)
        .where(OwnerChange.customer_id == customer.id)
        .order_by(OwnerChange.id.desc())
        .limit(1)
    ).one()
    assert (change.reason, change.from_user_id, change.to_user_id) == ("recycle", rep.id, None)
    assert change.detail["rule"] == rule.id
    assert change.detail["trigger"] == "no_followup"
    assert (change.detail["days"], change.detail["threshold"]) == (75, 60)
    assert change.detail["target_pool"] == org.other_pool.id
    assert change.detail["since"] == (NOW - 75 * DAY).isoformat()
    assert change.note == "no_followup: 75 days (limit 60)"
    assert change.changed_by == f"rule:{rule.id}"
    history = session.scalars(
        select(OwnerChange.reason).where(OwnerChange.customer_id == customer.id)
    ).all()
    assert history == ["claim", "recycle"]
    assert (
        session.scalar(
            select(func.count()).select_from(Activity).where(Activity.customer_id == customer.id)
        )
        == 1
    )


def test_recycle_hands_the_old_owners_open_tasks_to_the_pool_manager(session, org, deploy):
    deploy("lead_followup.bpmn")
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep, other = org.reps[0], org.reps[1]
    customer = owned_customer(session, rep, org.pool)
    deal = opportunity(session, customer, rep, created_at=NOW - 100 * DAY, stage_win_rate=10)
    kept = owned_customer(session, rep, org.pool, owner_since=NOW - DAY)
    kept_deal = opportunity(session, kept, rep, created_at=NOW - DAY, stage_win_rate=10)
    for subject in (deal, kept_deal):
        start_instance(
            session,
            Actor(rep.username, frozenset({"rep"})),
            "lead_followup",
            now=NOW - 40 * DAY,
            data={"lead_name": "Acme", "budget": 1},
            subject=("opportunity", subject.id),
        )
    theirs = open_tasks(session, subject_id=deal.id, subject_type="opportunity")
    assert [t.assignee or t.candidate_user for t in theirs] == [rep.username]
    assert recycled(session, NOW) == 1
    session.expire_all()
    moved = open_tasks(session, subject_id=deal.id, subject_type="opportunity")
    assert [t.assignee for t in moved] == [org.manager.username]
    untouched = open_tasks(session, subject_id=kept_deal.id, subject_type="opportunity")
    assert [t.assignee or t.candidate_user for t in untouched] == [rep.username]
    event = session.scalars(
        select(InstanceEvent).where(
            InstanceEvent.kind == "task_reassigned",
            InstanceEvent.instance_id == moved[0].instance_id,
        )
    ).one()
    assert event.detail["from"] == rep.username
    assert event.detail["to"] == org.manager.username
    assert other.username not in {t.assignee for t in session.scalars(select(HumanTask))}


def test_recycle_twice_changes_nothing_the_second_time(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    add_rule(session, org.pool, "no_deal", {"C": 30})
    for rep in org.reps:
        owned_customer(session, rep, org.pool)
    assert recycled(session, NOW) == 3
    changes = session.scalar(select(func.count()).select_from(OwnerChange))
    assert recycled(session, NOW) == 0
    assert session.scalar(select(func.count()).select_from(OwnerChange)) == changes


def test_recycle_first_matching_rule_wins(session, org):
    first = add_rule(session, org.pool, "no_followup", {"C": 30})
    add_rule(session, org.pool, "no_deal", {"C": 30})
    customer = owned_customer(session, org.reps[0], org.pool)
    assert recycled(session, NOW) == 1
    change = session.scalars(
        select(OwnerChange).where(
            OwnerChange.customer_id == customer.id, OwnerChange.reason == "recycle"
        )
    ).one()
    assert change.detail["rule"] == first.id


def test_recycle_ignores_customers_of_other_pools_and_inactive_rules(
    session, org, make_user, make_team
):
    elsewhere = pool_org(session, make_user, make_team, reps=1)
    add_rule(session, org.pool, "no_followup", {"C": 30})
    add_rule(session, org.pool, "no_deal", {"C": 1}, active=False)
    outside = owned_customer(session, elsewhere.reps[0], elsewhere.pool)
    assert recycled(session, NOW) == 0
    assert _owner(session, outside) == elsewhere.reps[0].id


def test_recycle_governs_customers_without_a_home_pool_by_territory(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    customer = owned_customer(session, org.reps[0], org.pool)
    customer.home_pool_id = None
    session.flush()
    assert recycled(session, NOW) == 1
    session.expire(customer)
    assert customer.home_pool_id == org.pool.id


def test_preview_lists_exactly_what_the_run_recycles_and_why(session, org):
    add_rule(session, org.pool, "no_followup", {"A": 90, "C": 30})
    add_rule(session, org.pool, "no_deal", {"A": 60})
    rep = org.reps[0]
    due = [
        owned_customer(session, rep, org.pool, tier="C"),
        owned_customer(session, rep, org.pool, tier="A", owner_since=NOW - 70 * DAY),
    ]
    owned_customer(session, rep, org.pool, tier="C", owner_since=NOW - 5 * DAY)
    owned_customer(session, rep, org.pool, tier="C", locked=True)
    tomorrow = NOW + DAY
    preview = preview_recycling(session, tomorrow, pool_id=org.pool.id)
    assert sorted(c.customer_id for c in preview) == sorted(c.id for c in due)
    by_id = {c.customer_id: c for c in preview}
    assert (by_id[due[1].id].trigger, by_id[due[1].id].idle_days) == ("no_deal", 71)
    assert by_id[due[0].id].trigger == "no_followup"
    assert recycled(session, tomorrow) == 2
    gone = session.scalars(
        select(OwnerChange.customer_id).where(OwnerChange.reason == "recycle")
    ).all()
    assert sorted(gone) == sorted(c.customer_id for c in preview)
    assert preview_recycling(session, tomorrow, pool_id=org.pool.id) == []


def test_recycle_moves_the_customer_into_the_pool_for_claiming(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    customer = owned_customer(session, org.reps[0], org.pool)
    recycled(session, NOW)
    in_pool = session.scalars(
        select(Customer.id).where(Customer.pool_id == org.pool.id, Customer.owner_id.is_(None))
    ).all()
    assert in_pool == [customer.id]


def test_preview_shows_other_managers_only_their_teams_customers(
    session, org, make_user, make_team
):
    from crm.errors import Forbidden
    from crm.pool.settings import preview_for

    add_rule(session, org.pool, "no_followup", {"C": 30})
    outsider_manager = make_user("manager")
    outsider = make_user("rep", team=make_team(manager=outsider_manager))
    theirs = owned_customer(session, outsider, org.pool)
    ours = owned_customer(session, org.reps[0], org.pool)
    everyone = {c.customer_id for c in preview_for(session, org.manager, org.pool.id, NOW)}
    assert everyone == {theirs.id, ours.id}
    assert [c.customer_id for c in preview_for(session, outsider_manager, org.pool.id, NOW)] == [
        theirs.id
    ]
    with pytest.raises(Forbidden):
        preview_for(session, org.reps[0], org.pool.id, NOW)


def test_recycle_splits_due_from_warned_to_the_microsecond_like_the_preview(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rule = add_rule(session, org.pool, "contract_ended", {"B": 20})
    rep = org.reps[0]
    tick = timedelta(microseconds=1)
    exactly = owned_customer(session, rep, org.pool)
    log_activity(session, exactly, rep, NOW - 30 * DAY)
    short = owned_customer(session, rep, org.pool)
    log_activity(session, short, rep, NOW - 30 * DAY + tick)
    odd = owned_customer(session, rep, org.pool)
    odd_at = NOW - 45 * DAY - timedelta(hours=23, minutes=59, seconds=59, microseconds=500000)
    log_activity(session, odd, rep, odd_at)
    contract = owned_customer(session, rep, org.pool, tier="B")
    order(session, contract, rep, ends_on=(NOW - 25 * DAY).date())
    preview = {c.customer_id: c for c in preview_recycling(session, NOW)}
    warned = []

    def warn(soon):
        warned.extend(soon)
        return len(soon)

    assert recycle_due_customers(session, NOW, warn=warn) == (3, 1)
    assert [c.customer_id for c in warned] == [short.id]
    assert warned[0].due_at == NOW + tick
    assert sorted(preview) == sorted(c.id for c in (exactly, odd, contract))
    session.expire_all()
    assert [c.owner_id for c in (exactly, short, odd, contract)] == [None, rep.id, None, None]
    changes = {
        c.customer_id: c
        for c in session.scalars(select(OwnerChange).where(OwnerChange.reason == "recycle"))
    }
    assert changes[exactly.id].note == "no_followup: 30 days (limit 30)"
    assert changes[odd.id].note == "no_followup: 45 days (limit 30)"
    # PostgreSQL writes the start of idleness to the second, SQLite as it is.
    since = datetime.fromisoformat(changes[odd.id].detail["since"])
    assert since.replace(microsecond=0) == odd_at.replace(microsecond=0)
    ended = datetime.combine(NOW.date() - 25 * DAY, time(0), tzinfo=UTC)
    assert changes[contract.id].detail == {
        "rule": rule.id,
        "trigger": "contract_ended",
        "days": (NOW - ended).days,
        "threshold": 20,
        "since": ended.isoformat(),
        "pool": org.pool.id,
        "target_pool": org.pool.id,
    }
    assert changes[contract.id].note == f"contract_ended: {(NOW - ended).days} days (limit 20)"
    for customer_id, change in changes.items():
        assert change.detail["days"] == preview[customer_id].idle_days
