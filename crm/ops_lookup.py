"""What the ops console asks the CRM: which records belong to a customer or an owner, whose
record an instance serves, and one instance with everything the console shows about it.

An instance serves one record (`subject_type`, `subject_id`): a lead, opportunity, quote, order,
installment, invoice request, customer or user. Importing this module installs the lookup the
engine's instance filters use for "customer" and "owner".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import User
from crm.leads.models import Lead
from crm.orders.models import Installment, InvoiceRequest, SalesOrder
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.actor import Actor
from engine.instance_elements import element_states
from engine.instance_queries import SubjectChoice, set_subject_lookup
from engine.instances import get_instance
from engine.models import (
    HumanTask,
    Incident,
    InstanceEvent,
    InstanceTimer,
    MessageSubscription,
    ProcessInstance,
)
from engine.views import describe_instance

# The instance page shows this many of the newest history entries.
EVENT_LIMIT = 500

# Records whose own row names their customer and owner.
_DIRECT: dict[str, Any] = {"opportunity": Opportunity, "quote": Quote, "order": SalesOrder}
# Records that belong to an order, and through it to a customer and an owner.
_ORDER_CHILDREN: dict[str, Any] = {"installment": Installment, "invoice_request": InvoiceRequest}


def customer_subjects(customer_id: int) -> list[SubjectChoice]:
    """Return every record kind an instance can serve, narrowed to this customer's records."""
    choices: list[SubjectChoice] = [
        ("customer", [customer_id]),
        ("lead", select(Lead.id).where(Lead.customer_id == customer_id)),
    ]
    choices += [
        (kind, select(model.id).where(model.customer_id == customer_id))
        for kind, model in _DIRECT.items()
    ]
    choices += [
        (
            kind,
            select(model.id)
            .join(SalesOrder, SalesOrder.id == model.order_id)
            .where(SalesOrder.customer_id == customer_id),
        )
        for kind, model in _ORDER_CHILDREN.items()
    ]
    return choices


def owner_subjects(session: Session, username: str) -> list[SubjectChoice]:
    """Return the records owned by the user with this username (nothing if there is none)."""
    user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        return []
    choices: list[SubjectChoice] = [
        ("user", [user_id]),
        ("customer", select(Customer.id).where(Customer.owner_id == user_id)),
        ("lead", select(Lead.id).where(Lead.owner_id == user_id)),
    ]
    choices += [
        (kind, select(model.id).where(model.owner_id == user_id)) for kind, model in _DIRECT.items()
    ]
    choices += [
        (
            kind,
            select(model.id)
            .join(SalesOrder, SalesOrder.id == model.order_id)
            .where(SalesOrder.owner_id == user_id),
        )
        for kind, model in _ORDER_CHILDREN.items()
    ]
    return choices


def lookup_subjects(session: Session, kind: str, key: int | str) -> list[SubjectChoice]:
    """Resolve the engine's ('customer', id) or ('owner', username) filter."""
    if kind == "customer":
        return customer_subjects(int(key))
    if kind == "owner":
        return owner_subjects(session, str(key))
    raise ValueError(f"unknown subject filter {kind!r}")


@dataclass(frozen=True)
class SubjectLabel:
    """Whose record an instance serves, in words."""

    customer_id: int | None
    customer: str | None
    owner: str | None


def subject_labels(
    session: Session, subjects: Iterable[tuple[str | None, int | None]]
) -> dict[tuple[str, int], SubjectLabel]:
    """Name the customer and the owner of each (subject type, subject id)."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for kind, subject_id in subjects:
        if kind and subject_id is not None:
            wanted[kind].add(subject_id)
    # (kind, id) -> (customer id, owner id)
    links: dict[tuple[str, int], tuple[int | None, int | None]] = {}
    for kind, ids in wanted.items():
        links.update({(kind, i): link for i, link in _links(session, kind, ids).items()})
    customer_ids = {c for c, _ in links.values() if c is not None}
    user_ids = {o for _, o in links.values() if o is not None}
    customers = (
        dict(
            session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(customer_ids)))
            .tuples()
            .all()
        )
        if customer_ids
        else {}
    )
    users = (
        dict(
            session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
            .tuples()
            .all()
        )
        if user_ids
        else {}
    )
    return {
        key: SubjectLabel(
            customer_id,
            customers.get(customer_id) if customer_id else None,
            users.get(owner_id) if owner_id else None,
        )
        for key, (customer_id, owner_id) in links.items()
    }


def _links(session: Session, kind: str, ids: set[int]) -> dict[int, tuple[int | None, int | None]]:
    query: Any
    if kind == "customer":
        query = select(Customer.id, Customer.id, Customer.owner_id).where(Customer.id.in_(ids))
    elif kind == "user":
        return {i: (None, i) for i in ids}
    elif kind == "lead":
        query = select(Lead.id, Lead.customer_id, Lead.owner_id).where(Lead.id.in_(ids))
    elif kind in _DIRECT:
        model = _DIRECT[kind]
        query = select(model.id, model.customer_id, model.owner_id).where(model.id.in_(ids))
    elif kind in _ORDER_CHILDREN:
        model = _ORDER_CHILDREN[kind]
        query = (
            select(model.id, SalesOrder.customer_id, SalesOrder.owner_id)
            .join(SalesOrder, SalesOrder.id == model.order_id)
            .where(model.id.in_(ids))
        )
    else:
        return {}
    return {row[0]: (row[1], row[2]) for row in session.execute(query)}


@dataclass(frozen=True)
class InstanceOverview:
    """One instance as the ops console shows it."""

    instance: ProcessInstance
    label: SubjectLabel | None  # the customer and owner of the record it serves
    states: dict[str, str]  # bpmn id -> error | active | completed | cancelled
    data: dict[str, Any]  # the data of the task that ran last
    open_tasks: list[HumanTask]
    timers: list[InstanceTimer]  # waiting ones
    subscriptions: list[MessageSubscription]
    incidents: list[Incident]  # open and resolved, newest first
    events: list[InstanceEvent]  # newest first, at most EVENT_LIMIT
    more_events: bool


def instance_overview(session: Session, actor: Actor, instance_id: int) -> InstanceOverview:
    """Return the instance with its element states, data, live waits, incidents and history."""
    states = element_states(session, actor, instance_id)  # checks the actor may see it
    instance = get_instance(session, instance_id)
    mine = instance_id
    events = list(
        session.scalars(
            select(InstanceEvent)
            .where(InstanceEvent.instance_id == mine)
            .order_by(InstanceEvent.id.desc())
            .limit(EVENT_LIMIT + 1)
        )
    )
    labels = subject_labels(session, [(instance.subject_type, instance.subject_id)])
    return InstanceOverview(
        instance=instance,
        label=labels.get((instance.subject_type or "", instance.subject_id or 0)),
        states=states,
        data=describe_instance(session, instance)["data"],
        open_tasks=list(
            session.scalars(
                select(HumanTask)
                .where(HumanTask.instance_id == mine, HumanTask.status == "open")
                .order_by(HumanTask.id)
            )
        ),
        timers=list(
            session.scalars(
                select(InstanceTimer)
                .where(InstanceTimer.instance_id == mine, InstanceTimer.status == "waiting")
                .order_by(InstanceTimer.fire_at)
            )
        ),
        subscriptions=list(
            session.scalars(
                select(MessageSubscription)
                .where(MessageSubscription.instance_id == mine)
                .order_by(MessageSubscription.id)
            )
        ),
        incidents=list(
            session.scalars(
                select(Incident).where(Incident.instance_id == mine).order_by(Incident.id.desc())
            )
        ),
        events=events[:EVENT_LIMIT],
        more_events=len(events) > EVENT_LIMIT,
    )


set_subject_lookup(lookup_subjects)
