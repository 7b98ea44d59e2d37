"""Hand a leaving rep's book to a colleague: customers, deals, quotes, orders, open tasks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.customers.services import record_owner_change
from crm.directory.models import User
from crm.errors import fields_error, msg
from crm.leads.models import Lead
from crm.orders.models import SalesOrder
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.models import HumanTask
from engine.runtime import log_event


def execute_handover(
    session: Session, leaving: User, receiver: User, reason: str, *, now: datetime, by: str | None
) -> dict[str, int]:
    """Move everything the leaving rep holds to the receiver, each move recorded with the reason."""
    if not reason.strip():
        raise fields_error(reason="is required")
    if leaving.id == receiver.id:
        raise fields_error(receiver="must be someone other than the leaving rep")
    if not receiver.active:
        raise fields_error(receiver=msg("%(username)s is not active", username=receiver.username))
    customers = list(session.scalars(select(Customer).where(Customer.owner_id == leaving.id)))
    for customer in customers:
        customer.owner_id, customer.owner_since = receiver.id, now
        record_owner_change(
            session, customer, leaving.id, receiver.id, "handover", by=by, now=now, note=reason
        )
    counts = {"customers": len(customers)}
    for name, model, extra in (
        ("opportunities", Opportunity, Opportunity.status == "open"),
        ("leads", Lead, Lead.status.in_(("new", "working"))),
        ("quotes", Quote, Quote.status.in_(("draft", "pending", "approved", "rejected"))),
        ("orders", SalesOrder, SalesOrder.status == "open"),
    ):
        result = session.execute(
            update(model)
            .where(model.owner_id == leaving.id, extra)
            .values(owner_id=receiver.id)
            .execution_options(synchronize_session="fetch")
        )
        counts[name] = result.rowcount  # type: ignore[attr-defined]
    tasks = session.scalars(
        select(HumanTask).where(
            HumanTask.status == "open",
            or_(
                HumanTask.assignee == leaving.username, HumanTask.candidate_user == leaving.username
            ),
        )
    ).all()
    for task in tasks:
        previous = task.assignee or task.candidate_user
        if task.assignee == leaving.username:
            task.assignee = receiver.username
        if task.candidate_user == leaving.username:
            task.candidate_user = receiver.username
        log_event(
            session,
            task.instance_id,
            now,
            "task_reassigned",
            by,
            bpmn_id=task.bpmn_id,
            task_id=task.task_id,
            detail={"from": previous, "to": receiver.username, "reason": reason},
        )
    counts["tasks"] = len(tasks)
    leaving.active = False
    return counts
