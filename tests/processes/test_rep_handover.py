"""processes/rep_handover.bpmn: plan, execute, confirm; a handover to the leaving rep is refused."""

from __future__ import annotations

import pytest

from engine.errors import InvalidInput
from engine.instances import start_instance
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.processes.conftest import MANAGER


@pytest.fixture
def handover(session, deployed, round_trip):
    outcome = start_instance(
        session,
        MANAGER,
        "rep_handover",
        now=NOW,
        data={"leaving_user": "rita"},
        business_key="handover:rita",
    )
    round_trip(outcome.instance)
    return outcome.instance


def test_rep_handover_plan_execute_and_confirm(handover, open_task, finish, crm, data):
    plan = open_task(handover, "plan_handover")
    assert (plan.title, plan.lane, plan.candidate_role) == (
        "Plan the handover",
        "Manager",
        "manager",
    )
    assert plan.form == "rep_handover/plan_handover.schema.json"
    assert "rita" in plan.instructions

    finish(handover, "plan_handover", MANAGER, {"receiver": "raj", "reason": "leaves the company"})
    assert crm.of("crm.execute_handover") == [
        {"leaving_user": "rita", "receiver": "raj", "reason": "leaves the company"}
    ]
    confirm = open_task(handover, "confirm_handover")
    assert confirm.lane == "Manager"
    assert "**3** customers" in confirm.instructions
    assert "**2** opportunities" in confirm.instructions
    assert "**5** open tasks" in confirm.instructions

    finish(handover, "confirm_handover", MANAGER, {"confirmed": True})
    assert handover.status == "completed"
    assert data(handover)["handover"] == {"customers": 3, "opportunities": 2, "tasks": 5}


def test_rep_handover_to_the_leaving_rep_asks_again(handover, open_task, finish, crm):
    finish(handover, "plan_handover", MANAGER, {"receiver": "rita", "reason": "oops"})
    assert crm.of("crm.execute_handover") == []
    again = open_task(handover, "plan_handover")
    assert "cannot be handed over to rita" in again.instructions
    finish(handover, "plan_handover", MANAGER, {"receiver": "raj", "reason": "leaving"})
    assert [c["receiver"] for c in crm.of("crm.execute_handover")] == ["raj"]
    assert handover.status == "running"


def test_rep_handover_confirmation_must_be_ticked(session, handover, open_task, finish):
    finish(handover, "plan_handover", MANAGER, {"receiver": "raj", "reason": "leaving"})
    task = open_task(handover, "confirm_handover")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, MANAGER, task.id, {"confirmed": False}, now=NOW)
    assert "confirmed" in error.value.fields
    assert handover.status == "running"
