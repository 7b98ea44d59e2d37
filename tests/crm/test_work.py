"""Tasks through CRM eyes: a rep works their own, a manager their team's, nobody else's."""

from __future__ import annotations

import pytest

from crm.directory.services import actor_for
from crm.errors import Forbidden, NotFound
from crm.leads.models import Lead
from crm.work import complete_task_as, get_task_as, reassign_task_as
from engine.instances import start_instance
from tests.conftest import NOW


@pytest.fixture
def rep_task(session, deploy, sales_org):
    """A 'Call the lead' task for north_rep1's lead (the Rep lane resolves to the lead owner)."""
    deploy("lead_followup.bpmn")
    rep = sales_org["north"]["reps"][0]
    lead = Lead(name="Acme", owner_id=rep.id, status="working", created_at=NOW)
    session.add(lead)
    session.flush()
    outcome = start_instance(
        session,
        actor_for(rep),
        "lead_followup",
        now=NOW,
        data={"lead_name": "Acme", "budget": 1},
        subject=("lead", lead.id),
    )
    [task] = outcome.new_tasks
    return task


def test_work_rep_lane_goes_to_the_record_owner(rep_task, sales_org):
    assert rep_task.assignee == sales_org["north"]["reps"][0].username


def test_work_other_rep_can_neither_see_nor_complete(session, rep_task, sales_org):
    other = sales_org["north"]["reps"][1]
    with pytest.raises(NotFound):
        get_task_as(session, other, rep_task.id)
    with pytest.raises(NotFound):
        complete_task_as(session, other, rep_task.id, {"outcome": "interested"}, now=NOW)
    assert rep_task.status == "open"


def test_work_manager_of_the_team_may_complete_and_reassign(session, rep_task, sales_org):
    north = sales_org["north"]
    reassign_task_as(
        session, north["manager"], rep_task.id, north["reps"][1], now=NOW, reason="leave"
    )
    assert rep_task.assignee == north["reps"][1].username
    with pytest.raises(Forbidden):
        reassign_task_as(
            session, north["manager"], rep_task.id, sales_org["south"]["reps"][0], now=NOW
        )
    outcome = complete_task_as(
        session, north["manager"], rep_task.id, {"outcome": "not_interested"}, now=NOW
    )
    assert outcome.instance.status == "completed"
    assert rep_task.completed_by == "north_manager"


def test_work_manager_of_another_team_is_refused(session, rep_task, sales_org):
    with pytest.raises(NotFound):
        complete_task_as(
            session, sales_org["south"]["manager"], rep_task.id, {"outcome": "x"}, now=NOW
        )


def test_work_director_sees_everything(session, rep_task, sales_org):
    assert get_task_as(session, sales_org["director"], rep_task.id).id == rep_task.id


def test_work_handover_moves_book_and_tasks_with_reason(
    session, rep_task, sales_org, make_customer
):
    from sqlalchemy import select

    from crm.customers.models import OwnerChange
    from crm.handover import execute_handover
    from engine.models import InstanceEvent

    leaving, receiver = sales_org["north"]["reps"]
    customer = make_customer(leaving)
    counts = execute_handover(session, leaving, receiver, "resigned", now=NOW, by="north_manager")
    assert counts["customers"] == 1
    assert counts["tasks"] == 1
    assert rep_task.assignee == receiver.username
    assert customer.owner_id == receiver.id
    change = session.scalars(
        select(OwnerChange)
        .where(OwnerChange.customer_id == customer.id)
        .order_by(OwnerChange.id.desc())
    ).first()
    assert (change.reason, change.note, change.changed_by) == (
        "handover",
        "resigned",
        "north_manager",
    )
    event = session.scalars(
        select(InstanceEvent).where(InstanceEvent.kind == "task_reassigned")
    ).one()
    assert event.detail == {"from": leaving.username, "to": receiver.username, "reason": "resigned"}
    assert leaving.active is False
