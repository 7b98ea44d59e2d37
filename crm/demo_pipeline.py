"""Demo deals in motion: leads worked through the real processes to every stage.

Everything goes through the same services a rep uses, so the demo's instances, tasks, stage
history and approvals are exactly what the product would have produced.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.customers.services import add_contact
from crm.directory.models import User
from crm.leads.models import Lead
from crm.leads.services import assign_lead
from crm.quotes.services import accept_quote, create_quote, submit_quote
from crm.sales.models import Opportunity
from crm.work import complete_task_as
from engine.models import HumanTask

STAGES = ["qualification", "needs_analysis", "proposal", "negotiation", "closing"]


def _open_task(session: Session, bpmn_id: str, instance_key: str) -> HumanTask | None:
    from engine.models import ProcessInstance

    return session.scalar(
        select(HumanTask)
        .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
        .where(
            HumanTask.bpmn_id == bpmn_id,
            HumanTask.status == "open",
            ProcessInstance.business_key == instance_key,
        )
    )


def _complete(
    session: Session, user: User, bpmn_id: str, key: str, data: dict[str, Any], now: datetime
) -> bool:
    task = _open_task(session, bpmn_id, key)
    if task is None:
        return False
    complete_task_as(session, user, task.id, data, now=now)
    return True


def work_demo_deals(
    session: Session,
    rng: random.Random,
    now: datetime,
    reps: list[User],
    manager_of_rep: dict[int, User],
    leads: list[Lead],
) -> int:
    """Assign leads to reps and move their deals to a spread of stages; return deals made."""
    made = 0
    for n, lead in enumerate(leads):
        rep = reps[n % len(reps)]
        start = now - timedelta(days=rng.randint(10, 60))
        assign_lead(session, manager_of_rep[rep.id], lead.id, rep, now=start)
        key = f"lead:{lead.id}"
        # 0..4: stops in that stage; 5: won, with an order being paid; 6: not qualified yet.
        target = n % (len(STAGES) + 2)
        if target == len(STAGES) + 1:
            continue
        amount = rng.choice([48000, 96000, 150000, 240000, 360000])
        _complete(
            session,
            rep,
            "qualify_lead",
            key,
            {
                "qualification": "convert",
                "customer_name": f"{lead.company} Co.",
                "contact_name": lead.name,
                "contact_title": "Purchasing",
                "contact_buying_role": "user",
                "opportunity_name": f"{lead.company} rollout",
                "amount": amount,
                "currency": "CNY",
                "expected_close": (now + timedelta(days=rng.randint(20, 120))).date().isoformat(),
                "pipeline": "new_business",
            },
            start + timedelta(hours=2),
        )
        made += 1
        opportunity = session.scalar(select(Opportunity).where(Opportunity.lead_id == lead.id))
        if opportunity is None:
            continue
        add_contact(
            session,
            rep,
            opportunity.customer_id,
            f"{lead.name} (boss)",
            buying_role="decision_maker",
            influence=5,
        )
        moment = start + timedelta(days=1)
        for stage in STAGES[:target]:
            if stage == "proposal":
                _quote(session, rep, opportunity, rng, moment, approve=True)
            if stage == "negotiation":
                _accept_latest_quote(session, rep, opportunity, moment)
            _complete(session, rep, stage, key, {"stage_decision": "advance"}, moment)
            moment += timedelta(days=rng.randint(2, 9))
        if target == 2:
            _quote(session, rep, opportunity, rng, moment, approve=False)  # awaiting approval
        if target == len(STAGES):
            _order(session, rep, key, opportunity, now)
    return made


def _order(session: Session, rep: User, key: str, opportunity: Opportunity, now: datetime) -> None:
    """Record the order of a won deal, in three installments, the first due in five days."""
    from crm.quotes.models import Quote

    quote = session.scalar(
        select(Quote)
        .where(Quote.opportunity_id == opportunity.id, Quote.status == "accepted")
        .order_by(Quote.id.desc())
    )
    total = quote.total if quote is not None else opportunity.amount
    first, second = (total * 4 / 10).quantize(total), (total * 3 / 10).quantize(total)
    parts = [first, second, total - first - second]
    _complete(
        session,
        rep,
        "create_order",
        key,
        {
            "signed_on": now.date().isoformat(),
            "installments": [
                {
                    "due_date": (now + timedelta(days=days)).date().isoformat(),
                    "amount": float(amount),
                }
                for days, amount in zip((5, 35, 65), parts, strict=True)
            ],
        },
        now,
    )


def _quote(
    session: Session,
    rep: User,
    opportunity: Opportunity,
    rng: random.Random,
    now: datetime,
    *,
    approve: bool,
) -> None:
    """Submit a quote; approve it through the approval tasks, or leave it waiting."""
    # A quote left waiting needs an approver: over 5 % discount.
    discount = rng.choice([3, 10, 18] if approve else [10, 18])
    quote = create_quote(
        session,
        rep,
        opportunity.id,
        [
            {
                "description": "Stagecraft Enterprise (seat/year)",
                "quantity": 20,
                "unit_price": str(opportunity.amount / 20),
            },
        ],
        now=now,
        discount_pct=discount,
        payment_days=rng.choice([30, 45, 90]),
    )
    submit_quote(session, rep, quote.id, now=now)
    if not approve:
        return
    key = f"quote:{quote.id}"
    for bpmn_id, field in (
        ("manager_approval", "manager_decision"),
        ("finance_approval", "finance_decision"),
        ("director_approval", "director_decision"),
    ):
        task = _open_task(session, bpmn_id, key)
        if task is not None:
            complete_task_as(
                session, _approver(session, task), task.id, {field: "approve"}, now=now
            )


def _approver(session: Session, task: HumanTask) -> User:
    """Return the person who would act on an approval: its assignee, else one of its role."""
    from crm.directory.models import UserRole

    if task.assignee:
        user = session.scalar(select(User).where(User.username == task.assignee))
    else:
        user = session.scalar(
            select(User)
            .join(UserRole)
            .where(UserRole.role == task.candidate_role)
            .order_by(User.id)
            .limit(1)
        )
    if user is None:
        raise LookupError(f"nobody can approve '{task.title}'")
    return user


def _accept_latest_quote(
    session: Session, rep: User, opportunity: Opportunity, now: datetime
) -> None:
    from crm.quotes.models import Quote

    quote = session.scalar(
        select(Quote)
        .where(Quote.opportunity_id == opportunity.id, Quote.status == "approved")
        .order_by(Quote.id.desc())
    )
    if quote is not None:
        accept_quote(session, rep, quote.id, now=now)
