"""processes/invoice_request.bpmn: finance approves or rejects; the CRM records the decision."""

from __future__ import annotations

import pytest

from engine.errors import Forbidden, InvalidInput
from engine.instances import start_instance
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.processes.conftest import FINANCE, REP


@pytest.fixture
def request_(session, deployed, round_trip):
    outcome = start_instance(
        session,
        REP,
        "invoice_request",
        now=NOW,
        data={"invoice_request_id": 12, "order_id": 7, "amount": "1500.00"},
        business_key="invoice:12",
    )
    round_trip(outcome.instance)
    return outcome.instance


@pytest.mark.parametrize(
    ("form", "comment", "end"),
    [
        ({"decision": "approve"}, "", "end_approved"),
        (
            {"decision": "reject", "comment": "order not delivered yet"},
            "order not delivered yet",
            "end_rejected",
        ),
    ],
)
def test_invoice_request_finance_decides(
    request_, open_task, finish, crm, reached, form, comment, end
):
    task = open_task(request_, "review_invoice_request")
    assert (task.title, task.lane, task.candidate_role) == (
        "Review the invoice request",
        "Finance",
        "finance",
    )
    assert "**1500.00**" in task.instructions
    finish(request_, "review_invoice_request", FINANCE, form)
    assert crm.of("crm.decide_invoice_request") == [
        {"invoice_request_id": 12, "decision": form["decision"], "comment": comment}
    ]
    assert request_.status == "completed"
    assert end in reached(request_)
    assert ({"end_approved", "end_rejected"} - {end}).isdisjoint(reached(request_))


def test_invoice_request_rejection_needs_a_comment(session, request_, open_task, crm):
    task = open_task(request_, "review_invoice_request")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, FINANCE, task.id, {"decision": "reject"}, now=NOW)
    assert "comment" in error.value.fields
    assert crm.calls == []


def test_invoice_request_is_not_for_the_rep(session, request_, open_task):
    task = open_task(request_, "review_invoice_request")
    with pytest.raises(Forbidden):
        complete_task(session, REP, task.id, {"decision": "approve"}, now=NOW)
