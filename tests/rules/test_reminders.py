"""Reminders (tasks, payments, follow-ups, approvals, recycling warnings), each sent once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from crm.customers.models import OwnerChange
from crm.directory.models import Notification
from crm.directory.services import create_user
from crm.pool.models import PoolPolicy
from engine.actor import Actor
from engine.instances import start_instance
from engine.models import HumanTask
from rules.models import Reminder, RuleRun
from rules.pool import warn_before_recycling
from rules.reminders import remind_approvals, remind_followups, remind_payments, remind_tasks
from rules.runner import run_rule
from tests.conftest import NOW
from tests.rules.pool_setup import (
    add_rule,
    log_activity,
    opportunity,
    order,
    owned_customer,
    pool_org,
)

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@pytest.fixture
def org(session, make_user, make_team):
    return pool_org(session, make_user, make_team, reps=2, warning_days=3)


def _notes(session, user=None, kind=None):
    query = select(Notification).order_by(Notification.id)
    if user is not None:
        query = query.where(Notification.user_id == user.id)
    if kind is not None:
        query = query.where(Notification.kind == kind)
    return list(session.scalars(query))


def _task(session, org, rep, **fields):
    """An open lead follow-up task of `rep` on one of their deals, with the fields given."""
    customer = owned_customer(session, rep, org.pool, owner_since=NOW - DAY)
    deal = opportunity(session, customer, rep, created_at=NOW - DAY)
    instance = start_instance(
        session,
        Actor(rep.username, frozenset({"rep"})),
        "lead_followup",
        now=NOW - 2 * DAY,
        data={"lead_name": "Acme", "budget": 1},
        subject=("opportunity", deal.id),
    ).instance
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
    for name, value in fields.items():
        setattr(task, name, value)
    session.flush()
    return task


def test_task_due_soon_and_overdue_are_reminded_once_each(session, org, deploy):
    deploy("lead_followup.bpmn")
    rep = org.reps[0]
    task = _task(session, org, rep, due_at=NOW + 30 * HOUR)
    assert remind_tasks(session, NOW) == 0
    assert remind_tasks(session, NOW + 6 * HOUR) == 1
    assert remind_tasks(session, NOW + 7 * HOUR) == 0
    assert remind_tasks(session, NOW + 30 * HOUR) == 1
    assert remind_tasks(session, NOW + 40 * HOUR) == 0
    notes = _notes(session, rep)
    assert [n.kind for n in notes] == ["task_due_soon", "task_overdue"]
    assert task.title in notes[0].message
    assert "2026-11-03 15:00 UTC" in notes[1].message


def test_task_reminders_skip_completed_tasks_and_speak_chinese(session, org, deploy, make_user):
    deploy("lead_followup.bpmn")
    done = _task(session, org, org.reps[0], due_at=NOW - HOUR)
    done.status = "completed"
    chinese = make_user("rep", locale="zh_CN")
    _task(session, org, chinese, due_at=NOW - HOUR)
    assert remind_tasks(session, NOW) == 1
    [note] = _notes(session)
    assert note.user_id == chinese.id
    assert note.message.startswith("您的任务")


def test_payment_installment_due_in_three_days(session, org):
    rep = org.reps[0]
    customer = owned_customer(session, rep, org.pool)
    today = NOW.date()
    sales_order = order(
        session,
        customer,
        rep,
        ends_on=None,
        installments=[(today + 4 * DAY, "600"), (today + 3 * DAY, "400")],
    )
    assert remind_payments(session, NOW) == 1
    assert remind_payments(session, NOW + HOUR) == 0
    [note] = _notes(session, rep, "installment_due")
    assert sales_order.number in note.message
    assert "400.00" in note.message
    assert remind_payments(session, NOW + DAY) == 1
    paid = sales_order.installments[0]
    paid.status = "paid"
    assert remind_payments(session, NOW + 2 * DAY) == 0


def test_followup_date_reached_reminds_the_owner_unless_followed_up(session, org):
    rep = org.reps[0]
    customer = owned_customer(session, rep, org.pool)
    log_activity(session, customer, rep, NOW - 5 * DAY, next_followup_on=(NOW + DAY).date())
    done = owned_customer(session, rep, org.pool)
    log_activity(session, done, rep, NOW - 5 * DAY, next_followup_on=NOW.date())
    log_activity(session, done, rep, NOW - DAY, subject="Visited")
    assert remind_followups(session, NOW) == 0
    assert remind_followups(session, NOW + DAY) == 1
    assert remind_followups(session, NOW + 2 * DAY) == 0
    [note] = _notes(session, rep, "followup_due")
    assert customer.name in note.message


def test_approval_waiting_past_its_sla_reminds_the_approver_once(session, org, deploy):
    deploy("lead_followup.bpmn")
    approver = org.reps[1]
    task = _task(
        session,
        org,
        approver,
        process_id="quote_approval",
        title="Approve quote Q-1",
        created_at=NOW - 23 * HOUR,
    )
    _task(session, org, approver, created_at=NOW - 5 * DAY)  # not an approval
    assert remind_approvals(session, NOW) == 0
    assert remind_approvals(session, NOW + HOUR) == 1
    assert remind_approvals(session, NOW + 5 * HOUR) == 0
    [note] = _notes(session, approver, "approval_overdue")
    assert task.title in note.message


def test_recycle_warning_goes_out_exactly_warning_days_before_and_once(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep = org.reps[0]
    since = NOW - 20 * DAY
    customer = owned_customer(session, rep, org.pool, owner_since=since)
    due = since + 30 * DAY
    warn_at = due - 3 * DAY
    assert warn_before_recycling(session, warn_at - timedelta(seconds=1)) == 0
    assert warn_before_recycling(session, warn_at) == 1
    assert warn_before_recycling(session, warn_at + HOUR) == 0
    assert warn_before_recycling(session, due - timedelta(seconds=1)) == 0
    [note] = _notes(session, rep, "recycle_warning")
    assert customer.name in note.message
    assert due.date().isoformat() in note.message
    reminder = session.scalars(select(Reminder).where(Reminder.kind == "recycle_warning")).one()
    assert (reminder.record_id, reminder.user_id, reminder.step) == (
        customer.id,
        rep.id,
        due.date().isoformat(),
    )


def test_recycle_warning_again_when_a_follow_up_moved_the_date(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    rep = org.reps[0]
    customer = owned_customer(session, rep, org.pool, owner_since=NOW - 28 * DAY)
    assert warn_before_recycling(session, NOW) == 1
    log_activity(session, customer, rep, NOW)
    assert warn_before_recycling(session, NOW + 27 * DAY) == 1
    assert len(_notes(session, rep, "recycle_warning")) == 2


def test_no_warning_for_exempt_customers(session, org):
    add_rule(session, org.pool, "no_followup", {"C": 30})
    owned_customer(session, org.reps[0], org.pool, owner_since=NOW - 28 * DAY, locked=True)
    assert warn_before_recycling(session, NOW) == 0


def test_two_schedulers_at_once_send_each_reminder_once(committing_engine):
    make_session = sessionmaker(bind=committing_engine, expire_on_commit=False)
    with make_session() as setup:
        from crm.customers.services import create_pool

        manager = create_user(setup, "mgr", "Mgr", ["manager"], now=NOW)
        pool = create_pool(setup, "Busy pool", "customer")
        setup.add(
            PoolPolicy(
                pool_id=pool.id,
                manager_id=manager.id,
                updated_at=NOW,
                warning_days=5,
                exempt_win_rate=None,
            )
        )
        add_rule(setup, pool, "no_followup", {"C": 30})
        reps = [create_user(setup, f"r{i}", f"R{i}", ["rep"], now=NOW) for i in range(5)]
        for i in range(60):
            rep = reps[i % 5]
            # 30 due now (recycled), 30 due within the warning days (warned, and a follow-up).
            due_now = i % 2 == 1
            since = NOW - (31 if due_now else 27) * DAY
            customer = owned_customer(setup, rep, pool, owner_since=since)
            followup = None if due_now else NOW.date()
            log_activity(setup, customer, rep, since, next_followup_on=followup)
        setup.commit()
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        barrier.wait(timeout=60)
        for rule in ("recycle_pools", "followup_reminders", "send_reminder_mail"):
            run_rule(make_session, rule, NOW)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with make_session() as check:
        runs = check.scalars(select(RuleRun)).all()
        assert len(runs) == 6
        assert [r.error for r in runs] == [None] * 6
        recycled = check.scalars(
            select(OwnerChange.customer_id).where(OwnerChange.reason == "recycle")
        ).all()
        assert len(recycled) == len(set(recycled)) == 30
        counts = dict(
            check.execute(select(Notification.kind, func.count()).group_by(Notification.kind)).all()
        )
        assert counts == {"recycle_warning": 30, "followup_due": 30}
        duplicates = check.execute(
            select(Notification.user_id, Notification.message, func.count())
            .group_by(Notification.user_id, Notification.message)
            .having(func.count() > 1)
        ).all()
        assert duplicates == []
        assert check.scalar(select(func.count()).select_from(Reminder)) == 60
