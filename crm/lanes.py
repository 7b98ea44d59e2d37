"""How the CRM answers the engine: who works on a lane's task, and what a new task means.

A lane names a relation to the record the instance serves, not a group: "Manager" is the
manager of that record's owner, not every manager.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.directory.services import director_over, manager_of, standing_in_for
from crm.leads.models import Lead
from crm.orders.models import Installment, InvoiceRequest, SalesOrder
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.models import HumanTask, ProcessInstance
from engine.sync import Candidates, LaneQuery, on_task_opened, set_lane_resolver

_OWNED = {
    "lead": Lead,
    "opportunity": Opportunity,
    "quote": Quote,
    "order": SalesOrder,
}


def owner_of_subject(
    session: Session, subject_type: str | None, subject_id: int | None
) -> User | None:
    """Return the owner of the record an instance serves, if it has one."""
    if subject_type is None or subject_id is None:
        return None
    if subject_type == "user":
        return session.get(User, subject_id)
    if subject_type == "installment":
        installment = session.get(Installment, subject_id)
        order = session.get(SalesOrder, installment.order_id) if installment else None
        return session.get(User, order.owner_id) if order else None
    if subject_type == "invoice_request":
        request = session.get(InvoiceRequest, subject_id)
        order = session.get(SalesOrder, request.order_id) if request else None
        return session.get(User, order.owner_id) if order else None
    model = _OWNED.get(subject_type)
    record = session.get(model, subject_id) if model is not None else None
    owner_id = getattr(record, "owner_id", None)
    return session.get(User, owner_id) if owner_id is not None else None


def resolve_lane(query: LaneQuery) -> Candidates:
    """Map a lane to the person (or role) who should do the task."""
    session, instance = query.session, query.instance
    lane = (query.lane or "").strip().lower()
    owner = owner_of_subject(session, instance.subject_type, instance.subject_id)
    person: User | None = None
    if not lane:
        return Candidates(user=instance.started_by)
    if lane == "rep":
        person = owner
    elif lane == "manager":
        person = manager_of(session, owner) if owner else None
    elif lane == "director":
        person = director_over(session, owner) if owner else None
    if person is not None:
        return Candidates(role=lane, user=standing_in_for(session, person).username)
    return Candidates(role=lane.replace(" ", "_"))


def _enter_stage(
    session: Session, instance: ProcessInstance, task: HumanTask, data: dict[str, Any]
) -> None:
    props = task.properties or {}
    if "stage" not in props or "opportunity_id" not in data:
        return
    from crm.sales.services import enter_stage

    enter_stage(
        session,
        int(data["opportunity_id"]),
        props["stage"],
        int(props.get("win_rate", 0)),
        now=task.created_at,
        by=None,
    )


def install() -> None:
    """Connect the CRM to the engine (called once when the crm package is imported)."""
    set_lane_resolver(resolve_lane)
    on_task_opened(_enter_stage)
