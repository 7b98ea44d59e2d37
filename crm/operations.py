"""The `crm.*` operations that service tasks call (see docs/processes.md for the contract)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm.directory.services import user_by_username
from crm.handover import execute_handover
from crm.leads.services import close_lead, convert_lead
from crm.orders.services import (
    create_order,
    decide_invoice_request,
    installment_data,
    mark_order_paid,
)
from crm.quotes.services import set_quote_status
from crm.sales.services import check_stage_exit, close_opportunity, notify_stale_deal
from engine.models import HumanTask
from engine.operations import OperationContext, OperationError, register_operation


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise OperationError(f"parameter '{name}': '{value}' is not a date") from None


@register_operation(
    "crm.convert_lead",
    {
        "lead_id": int,
        "customer_name": str,
        "contact_name": str,
        "contact_title": str,
        "contact_buying_role": str,
        "opportunity_name": str,
        "amount": Decimal,
        "currency": str,
        "expected_close": str,
        "pipeline": str,
    },
    optional=frozenset({"contact_title", "contact_buying_role", "currency", "expected_close"}),
)
def _convert_lead(
    ctx: OperationContext,
    lead_id: int,
    customer_name: str,
    contact_name: str,
    opportunity_name: str,
    amount: Decimal,
    pipeline: str,
    contact_title: str | None = None,
    contact_buying_role: str | None = None,
    currency: str | None = None,
    expected_close: str | None = None,
) -> dict[str, int]:
    """Create the customer, contact and opportunity of a qualified lead."""
    return convert_lead(
        ctx.session,
        lead_id,
        now=ctx.now,
        customer_name=customer_name,
        contact_name=contact_name,
        contact_title=contact_title,
        contact_buying_role=contact_buying_role,
        opportunity_name=opportunity_name,
        amount=amount,
        currency=currency or "CNY",
        expected_close=_date(expected_close, "expected_close"),
        pipeline=pipeline,
    )


@register_operation("crm.disqualify_lead", {"lead_id": int, "reason": str})
def _disqualify_lead(ctx: OperationContext, lead_id: int, reason: str) -> dict[str, Any]:
    close_lead(ctx.session, lead_id, "disqualified", reason, now=ctx.now)
    return {}


@register_operation("crm.return_lead_to_pool", {"lead_id": int, "reason": str})
def _return_lead(ctx: OperationContext, lead_id: int, reason: str) -> dict[str, Any]:
    close_lead(ctx.session, lead_id, "returned", reason, now=ctx.now)
    return {}


@register_operation(
    "crm.check_stage_exit",
    {"opportunity_id": int, "stage": str, "criteria": list},
    optional=frozenset({"criteria"}),
)
def _check_stage_exit(
    ctx: OperationContext, opportunity_id: int, stage: str, criteria: list[str] | None = None
) -> dict[str, Any]:
    return check_stage_exit(ctx.session, opportunity_id, stage, criteria)


@register_operation("crm.notify_stale_deal", {"opportunity_id": int, "stage": str})
def _notify_stale(ctx: OperationContext, opportunity_id: int, stage: str) -> dict[str, Any]:
    return {"notified": notify_stale_deal(ctx.session, opportunity_id, stage, now=ctx.now)}


@register_operation(
    "crm.close_opportunity",
    {"opportunity_id": int, "outcome": str, "reason": str},
    optional=frozenset({"reason"}),
)
def _close_opportunity(
    ctx: OperationContext, opportunity_id: int, outcome: str, reason: str = ""
) -> dict[str, Any]:
    close_opportunity(ctx.session, opportunity_id, outcome, reason, now=ctx.now, by=ctx.actor)
    return {}


@register_operation(
    "crm.create_order", {"opportunity_id": int, "signed_on": str, "installments": list}
)
def _create_order(
    ctx: OperationContext, opportunity_id: int, signed_on: str, installments: list[dict[str, Any]]
) -> dict[str, Any]:
    signed = _date(signed_on, "signed_on") or ctx.now.date()
    order = create_order(
        ctx.session, opportunity_id, signed, installments, now=ctx.now, by=ctx.actor
    )
    return {
        "order_id": order.id,
        "order_number": order.number,
        "installments": [installment_data(order, i) for i in order.installments],
    }


@register_operation("crm.mark_order_paid", {"order_id": int})
def _mark_order_paid(ctx: OperationContext, order_id: int) -> dict[str, Any]:
    mark_order_paid(ctx.session, order_id)
    return {}


@register_operation(
    "crm.set_quote_status",
    {"quote_id": int, "status": str, "comment": str},
    optional=frozenset({"comment"}),
)
def _set_quote_status(
    ctx: OperationContext, quote_id: int, status: str, comment: str = ""
) -> dict[str, Any]:
    set_quote_status(ctx.session, quote_id, status, comment, now=ctx.now)
    return {}


@register_operation("crm.escalate_approval", {"quote_id": int, "level": str})
def _escalate_approval(ctx: OperationContext, quote_id: int, level: str) -> dict[str, Any]:
    """Give a waiting approval to the approver's manager, and tell both."""
    from crm.directory.services import manager_of, notify

    open_tasks = ctx.session.scalars(
        select(HumanTask).where(
            HumanTask.instance_id == ctx.instance_id, HumanTask.status == "open"
        )
    ).all()
    waiting = [
        t
        for t in open_tasks
        if t.bpmn_id.startswith(level) or (t.lane is not None and t.lane.lower() == level)
    ]
    escalated_to = None
    for row in waiting:
        holder = row.assignee or row.candidate_user
        if holder is None:
            continue
        boss = manager_of(ctx.session, user_by_username(ctx.session, holder))
        if boss is None:
            continue
        row.assignee = row.candidate_user = escalated_to = boss.username
        notify(
            ctx.session,
            boss.id,
            "escalation",
            f"Quote approval '{row.title}' waited over 24 hours and is now yours",
            now=ctx.now,
            link=f"/tasks/{row.id}",
        )
    return {"escalated_to": escalated_to}


@register_operation(
    "crm.decide_invoice_request",
    {"invoice_request_id": int, "decision": str, "comment": str},
    optional=frozenset({"comment"}),
)
def _decide_invoice(
    ctx: OperationContext, invoice_request_id: int, decision: str, comment: str = ""
) -> dict[str, Any]:
    decide_invoice_request(
        ctx.session, invoice_request_id, decision, comment, now=ctx.now, by=ctx.actor
    )
    return {}


@register_operation("crm.execute_handover", {"leaving_user": str, "receiver": str, "reason": str})
def _execute_handover(
    ctx: OperationContext, leaving_user: str, receiver: str, reason: str
) -> dict[str, int]:
    leaving = user_by_username(ctx.session, leaving_user)
    taker = user_by_username(ctx.session, receiver)
    return execute_handover(ctx.session, leaving, taker, reason, now=ctx.now, by=ctx.actor)
