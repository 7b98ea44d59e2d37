"""Lead to cash through the services and the real processes, checked at every step."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm.customers.models import OwnerChange
from crm.customers.services import add_contact
from crm.directory.models import User
from crm.leads.models import Lead
from crm.leads.services import assign_lead, create_lead
from crm.orders.models import Installment, SalesOrder
from crm.orders.services import register_receipt
from crm.quotes.services import accept_quote, create_quote, submit_quote
from crm.sales.models import Opportunity, StageChange
from crm.work import complete_task_as
from engine.models import HumanTask, InstanceEvent, ProcessInstance
from rules.timers import fire_due_timers
from tests.conftest import NOW


class Walk:
    """The clock and the open tasks of one walk through the processes."""

    def __init__(self, session) -> None:
        self.session = session
        self.now = NOW

    def tick(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def task(self, bpmn_id: str, user: User) -> HumanTask:
        rows = self.session.scalars(
            select(HumanTask).where(HumanTask.bpmn_id == bpmn_id, HumanTask.status == "open")
        ).all()
        assert len(rows) == 1, f"expected one open {bpmn_id} task, found {len(rows)}"
        assert rows[0].assignee == user.username, f"{bpmn_id} went to {rows[0].assignee}"
        return rows[0]

    def complete(self, bpmn_id: str, user: User, data: dict) -> None:
        complete_task_as(self.session, user, self.task(bpmn_id, user).id, data, now=self.now)
        self.tick(hours=1)


def _stage(session, opportunity_id: int) -> tuple[str | None, int]:
    opportunity = session.get(Opportunity, opportunity_id)
    session.refresh(opportunity)
    return opportunity.stage, opportunity.win_rate


@pytest.mark.usefixtures("deploy_all")
def test_lead_to_cash_end_to_end(session, sales_org):
    walk = Walk(session)
    north = sales_org["north"]
    rep, manager, director = north["reps"][0], north["manager"], sales_org["director"]

    lead = create_lead(session, manager, "Ann Lee", now=walk.now, company="Orbit Foods")
    assign_lead(session, manager, lead.id, rep, now=walk.now)
    walk.complete(
        "qualify_lead",
        rep,
        {
            "qualification": "convert",
            "customer_name": "Orbit Foods Ltd",
            "contact_name": "Ann Lee",
            "contact_title": "Buyer",
            "contact_buying_role": "user",
            "opportunity_name": "Orbit CRM",
            "amount": 100000,
            "currency": "CNY",
            "expected_close": "2027-01-31",
            "pipeline": "new_business",
        },
    )
    session.refresh(lead)
    assert lead.status == "converted"
    opportunity = session.scalar(select(Opportunity).where(Opportunity.lead_id == lead.id))
    assert (opportunity.owner_id, opportunity.amount) == (rep.id, Decimal("100000"))
    [change] = session.scalars(
        select(OwnerChange).where(OwnerChange.customer_id == opportunity.customer_id)
    )
    assert (change.reason, change.to_user_id) == ("convert", rep.id)
    assert _stage(session, opportunity.id) == ("qualification", 10)

    walk.complete("qualification", rep, {"stage_decision": "advance"})
    assert _stage(session, opportunity.id) == ("needs_analysis", 20)
    # No decision maker yet: the same stage opens again and the deal stays put.
    walk.complete("needs_analysis", rep, {"stage_decision": "advance"})
    assert _stage(session, opportunity.id) == ("needs_analysis", 20)
    add_contact(session, rep, opportunity.customer_id, "Bo Chen", buying_role="decision_maker")
    walk.complete("needs_analysis", rep, {"stage_decision": "advance"})
    assert _stage(session, opportunity.id) == ("proposal", 50)

    # A 20 % discount needs the manager, then the director.
    quote = create_quote(
        session,
        rep,
        opportunity.id,
        [{"description": "Stagecraft Enterprise", "quantity": 10, "unit_price": "10000"}],
        now=walk.now,
        discount_pct=20,
        payment_days=30,
    )
    assert quote.total == Decimal("80000.00")
    submit_quote(session, rep, quote.id, now=walk.now)
    walk.complete("manager_approval", manager, {"manager_decision": "approve"})
    walk.complete(
        "director_approval",
        director,
        {"director_decision": "reject", "director_comment": "Too deep for a first order"},
    )
    session.refresh(quote)
    assert quote.status == "rejected"
    walk.complete(
        "revise_quote",
        rep,
        {
            "revision": "resubmit",
            "revision_note": "Customer insists",
            "discount": 20,
            "amount": 80000,
        },
    )
    walk.complete("manager_approval", manager, {"manager_decision": "approve"})
    walk.complete("director_approval", director, {"director_decision": "approve"})
    session.refresh(quote)
    assert quote.status == "approved"

    walk.complete("proposal", rep, {"stage_decision": "advance"})
    assert _stage(session, opportunity.id) == ("negotiation", 75)
    accept_quote(session, rep, quote.id, now=walk.now)
    walk.complete("negotiation", rep, {"stage_decision": "advance"})
    assert _stage(session, opportunity.id) == ("closing", 90)
    walk.complete("closing", rep, {"stage_decision": "advance"})
    session.refresh(opportunity)
    assert (opportunity.status, opportunity.win_rate) == ("won", 100)
    stages = session.scalars(
        select(StageChange.to_stage)
        .where(StageChange.opportunity_id == opportunity.id)
        .order_by(StageChange.id)
    ).all()
    assert stages == [
        "qualification",
        "needs_analysis",
        "proposal",
        "negotiation",
        "closing",
        "won",
    ]

    due = [(walk.now + timedelta(days=30 * n)).date() for n in (1, 2, 3)]
    walk.complete(
        "create_order",
        rep,
        {
            "signed_on": walk.now.date().isoformat(),
            "installments": [
                {"due_date": due[0].isoformat(), "amount": 30000},
                {"due_date": due[1].isoformat(), "amount": 30000},
                {"due_date": due[2].isoformat(), "amount": 20000},
            ],
        },
    )
    order = session.scalar(select(SalesOrder).where(SalesOrder.opportunity_id == opportunity.id))
    assert [i.amount for i in order.installments] == [
        Decimal("30000"),
        Decimal("30000"),
        Decimal("20000"),
    ]

    # The reminder for the first installment opens three days before its due date, not earlier.
    first_reminder = NOW.replace(year=due[0].year, month=due[0].month, day=due[0].day) - timedelta(
        days=3
    )
    fire_due_timers(session, first_reminder - timedelta(hours=12))
    assert (
        session.scalars(
            select(HumanTask).where(
                HumanTask.bpmn_id == "remind_customer", HumanTask.status == "open"
            )
        ).all()
        == []
    )
    walk.now = first_reminder + timedelta(hours=12)
    fire_due_timers(session, walk.now)
    walk.complete("remind_customer", rep, {"reminder_outcome": "promised"})

    for amount in ("30000", "30000", "20000"):
        register_receipt(session, rep, order.id, amount, walk.now.date(), now=walk.now)
        walk.tick(days=1)
    assert [
        i.status
        for i in session.scalars(select(Installment).where(Installment.order_id == order.id))
    ] == ["paid", "paid", "paid"]
    assert order.status == "paid"

    lead_instance = session.scalar(
        select(ProcessInstance).where(ProcessInstance.business_key == f"lead:{lead.id}")
    )
    assert lead_instance.status == "completed"
    collections = session.scalars(
        select(ProcessInstance.status).where(ProcessInstance.process_id == "payment_collection")
    ).all()
    assert collections == ["completed"] * 3
    history = session.scalars(
        select(InstanceEvent.kind)
        .where(InstanceEvent.instance_id == lead_instance.id)
        .order_by(InstanceEvent.id)
    ).all()
    assert history[0] == "started"
    assert history.count("task_completed") == 1 + 6 + 1  # qualify, six stage tasks, order
    assert history[-2:] == ["message_received", "completed"]
    assert session.scalar(select(Lead.status).where(Lead.id == lead.id)) == "converted"
