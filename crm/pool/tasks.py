"""Open tasks on a customer's records follow the customer when its owner loses it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, exists, insert, literal, or_, select, union_all, update
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import User
from crm.leads.models import Lead
from crm.orders.models import Installment, InvoiceRequest, SalesOrder
from crm.pool.bulk import among
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.models import HumanTask, InstanceEvent


def _records_of(session: Session, customer_ids: list[int]) -> Any:
    """Return a subquery of (kind, record_id, customer_id) for every record of the customers."""

    def kind(name: str) -> Any:
        return literal(name, String(40)).label("kind")

    order_of = among(session, SalesOrder.customer_id, customer_ids)
    return union_all(
        select(
            kind("customer"), Customer.id.label("record_id"), Customer.id.label("customer_id")
        ).where(among(session, Customer.id, customer_ids)),
        select(kind("opportunity"), Opportunity.id, Opportunity.customer_id).where(
            among(session, Opportunity.customer_id, customer_ids)
        ),
        select(kind("quote"), Quote.id, Quote.customer_id).where(
            among(session, Quote.customer_id, customer_ids)
        ),
        select(kind("order"), SalesOrder.id, SalesOrder.customer_id).where(order_of),
        select(kind("installment"), Installment.id, SalesOrder.customer_id)
        .join(SalesOrder, SalesOrder.id == Installment.order_id)
        .where(order_of),
        select(kind("invoice_request"), InvoiceRequest.id, SalesOrder.customer_id)
        .join(SalesOrder, SalesOrder.id == InvoiceRequest.order_id)
        .where(order_of),
        select(kind("lead"), Lead.id, Lead.customer_id).where(
            among(session, Lead.customer_id, customer_ids)
        ),
    ).subquery("records")


def hand_open_tasks_to(
    session: Session, owners: dict[int, int], to: User, *, now: datetime, reason: str
) -> int:
    """Give the open tasks the old owners held on their customers' records to `to`.

    :param owners: customer id -> the owner who just lost it.
    """
    usernames = dict(
        session.execute(
            select(User.id, User.username).where(User.id.in_(set(owners.values())))
        ).all()
    )
    if not usernames:
        return 0
    names = sorted(usernames.values())
    held_by_them = or_(
        HumanTask.assignee.in_(names),
        and_(HumanTask.assignee.is_(None), HumanTask.candidate_user.in_(names)),
    )
    if not session.scalar(select(exists().where(HumanTask.status == "open", held_by_them))):
        return 0
    records = _records_of(session, list(owners))
    rows = session.execute(
        select(
            HumanTask.id,
            HumanTask.instance_id,
            HumanTask.task_id,
            HumanTask.bpmn_id,
            HumanTask.assignee,
            HumanTask.candidate_user,
            records.c.customer_id,
        )
        .join(
            records,
            and_(
                HumanTask.subject_type == records.c.kind,
                HumanTask.subject_id == records.c.record_id,
            ),
        )
        .where(HumanTask.status == "open", held_by_them)
        .with_for_update(of=HumanTask)
    ).all()
    held = {
        row.id: row
        for row in rows
        if (row.assignee or row.candidate_user) == usernames.get(owners[row.customer_id])
    }
    if not held:
        return 0
    session.execute(
        update(HumanTask)
        .where(HumanTask.id.in_(sorted(held)), HumanTask.status == "open")
        .values(assignee=to.username)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        insert(InstanceEvent),
        [
            {
                "instance_id": row.instance_id,
                "at": now,
                "kind": "task_reassigned",
                "actor": "rule:recycle_pools",
                "bpmn_id": row.bpmn_id,
                "task_id": row.task_id,
                "detail": {
                    "from": row.assignee or row.candidate_user,
                    "to": to.username,
                    "reason": reason,
                },
            }
            for row in held.values()
        ],
    )
    return len(held)
