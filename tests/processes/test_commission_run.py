"""processes/commission_run.bpmn on the real engine with the real CRM operations: calculate ->
manager review (with an adjustment) -> finance approval -> statements issued; rejections and
recalculation go back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

import crm.commission  # noqa: F401  (registers the crm.* commission operations)
from crm.commission.models import CommissionRun
from crm.commission.runs import start_run
from crm.directory.models import Notification
from crm.directory.services import actor_for
from crm.errors import Forbidden, InvalidInput
from crm.orders.models import Receipt, SalesOrder
from engine.errors import Conflict
from engine.models import ProcessInstance
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.crm.test_commission import OCTOBER, build_commission_world

D = Decimal


@pytest.fixture
def world(session, deploy):
    deploy("commission_run.bpmn")
    return build_commission_world(session)


@pytest.fixture
def run(session, world):
    return start_run(session, world["users"]["fiona"], OCTOBER, now=NOW)


@pytest.fixture
def instance(session, run):
    return session.scalar(
        select(ProcessInstance).where(ProcessInstance.business_key == "commission:2026-10")
    )


@pytest.fixture
def act(session, world, open_task, round_trip):
    def run_as(username, instance, bpmn_id, form):
        task = open_task(instance, bpmn_id)
        complete_task(session, actor_for(world["users"][username]), task.id, form, now=NOW)
        round_trip(instance)

    return run_as


def _totals(run, world):
    names = {u.id: name for name, u in world["users"].items()}
    return {names[s.user_id]: s.total for s in run.statements}


def test_commission_run_calculates_then_opens_the_managers_review(run, instance, open_task):
    assert run.status == "in_review"
    assert instance.subject_type == "commission_run"
    assert instance.subject_id == run.id
    task = open_task(instance, "review_commission")
    assert (task.title, task.lane, task.candidate_role) == (
        "Review the commission statements",
        "Manager",
        "manager",
    )
    assert "3 statements, **1287.00** in total" in task.instructions


def test_commission_run_full_path_with_adjustment_rejection_and_issue(
    session, run, instance, world, act, open_task
):
    # A manager may not adjust another team's rep: nothing is applied and the review reopens.
    act(
        "north_manager",
        instance,
        "review_commission",
        {
            "review_decision": "approve",
            "adjustments": [{"rep": "south_rep1", "amount": "25.00", "comment": "bonus"}],
        },
    )
    task = open_task(instance, "review_commission")
    assert "adjustment 1: you do not manage south_rep1" in task.instructions
    assert run.status == "in_review"
    assert _totals(run, world)["south_rep1"] == D("500.00")

    act(
        "north_manager",
        instance,
        "review_commission",
        {
            "review_decision": "approve",
            "adjustments": [
                {"rep": "north_rep2", "amount": "40.00", "comment": "shared the Acme deal"}
            ],
        },
    )
    assert run.status == "awaiting_finance"
    assert _totals(run, world) == {
        "north_rep1": D("627.00"),
        "north_rep2": D("200.00"),
        "south_rep1": D("500.00"),
    }
    task = open_task(instance, "approve_commission")
    assert (task.lane, task.candidate_role) == ("Finance", "finance")

    # Finance rejects: back to the review with the reason; the adjustment stays.
    act(
        "fiona",
        instance,
        "approve_commission",
        {"finance_decision": "reject", "finance_comment": "check receipt R5"},
    )
    assert (run.status, run.comment) == ("in_review", "check receipt R5")
    assert "check receipt R5" in open_task(instance, "review_commission").instructions
    act("north_manager", instance, "review_commission", {"review_decision": "approve"})
    assert _totals(run, world)["north_rep2"] == D("200.00")  # not applied twice

    act("fiona", instance, "approve_commission", {"finance_decision": "approve"})
    assert instance.status == "completed"
    assert (run.status, run.approved_by, run.issued_at) == ("issued", "fiona", NOW)
    assert all(s.issued_at == NOW for s in run.statements)
    [rep2] = [s for s in run.statements if s.user_id == world["users"]["north_rep2"].id]
    assert [(ln.kind, str(ln.amount), ln.comment, ln.created_by) for ln in rep2.lines][-1] == (
        "adjustment",
        "40.00",
        "shared the Acme deal",
        "north_manager",
    )
    notes = session.scalars(
        select(Notification.message).where(Notification.kind == "commission_statement")
    ).all()
    assert sorted(notes) == [
        "Your commission statement for 2026-10: 200.00 CNY",
        "Your commission statement for 2026-10: 500.00 CNY",
        "Your commission statement for 2026-10: 627.00 CNY",
    ]


def test_commission_run_recalculate_picks_up_a_late_receipt(session, run, instance, world, act):
    order = session.scalars(select(SalesOrder).where(SalesOrder.number == "SO-north_rep2")).one()
    session.add(
        Receipt(
            order_id=order.id,
            amount=D("1000.00"),
            received_on=date(2026, 10, 31),
            reference="LATE",
            registered_by="fiona",
            created_at=NOW,
        )
    )
    session.flush()
    act("north_manager", instance, "review_commission", {"review_decision": "recalculate"})
    # 5,000 of 5,000: the late receipt lies in the 80-100 % tier: 1000 x 5 % x 1.0 = 50.00
    assert _totals(run, world)["north_rep2"] == D("210.00")
    assert run.status == "in_review"


def test_commission_run_finance_rejection_needs_a_comment(session, run, instance, world, act):
    act("north_manager", instance, "review_commission", {"review_decision": "approve"})
    with pytest.raises(InvalidInput) as error:
        act("fiona", instance, "approve_commission", {"finance_decision": "reject"})
    assert "finance_comment" in error.value.fields
    assert run.status == "awaiting_finance"


def test_commission_run_review_is_not_for_reps_or_finance(session, run, instance, world, act):
    for name in ("north_rep1", "fiona"):
        with pytest.raises(Forbidden):
            act(name, instance, "review_commission", {"review_decision": "approve"})
    assert run.status == "in_review"


def test_commission_run_start_rules(session, world, run):
    with pytest.raises(Forbidden):
        start_run(session, world["users"]["north_manager"], date(2026, 9, 1), now=NOW)
    with pytest.raises(Conflict):
        start_run(session, world["users"]["fiona"], OCTOBER, now=NOW)
    with pytest.raises(InvalidInput) as error:
        start_run(session, world["users"]["fiona"], date(2026, 11, 1), now=NOW)
    assert error.value.fields == {"month": ["the month has not ended yet"]}
    assert session.scalars(select(CommissionRun.period_start)).all() == [OCTOBER]
