"""processes/payment_collection.bpmn: reminder, overdue chase, follow-ups, receipt at any time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.errors import InvalidInput, NotFound
from engine.instances import fire_instance_timers, send_message, start_instance
from engine.models import HumanTask, MessageSubscription
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.processes.conftest import MANAGER, REP, SYSTEM

DUE = "2026-11-20"
REMIND_AT = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)  # 09:00 UTC, three days before
OVERDUE_AT = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # 09:00 UTC, the day after
MINUTE = timedelta(minutes=1)


@pytest.fixture
def collection(session, deployed, round_trip):
    outcome = start_instance(
        session,
        SYSTEM,
        "payment_collection",
        now=NOW,
        data={"installment_id": 31, "order_id": 7, "due_date": DUE, "amount": "500.00"},
        business_key="installment:31",
    )
    round_trip(outcome.instance)
    return outcome.instance


@pytest.fixture
def fire(session, round_trip):
    def run(instance, at):
        fire_instance_timers(session, instance.id, now=at)
        round_trip(instance)

    return run


@pytest.fixture
def pay(session, round_trip):
    def run(instance, at, key="installment:31"):
        receipt = {"receipt_id": 9, "amount": "500.00", "paid_on": at.date().isoformat()}
        send_message(session, SYSTEM, "receipt_registered", key, receipt, now=at)
        round_trip(instance)

    return run


def test_payment_collection_start_waits_for_receipt_and_both_dates(
    session, collection, waiting_timers, open_ids
):
    assert collection.status == "waiting"
    assert open_ids(collection) == []
    assert waiting_timers(collection) == [
        ("reminder_due", REMIND_AT),
        ("payment_overdue", OVERDUE_AT),
    ]
    keys = session.execute(
        select(MessageSubscription.message_name, MessageSubscription.correlation_key).where(
            MessageSubscription.instance_id == collection.id
        )
    ).all()
    assert keys == [("receipt_registered", "installment:31")]


def test_payment_collection_reminder_opens_exactly_three_days_before_due(
    collection, fire, open_ids, open_task, finish, waiting_timers
):
    fire(collection, REMIND_AT - MINUTE)
    assert open_ids(collection) == []
    fire(collection, REMIND_AT)
    task = open_task(collection, "remind_customer")
    assert (task.title, task.lane, task.candidate_role) == (
        "Remind the customer to pay",
        "Rep",
        "rep",
    )
    assert task.form == "payment_collection/remind_customer.schema.json"
    assert "**2026-11-20**" in task.instructions
    assert "**500.00**" in task.instructions
    finish(collection, "remind_customer", REP, {"reminder_outcome": "promised"}, now=REMIND_AT)
    # Reminded, still waiting for the money and the overdue date.
    assert collection.status == "waiting"
    assert waiting_timers(collection) == [("payment_overdue", OVERDUE_AT)]


def test_payment_collection_overdue_escalates_to_manager_until_stopped(
    collection, fire, open_ids, open_task, finish, waiting_timers, pay
):
    fire(collection, REMIND_AT)
    fire(collection, OVERDUE_AT - MINUTE)
    assert open_ids(collection) == ["remind_customer"]
    fire(collection, OVERDUE_AT)
    assert open_ids(collection) == ["chase_overdue", "remind_customer"]
    chase = open_task(collection, "chase_overdue")
    assert (chase.title, chase.lane, chase.candidate_role) == (
        "Chase the overdue installment",
        "Manager",
        "manager",
    )
    finish(
        collection,
        "chase_overdue",
        MANAGER,
        {"chase_action": "follow_up", "follow_up_on": "2026-11-25", "chase_notes": "call Bob"},
        now=OVERDUE_AT,
    )
    follow_up = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert ("follow_up_due", follow_up) in waiting_timers(collection)
    fire(collection, follow_up - MINUTE)
    assert "chase_overdue" not in open_ids(collection)
    fire(collection, follow_up)
    assert open_task(collection, "chase_overdue").id != chase.id
    finish(
        collection,
        "chase_overdue",
        MANAGER,
        {"chase_action": "stop", "chase_notes": "new payment plan agreed"},
        now=follow_up,
    )
    assert open_ids(collection) == ["remind_customer"]
    assert collection.status == "running"
    # Chasing stopped, but the receipt still closes the installment.
    pay(collection, follow_up + timedelta(days=3))
    assert collection.status == "completed"
    assert open_ids(collection) == []


@pytest.mark.parametrize(
    "moment", ["before_reminder", "reminder_open", "chase_open", "waiting_for_follow_up"]
)
def test_payment_collection_receipt_closes_the_installment(
    session, collection, fire, finish, pay, open_ids, waiting_timers, data, moment
):
    if moment != "before_reminder":
        fire(collection, REMIND_AT)
    if moment in ("chase_open", "waiting_for_follow_up"):
        fire(collection, OVERDUE_AT)
    if moment == "waiting_for_follow_up":
        finish(
            collection,
            "chase_overdue",
            MANAGER,
            {"chase_action": "follow_up", "follow_up_on": "2026-12-01", "chase_notes": "soon"},
            now=OVERDUE_AT,
        )
    was_open = open_ids(collection)
    pay(collection, OVERDUE_AT + timedelta(hours=2))
    assert collection.status == "completed"
    assert open_ids(collection) == []
    assert waiting_timers(collection) == []
    statuses = session.scalars(
        select(HumanTask.status).where(
            HumanTask.instance_id == collection.id, HumanTask.bpmn_id.in_(was_open)
        )
    ).all()
    assert statuses == ["cancelled"] * len(was_open)
    paid = data(collection)
    assert (paid["status"], paid["paid_amount"], paid["paid_on"]) == (
        "paid",
        "500.00",
        "2026-11-21",
    )


def test_payment_collection_receipt_for_another_installment_finds_nobody(collection, pay):
    with pytest.raises(NotFound, match="installment:32"):
        pay(collection, NOW, key="installment:32")
    assert collection.status == "waiting"


def test_payment_collection_follow_up_needs_a_date(session, collection, fire, open_task):
    fire(collection, OVERDUE_AT)
    task = open_task(collection, "chase_overdue")
    with pytest.raises(InvalidInput) as error:
        complete_task(
            session, MANAGER, task.id, {"chase_action": "follow_up", "chase_notes": "x"}, now=NOW
        )
    assert "follow_up_on" in error.value.fields
