"""processes/lead_to_cash.bpmn: qualify, convert into the chosen pipeline, order, get paid."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.errors import InvalidInput
from engine.instances import fire_instance_timers, send_message, start_instance
from engine.models import MessageSubscription
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.processes.conftest import REP, SYSTEM

CONVERT = {
    "qualification": "convert",
    "customer_name": "Acme Ltd",
    "contact_name": "Bob Stone",
    "contact_title": "CTO",
    "contact_buying_role": "decision_maker",
    "opportunity_name": "Acme - 50 seats",
    "amount": 24000,
    "currency": "EUR",
    "expected_close": "2026-12-15",
    "pipeline": "new_business",
}
NEW_BUSINESS = ["qualification", "needs_analysis", "proposal", "negotiation", "closing"]
PLAN = [{"due_date": "2026-12-01", "amount": 12000}, {"due_date": "2027-01-01", "amount": 12000}]


@pytest.fixture
def lead(session, deployed, round_trip):
    outcome = start_instance(
        session,
        REP,
        "lead_to_cash",
        now=NOW,
        data={"lead_id": 7, "lead_name": "Bob Stone", "company": "Acme Ltd", "owner": "rita"},
        business_key="lead:7",
    )
    round_trip(outcome.instance)
    return outcome.instance


def test_lead_to_cash_start_asks_the_rep_to_qualify(lead, open_task, data):
    task = open_task(lead, "qualify_lead")
    assert (task.title, task.lane, task.candidate_role) == ("Qualify the lead", "Rep", "rep")
    assert task.form == "lead_to_cash/qualify_lead.schema.json"
    assert task.instructions.startswith("## Qualify Bob Stone (Acme Ltd)")
    # Suggestions for the conversion form, taken from the lead.
    assert (data(lead)["customer_name"], data(lead)["contact_name"]) == ("Acme Ltd", "Bob Stone")


@pytest.mark.parametrize(
    ("decision", "operation", "end"),
    [
        ("disqualify", "crm.disqualify_lead", "end_disqualified"),
        ("return_to_pool", "crm.return_lead_to_pool", "end_returned"),
    ],
)
def test_lead_to_cash_lead_not_converted(lead, finish, crm, reached, decision, operation, end):
    finish(lead, "qualify_lead", REP, {"qualification": decision, "reason": "no budget this year"})
    assert crm.names() == [operation]
    assert crm.of(operation) == [{"lead_id": 7, "reason": "no budget this year"}]
    assert lead.status == "completed"
    assert end in reached(lead)


@pytest.mark.parametrize(
    ("form", "missing"),
    [
        ({"qualification": "convert", "customer_name": "Acme"}, {"amount", "pipeline", "currency"}),
        ({"qualification": "disqualify"}, {"reason"}),
        ({"qualification": "return_to_pool", "reason": ""}, {"reason"}),
    ],
)
def test_lead_to_cash_qualification_form_requires_what_the_decision_needs(
    session, lead, open_task, crm, form, missing
):
    task = open_task(lead, "qualify_lead")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, REP, task.id, form, now=NOW)
    assert missing <= set(error.value.fields)
    assert crm.calls == []


def test_lead_to_cash_converted_lead_won_ordered_and_paid(
    session, lead, open_task, open_ids, finish, crm, data, round_trip, reached
):
    finish(lead, "qualify_lead", REP, CONVERT)
    assert crm.of("crm.convert_lead") == [
        {
            **{k: v for k, v in CONVERT.items() if k != "qualification"},
            "lead_id": 7,
            "amount": Decimal("24000"),
        }
    ]
    opportunity_id = data(lead)["opportunity_id"]
    assert opportunity_id == 103
    # The new-business pipeline runs inside the lead's instance, stage by stage.
    first = open_task(lead, "qualification")
    assert first.properties["pipeline"] == "new_business"
    assert "(Acme - 50 seats)" in first.instructions
    for stage in NEW_BUSINESS:
        assert open_ids(lead) == [stage]
        finish(lead, stage, REP, {"stage_decision": "advance"})
    assert crm.of("crm.close_opportunity") == [
        {"opportunity_id": opportunity_id, "outcome": "won", "reason": ""}
    ]
    assert {c.business_key for c in crm.calls} == {"lead:7"}

    order_task = open_task(lead, "create_order")
    assert (order_task.title, order_task.lane) == ("Record the order", "Rep")
    assert "for Acme Ltd" in order_task.instructions
    finish(lead, "create_order", REP, {"signed_on": "2026-11-20", "installments": PLAN})
    assert crm.of("crm.create_order") == [
        {"opportunity_id": opportunity_id, "signed_on": "2026-11-20", "installments": PLAN}
    ]
    assert lead.status == "waiting"
    assert data(lead)["installment_count"] == 2
    subscription = session.scalars(
        select(MessageSubscription.correlation_key).where(
            MessageSubscription.instance_id == lead.id,
            MessageSubscription.message_name == "order_paid",
        )
    ).all()
    assert subscription == ["lead:7"]

    # What the CRM does with the order: one collection per installment, paid one by one.
    for item in data(lead)["order"]["installments"]:
        collection = start_instance(
            session,
            SYSTEM,
            "payment_collection",
            now=NOW,
            data={"installment_id": item["id"], "order_id": 104, **item},
            business_key=f"installment:{item['id']}",
        ).instance
        round_trip(collection)
        send_message(
            session,
            SYSTEM,
            "receipt_registered",
            f"installment:{item['id']}",
            {"amount": str(item["amount"])},
            now=NOW + timedelta(days=30),
        )
        round_trip(collection)
        assert collection.status == "completed"
    assert crm.of("crm.mark_order_paid") == []
    send_message(session, SYSTEM, "order_paid", "lead:7", {"order_id": 104}, now=NOW)
    round_trip(lead)
    assert crm.of("crm.mark_order_paid") == [{"order_id": 104}]
    assert lead.status == "completed"
    assert data(lead)["payment"] == {"order_id": 104}
    assert "end_paid" in reached(lead)


def test_lead_to_cash_renewal_pipeline_lost_ends_the_lead(
    lead, open_task, open_ids, finish, crm, data, reached
):
    finish(lead, "qualify_lead", REP, {**CONVERT, "pipeline": "renewal"})
    review = open_task(lead, "renewal_review")
    assert (review.properties["pipeline"], review.properties["stage"]) == (
        "renewal",
        "renewal_review",
    )
    finish(lead, "renewal_review", REP, {"stage_decision": "lost", "lost_reason": "budget cut"})
    assert crm.of("crm.close_opportunity") == [
        {"opportunity_id": 103, "outcome": "lost", "reason": "budget cut"}
    ]
    assert data(lead)["outcome"] == "lost"
    assert lead.status == "completed"
    assert open_ids(lead) == []
    assert "end_lost" in reached(lead)
    assert crm.of("crm.create_order") == []


def test_lead_to_cash_stale_deal_timer_runs_inside_the_pipeline(
    session, lead, finish, open_task, crm, round_trip
):
    finish(lead, "qualify_lead", REP, CONVERT)
    task = open_task(lead, "qualification")
    fire_instance_timers(session, lead.id, now=NOW + timedelta(days=14))
    round_trip(lead)
    assert crm.of("crm.notify_stale_deal") == [{"opportunity_id": 103, "stage": "qualification"}]
    assert open_task(lead, "qualification").id == task.id
