"""Everything about one customer on one page: contacts, deals, quotes, orders, activities, owners
and the processes running for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, aliased

from crm.activities.services import ActivityRow, customer_activities
from crm.customers.models import Contact, Customer, OwnerChange, Pool
from crm.customers.services import get_customer
from crm.directory.models import Territory, User
from crm.directory.services import visible_owner_ids
from crm.leads.models import Lead
from crm.orders.models import InvoiceRequest
from crm.orders.queries import OrderSummary, attach_payments, list_orders
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.models import HumanTask, ProcessInstance

ACTIVE_INSTANCE_STATUSES = ("running", "waiting", "suspended", "error")


@dataclass(frozen=True)
class OwnerChangeRow:
    change: OwnerChange
    from_name: str | None
    to_name: str | None


@dataclass(frozen=True)
class RunningProcess:
    instance: ProcessInstance
    open_tasks: list[HumanTask]


@dataclass
class CustomerProfile:
    customer: Customer
    owner: User | None
    territory: Territory | None
    pool: Pool | None
    contacts: list[Contact] = field(default_factory=list)
    deals: list[Opportunity] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)
    orders: list[OrderSummary] = field(default_factory=list)
    activities: list[ActivityRow] = field(default_factory=list)
    owner_history: list[OwnerChangeRow] = field(default_factory=list)
    processes: list[RunningProcess] = field(default_factory=list)


def _scoped(column: Any, scope: set[int] | None) -> list[Any]:
    return [] if scope is None else [column.in_(scope)]


def customer_profile(
    session: Session, user: User, customer_id: int, *, now: datetime
) -> CustomerProfile:
    """Return the customer 360 view; records of people outside the user's scope are left out."""
    customer = get_customer(session, user, customer_id)
    scope = visible_owner_ids(session, user)
    profile = CustomerProfile(
        customer=customer,
        owner=session.get(User, customer.owner_id) if customer.owner_id else None,
        territory=session.get(Territory, customer.territory_id) if customer.territory_id else None,
        pool=session.get(Pool, customer.pool_id) if customer.pool_id else None,
    )
    profile.contacts = list(
        session.scalars(
            select(Contact)
            .where(Contact.customer_id == customer.id)
            .order_by(Contact.influence.desc(), Contact.name)
        )
    )
    profile.deals = list(
        session.scalars(
            select(Opportunity)
            .where(Opportunity.customer_id == customer.id, *_scoped(Opportunity.owner_id, scope))
            .order_by(Opportunity.created_at.desc(), Opportunity.id.desc())
        )
    )
    profile.quotes = list(
        session.scalars(
            select(Quote)
            .where(Quote.customer_id == customer.id, *_scoped(Quote.owner_id, scope))
            .order_by(Quote.created_at.desc(), Quote.id.desc())
        )
    )
    profile.orders = attach_payments(
        session, list_orders(session, user, today=now.date(), customer_id=customer.id)
    )
    profile.activities = customer_activities(session, user, customer.id)
    profile.owner_history = owner_history(session, customer.id)
    profile.processes = running_processes(session, profile, scope)
    return profile


def owner_history(session: Session, customer_id: int) -> list[OwnerChangeRow]:
    """Return every change of the customer's owner, newest first."""
    previous, following = aliased(User), aliased(User)
    result = session.execute(
        select(OwnerChange, previous.display_name, following.display_name)
        .outerjoin(previous, previous.id == OwnerChange.from_user_id)
        .outerjoin(following, following.id == OwnerChange.to_user_id)
        .where(OwnerChange.customer_id == customer_id)
        .order_by(OwnerChange.changed_at.desc(), OwnerChange.id.desc())
    )
    return [OwnerChangeRow(change, before, after) for change, before, after in result]


def running_processes(
    session: Session, profile: CustomerProfile, scope: set[int] | None
) -> list[RunningProcess]:
    """Return the active instances serving the customer or its leads, deals, quotes and orders."""
    customer_id = profile.customer.id
    order_ids = [summary.order.id for summary in profile.orders]
    lead_conditions = [Lead.customer_id == customer_id]
    if scope is not None:
        lead_conditions.append(or_(Lead.owner_id.is_(None), Lead.owner_id.in_(scope)))
    subjects: dict[str, list[int]] = {
        "customer": [customer_id],
        "lead": list(session.scalars(select(Lead.id).where(*lead_conditions))),
        "opportunity": [deal.id for deal in profile.deals],
        "quote": [quote.id for quote in profile.quotes],
        "order": order_ids,
        "installment": [
            line.installment.id for summary in profile.orders for line in summary.installments
        ],
        "invoice_request": list(
            session.scalars(select(InvoiceRequest.id).where(InvoiceRequest.order_id.in_(order_ids)))
        )
        if order_ids
        else [],
    }
    matches = [
        and_(ProcessInstance.subject_type == kind, ProcessInstance.subject_id.in_(ids))
        for kind, ids in subjects.items()
        if ids
    ]
    instances = list(
        session.scalars(
            select(ProcessInstance)
            .where(or_(*matches), ProcessInstance.status.in_(ACTIVE_INSTANCE_STATUSES))
            .order_by(ProcessInstance.started_at.desc(), ProcessInstance.id.desc())
        )
    )
    tasks: dict[int, list[HumanTask]] = {i.id: [] for i in instances}
    if tasks:
        for task in session.scalars(
            select(HumanTask)
            .where(HumanTask.instance_id.in_(tasks), HumanTask.status == "open")
            .order_by(HumanTask.id)
        ):
            tasks[task.instance_id].append(task)
    return [RunningProcess(i, tasks[i.id]) for i in instances]
