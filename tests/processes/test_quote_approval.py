"""processes/quote_approval.bpmn + quote_approval_chain.dmn: every rule row, rejection, return,
resubmission, withdrawal and the 24-hour escalations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import InvalidInput
from engine.instances import fire_instance_timers, start_instance
from engine.models import HumanTask
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.processes.conftest import DIRECTOR, FINANCE, MANAGER, REP

APPROVERS = {"manager": MANAGER, "director": DIRECTOR, "finance": FINANCE}
LANES = {"manager": "Manager", "director": "Director", "finance": "Finance"}


@pytest.fixture
def submit(session, deployed, round_trip):
    def run(discount=10, payment_days=30, delivery_days=30, amount="24000.00"):
        outcome = start_instance(
            session,
            REP,
            "quote_approval",
            now=NOW,
            data={
                "quote_id": 55,
                "opportunity_id": 8,
                "discount": discount,
                "amount": amount,
                "payment_days": payment_days,
                "delivery_days": delivery_days,
            },
            business_key="quote:55",
        )
        round_trip(outcome.instance)
        return outcome.instance

    return run


@pytest.fixture
def decide(finish):
    """Complete an approver's task with a decision (and comment)."""

    def run(instance, who, decision, comment=None, now=NOW):
        form = {f"{who}_decision": decision}
        if comment is not None:
            form[f"{who}_comment"] = comment
        return finish(instance, f"{who}_approval", APPROVERS[who], form, now=now)

    return run


@pytest.fixture
def statuses(crm):
    return lambda: [(c["status"], c["comment"]) for c in crm.of("crm.set_quote_status")]


# One case per rule row of quote_approval_chain, on the edges of each band:
# (discount %, payment days, delivery days) -> (manager, director, finance)
RULE_ROWS = {
    "no_approval": ((5, 60, 7), (False, False, False)),
    "fast_delivery": ((5, 60, 6), (False, True, False)),
    "long_payment": ((0, 61, 7), (False, False, True)),
    "long_payment_fast_delivery": ((5, 90, 3), (False, True, True)),
    "manager": ((5.5, 60, 7), (True, False, False)),
    "manager_fast_delivery": ((15, 30, 6), (True, True, False)),
    "manager_long_payment": ((10, 61, 30), (True, False, True)),
    "manager_long_payment_fast_delivery": ((15, 61, 6), (True, True, True)),
    "director": ((15.5, 60, 30), (True, True, False)),
    "director_long_payment": ((30, 90, 1), (True, True, True)),
}


@pytest.mark.parametrize("row", sorted(RULE_ROWS))
def test_quote_approval_chain_rule_rows(submit, data, open_ids, open_task, decide, statuses, row):
    (discount, payment_days, delivery_days), needs = RULE_ROWS[row]
    quote = submit(discount, payment_days, delivery_days)
    decided = data(quote)
    assert (decided["needs_manager"], decided["needs_director"], decided["needs_finance"]) == needs
    approvers = [
        name
        for name, needed in zip(("manager", "director", "finance"), needs, strict=True)
        if needed
    ]
    if not approvers:
        assert quote.status == "completed"
        assert statuses() == [("approved", "no approval needed")]
        return
    # The director only comes after the manager; finance runs alongside.
    first = [a for a in approvers if a != "director" or "manager" not in approvers]
    assert open_ids(quote) == sorted(f"{a}_approval" for a in first)
    for who in first:
        task = open_task(quote, f"{who}_approval")
        assert (task.lane, task.candidate_role) == (LANES[who], who)
        assert task.form == f"quote_approval/{who}_approval.schema.json"
        assert "Quote **55**" in task.instructions
        assert "Approvers this round: " + ", ".join(approvers) in task.instructions
    for who in approvers:
        assert quote.status == "running"
        decide(quote, who, "approve")
    assert quote.status == "completed"
    assert statuses() == [("approved", "approved by " + ", ".join(approvers))]


def test_quote_approval_manager_rejection_cancels_finance_then_resubmit(
    session, submit, decide, open_ids, open_task, finish, statuses, data
):
    quote = submit(discount=12, payment_days=90, delivery_days=30)  # manager + finance
    assert open_ids(quote) == ["finance_approval", "manager_approval"]
    finance_task = open_task(quote, "finance_approval")

    decide(quote, "manager", "reject", "Discount too high for this customer")
    assert session.get(HumanTask, finance_task.id).status == "cancelled"
    assert statuses() == [("rejected", "Discount too high for this customer")]
    assert open_ids(quote) == ["revise_quote"]
    revise = open_task(quote, "revise_quote")
    assert (revise.lane, revise.candidate_role) == ("Rep", "rep")
    assert "Rejected by the **manager**: *Discount too high for this customer*" in (
        revise.instructions
    )

    finish(
        quote,
        "revise_quote",
        REP,
        {"revision": "resubmit", "discount": 4, "revision_note": "discount lowered to 4 %"},
    )
    assert statuses()[1] == ("pending", "discount lowered to 4 %")
    # 4 % needs no manager any more; the 90-day payment terms still need finance.
    assert open_ids(quote) == ["finance_approval"]
    assert "*discount lowered to 4 %*" in open_task(quote, "finance_approval").instructions
    decide(quote, "finance", "approve")
    assert quote.status == "completed"
    assert statuses()[2] == ("approved", "approved by finance")
    assert data(quote)["discount"] == 4


def test_quote_approval_finance_rejection_cancels_manager_then_withdraw(
    session, submit, decide, open_ids, open_task, finish, statuses, reached
):
    quote = submit(discount=20, payment_days=120, delivery_days=30)  # all three
    manager_task = open_task(quote, "manager_approval")
    decide(quote, "finance", "reject", "Customer has unpaid invoices")
    assert session.get(HumanTask, manager_task.id).status == "cancelled"
    assert open_ids(quote) == ["revise_quote"]
    assert "Rejected by the **finance**" in open_task(quote, "revise_quote").instructions

    finish(quote, "revise_quote", REP, {"revision": "withdraw", "revision_note": "lost interest"})
    assert quote.status == "completed"
    assert statuses() == [
        ("rejected", "Customer has unpaid invoices"),
        ("withdrawn", "lost interest"),
    ]
    assert "end_withdrawn" in reached(quote)
    assert "director_approval" not in reached(quote)


def test_quote_approval_director_returns_to_manager_then_approves(
    submit, decide, open_ids, open_task, statuses, crm
):
    quote = submit(discount=25, payment_days=30, delivery_days=30)  # manager, then director
    assert open_ids(quote) == ["manager_approval"]
    decide(quote, "manager", "approve")
    assert open_ids(quote) == ["director_approval"]
    director = open_task(quote, "director_approval")
    assert (director.lane, director.candidate_role) == ("Director", "director")

    decide(quote, "director", "return_to_manager", "Ask for a two-year commitment first")
    assert open_ids(quote) == ["manager_approval"]
    assert (
        "*Ask for a two-year commitment first*" in open_task(quote, "manager_approval").instructions
    )
    assert statuses() == []

    decide(quote, "manager", "approve")
    assert open_ids(quote) == ["director_approval"]
    decide(quote, "director", "approve")
    assert quote.status == "completed"
    assert statuses() == [("approved", "approved by manager, director")]


def test_quote_approval_director_can_involve_a_manager_the_rules_left_out(
    submit, decide, open_ids, open_task, statuses, data
):
    quote = submit(discount=3, payment_days=30, delivery_days=5)  # fast delivery: director only
    assert data(quote)["needs_manager"] is False
    assert open_ids(quote) == ["director_approval"]
    decide(quote, "director", "return_to_manager", "Check stock with the warehouse manager")
    assert open_ids(quote) == ["manager_approval"]
    assert "*Check stock with the warehouse manager*" in (
        open_task(quote, "manager_approval").instructions
    )
    decide(quote, "manager", "approve")
    decide(quote, "director", "approve")
    assert quote.status == "completed"
    assert statuses() == [("approved", "approved by director")]


def test_quote_approval_director_rejection_goes_to_the_rep(
    submit, decide, open_ids, open_task, statuses
):
    quote = submit(discount=25, payment_days=30, delivery_days=30)
    decide(quote, "manager", "approve")
    decide(quote, "director", "reject", "Not at this margin")
    assert statuses() == [("rejected", "Not at this margin")]
    assert open_ids(quote) == ["revise_quote"]
    assert "Rejected by the **director**" in open_task(quote, "revise_quote").instructions


def test_quote_approval_open_approvals_escalate_after_24_hours(
    session, submit, decide, round_trip, crm, open_ids
):
    quote = submit(discount=20, payment_days=90, delivery_days=30)  # manager, director, finance

    def fire(at):
        fire_instance_timers(session, quote.id, now=at)
        round_trip(quote)

    fire(NOW + timedelta(hours=24) - timedelta(minutes=1))
    assert crm.of("crm.escalate_approval") == []
    fire(NOW + timedelta(hours=24))
    assert sorted(c["level"] for c in crm.of("crm.escalate_approval")) == ["finance", "manager"]
    # Escalation does not take the task away.
    assert open_ids(quote) == ["finance_approval", "manager_approval"]

    approved_at = NOW + timedelta(hours=30)
    decide(quote, "manager", "approve", now=approved_at)
    fire(approved_at + timedelta(hours=23))
    assert len(crm.of("crm.escalate_approval")) == 2
    fire(approved_at + timedelta(hours=24))
    assert [c["level"] for c in crm.of("crm.escalate_approval")][2:] == ["director"]
    assert all(c["quote_id"] == 55 for c in crm.of("crm.escalate_approval"))
    assert open_ids(quote) == ["director_approval", "finance_approval"]


@pytest.mark.parametrize(
    ("who", "decision"),
    [
        ("manager", "reject"),
        ("director", "reject"),
        ("director", "return_to_manager"),
        ("finance", "reject"),
    ],
)
def test_quote_approval_rejecting_needs_a_comment(
    session, submit, decide, open_task, who, decision
):
    quote = submit(discount=20, payment_days=90, delivery_days=30)
    if who == "director":
        decide(quote, "manager", "approve")
    task = open_task(quote, f"{who}_approval")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, APPROVERS[who], task.id, {f"{who}_decision": decision}, now=NOW)
    assert f"{who}_comment" in error.value.fields


def test_quote_approval_revision_needs_a_note(session, submit, decide, open_task):
    quote = submit(discount=10)
    decide(quote, "manager", "reject", "no")
    task = open_task(quote, "revise_quote")
    with pytest.raises(InvalidInput) as error:
        complete_task(session, REP, task.id, {"revision": "resubmit"}, now=NOW)
    assert "revision_note" in error.value.fields


def test_quote_approval_rejection_signal_does_not_touch_other_quotes(
    session, submit, decide, deployed, round_trip, open_ids
):
    other = start_instance(
        session,
        REP,
        "quote_approval",
        now=NOW,
        data={
            "quote_id": 56,
            "opportunity_id": 9,
            "discount": 12,
            "amount": "1000",
            "payment_days": 90,
            "delivery_days": 30,
        },
        business_key="quote:56",
    ).instance
    quote = submit(discount=12, payment_days=90, delivery_days=30)
    decide(quote, "manager", "reject", "no")
    round_trip(other)
    assert open_ids(other) == ["finance_approval", "manager_approval"]
    still_open = select(HumanTask.status).where(HumanTask.instance_id == other.id)
    assert set(session.scalars(still_open)) == {"open"}
