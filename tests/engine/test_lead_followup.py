"""Walk every branch of processes/lead_followup.bpmn through the persisted engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.actor import Actor
from engine.errors import Conflict, Forbidden, InvalidInput
from engine.instances import due_timer_instances, fire_instance_timers, send_message, start_instance
from engine.models import HumanTask, InstanceEvent, InstanceTimer
from engine.tasks import claim_task, complete_task
from engine.views import describe_instance
from tests.conftest import NOW

REP = Actor("rita", frozenset({"rep"}))
MANAGER = Actor("mona", frozenset({"manager"}))


@pytest.fixture
def started(session, deploy, round_trip):
    deploy("lead_followup.bpmn")

    def start(budget=20000, key="lead:7"):
        outcome = start_instance(
            session,
            REP,
            "lead_followup",
            now=NOW,
            data={"lead_name": "Acme <Ltd>", "budget": budget},
            business_key=key,
        )
        round_trip(outcome.instance)
        return outcome.instance

    return start


def _data(session, instance):
    return describe_instance(session, instance)["data"]


def test_lead_followup_start_opens_call_task_for_reps(session, started, open_task):
    instance = started()
    task = open_task(instance, "call_lead")
    assert task.title == "Call the lead"
    assert task.lane == "Rep"
    assert task.candidate_role == "rep"
    assert task.assignee is None
    assert task.form == "lead_followup/call_lead.schema.json"
    assert "Acme <Ltd>" in (task.instructions or "")
    assert instance.status == "running"
    assert _data(session, instance)["score"] == 80
    timers = session.scalars(
        select(InstanceTimer).where(InstanceTimer.instance_id == instance.id)
    ).all()
    assert [(t.bpmn_id, t.fire_at) for t in timers] == [("call_overdue", NOW + timedelta(days=3))]
    assert instance.next_timer_at == NOW + timedelta(days=3)


def test_lead_followup_interested_waits_for_message_then_won(
    session, started, open_task, round_trip
):
    instance = started()
    task = open_task(instance, "call_lead")
    claim_task(session, REP, task.id, now=NOW)
    complete_task(
        session, REP, task.id, {"outcome": "interested", "notes": "wants a quote"}, now=NOW
    )
    round_trip(instance)
    assert instance.status == "waiting"
    assert session.get(HumanTask, task.id).status == "completed"
    assert session.get(HumanTask, task.id).completed_by == "rita"

    send_message(session, REP, "quote_accepted", "lead:7", {"amount": 12345.678}, now=NOW)
    round_trip(instance)
    assert instance.status == "completed"
    assert instance.ended_at == NOW
    data = _data(session, instance)
    assert data["status"] == "won"
    assert data["won_amount"] == "12345.68"
    kinds = session.scalars(
        select(InstanceEvent.kind)
        .where(InstanceEvent.instance_id == instance.id)
        .order_by(InstanceEvent.id)
    ).all()
    assert kinds == ["started", "task_claimed", "task_completed", "message_received", "completed"]
    # The boundary timer died with the task it was attached to.
    assert due_timer_instances(session, NOW + timedelta(days=30)) == []


def test_lead_followup_message_with_wrong_key_finds_nobody(session, started, open_task):
    instance = started()
    complete_task(
        session, REP, open_task(instance, "call_lead").id, {"outcome": "interested"}, now=NOW
    )
    from engine.errors import NotFound

    with pytest.raises(NotFound, match="lead:8"):
        send_message(session, REP, "quote_accepted", "lead:8", {}, now=NOW)
    assert instance.status == "waiting"


def test_lead_followup_not_interested_is_lost(session, started, open_task, round_trip):
    instance = started()
    complete_task(
        session, REP, open_task(instance, "call_lead").id, {"outcome": "not_interested"}, now=NOW
    )
    round_trip(instance)
    assert instance.status == "completed"
    assert _data(session, instance)["status"] == "lost"


def test_lead_followup_no_answer_retries_twice_then_unreachable(
    session, started, open_task, round_trip
):
    instance = started()
    now = NOW
    for attempt in (1, 2):
        complete_task(
            session, REP, open_task(instance, "call_lead").id, {"outcome": "no_answer"}, now=now
        )
        round_trip(instance)
        assert instance.status == "waiting", f"attempt {attempt} should wait a day"
        assert instance.next_timer_at == now + timedelta(days=1)
        # Not yet due: nothing fires.
        assert fire_instance_timers(session, instance.id, now=now + timedelta(hours=23)) is not None
        assert instance.status == "waiting"
        now = now + timedelta(days=1)
        assert instance.id in due_timer_instances(session, now)
        fire_instance_timers(session, instance.id, now=now)
        round_trip(instance)
        assert instance.status == "running"
    complete_task(
        session, REP, open_task(instance, "call_lead").id, {"outcome": "no_answer"}, now=now
    )
    round_trip(instance)
    assert instance.status == "completed"
    data = _data(session, instance)
    assert data["status"] == "unreachable"
    assert data["attempts"] == 3


def test_lead_followup_overdue_call_asks_manager_to_chase(session, started, open_task, round_trip):
    instance = started()
    call = open_task(instance, "call_lead")
    fire_instance_timers(session, instance.id, now=NOW + timedelta(days=3))
    round_trip(instance)
    chase = open_task(instance, "chase_rep")
    assert chase.candidate_role == "manager"
    assert open_task(instance, "call_lead").id == call.id  # non-interrupting: the call stays open
    with pytest.raises(Forbidden):
        complete_task(session, REP, chase.id, {"comment": "hurry"}, now=NOW + timedelta(days=3))
    complete_task(
        session, MANAGER, chase.id, {"comment": "called Rita"}, now=NOW + timedelta(days=3)
    )
    round_trip(instance)
    assert instance.status == "running"
    complete_task(session, REP, call.id, {"outcome": "not_interested"}, now=NOW + timedelta(days=4))
    assert instance.status == "completed"


def test_lead_followup_form_errors_name_fields_and_keep_task_open(session, started, open_task):
    instance = started()
    task = open_task(instance, "call_lead")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, REP, task.id, {"notes": "x", "budget": -5}, now=NOW)
    assert set(error.value.fields) == {"outcome", "budget"}
    assert error.value.fields["outcome"] == ["is required"]
    with pytest.raises(InvalidInput) as error:
        complete_task(session, REP, task.id, {"outcome": "maybe"}, now=NOW)
    assert list(error.value.fields) == ["outcome"]
    assert session.get(HumanTask, task.id).status == "open"


def test_lead_followup_completed_task_cannot_be_completed_twice(session, started, open_task):
    instance = started()
    task = open_task(instance, "call_lead")
    complete_task(session, REP, task.id, {"outcome": "interested"}, now=NOW)
    with pytest.raises(Conflict, match="already completed"):
        complete_task(session, REP, task.id, {"outcome": "not_interested"}, now=NOW)


def test_lead_followup_claimed_task_is_not_anyone_elses(session, started, open_task):
    instance = started()
    task = open_task(instance, "call_lead")
    claim_task(session, REP, task.id, now=NOW)
    other = Actor("rob", frozenset({"rep"}))
    with pytest.raises(Conflict, match="claimed by rita"):
        claim_task(session, other, task.id, now=NOW)
    with pytest.raises(Forbidden):
        complete_task(session, other, task.id, {"outcome": "interested"}, now=NOW)


def test_lead_followup_release_and_reassign_are_logged(session, started, open_task):
    from engine.tasks import reassign_task, unclaim_task

    instance = started()
    task = open_task(instance, "call_lead")
    claim_task(session, REP, task.id, now=NOW)
    with pytest.raises(Forbidden):
        unclaim_task(session, Actor("rob", frozenset({"rep"})), task.id, now=NOW)
    unclaim_task(session, REP, task.id, now=NOW)
    assert task.assignee is None
    with pytest.raises(Forbidden):
        reassign_task(session, REP, task.id, "rob", now=NOW)
    ops = Actor("olga", frozenset({"ops"}))
    reassign_task(session, ops, task.id, "rob", now=NOW, reason="Rita is on leave")
    assert task.assignee == "rob"
    events = session.scalars(
        select(InstanceEvent)
        .where(InstanceEvent.instance_id == instance.id)
        .order_by(InstanceEvent.id)
    ).all()
    assert [e.kind for e in events][-3:] == ["task_claimed", "task_released", "task_reassigned"]
    assert events[-1].detail == {"from": None, "to": "rob", "reason": "Rita is on leave"}


def test_form_money_amounts_are_checked_in_decimal():
    from engine.tasks import validate_form_data

    schema = {"type": "object", "properties": {"amount": {"type": "number", "multipleOf": 0.01}}}
    validate_form_data(schema, {"amount": 19.99})  # a float division would call this invalid
    with pytest.raises(InvalidInput) as error:
        validate_form_data(schema, {"amount": 19.999})
    assert error.value.fields == {"amount": ["19.999 is not a multiple of 0.01"]}


def test_lead_followup_retries_the_same_when_every_change_restores_from_the_rows(
    session, started, open_task
):
    """As when each change lands on a worker that never saw the instance (no cached workflow)."""
    from engine.state import LIVE_CACHE

    instance = started()
    now = NOW
    for _ in (1, 2):
        LIVE_CACHE.clear()
        complete_task(
            session, REP, open_task(instance, "call_lead").id, {"outcome": "no_answer"}, now=now
        )
        assert instance.status == "waiting"
        assert instance.next_timer_at == now + timedelta(days=1)
        now = now + timedelta(days=1)
        LIVE_CACHE.clear()
        fire_instance_timers(session, instance.id, now=now)
        assert instance.status == "running"
        # The new call's deadline (timers fire a microsecond after they fall due).
        assert abs(instance.next_timer_at - (now + timedelta(days=3))) < timedelta(milliseconds=1)
    timers = session.execute(
        select(InstanceTimer.bpmn_id, InstanceTimer.status)
        .where(InstanceTimer.instance_id == instance.id)
        .order_by(InstanceTimer.id)
    ).all()
    # Each wait recorded once and closed once: nothing written twice, nothing left waiting.
    assert [tuple(t) for t in timers] == [
        ("call_overdue", "done"),
        ("wait_retry", "done"),
        ("call_overdue", "done"),
        ("wait_retry", "done"),
        ("call_overdue", "waiting"),
    ]
    open_calls = session.scalars(
        select(HumanTask.bpmn_id).where(
            HumanTask.instance_id == instance.id, HumanTask.status == "open"
        )
    ).all()
    assert open_calls == ["call_lead"]
