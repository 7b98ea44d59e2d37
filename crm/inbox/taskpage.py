"""The task page: what a task is about, who may fill it in, drafts, and what opened next."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import User
from crm.directory.services import actor_for, can_see_owner, visible_owner_ids
from crm.errors import Conflict, Forbidden
from crm.inbox.queries import ORDER_CHILDREN, OWNED_WITH_CUSTOMER, owned_by
from crm.leads.models import Lead
from crm.orders.models import SalesOrder
from crm.sales.models import Opportunity
from crm.work import (
    _acting_actor,  # the one rule for "may act on this task", kept private there
    get_task_as,
)
from engine.models import HumanTask, ProcessDefinition, ProcessInstance
from engine.runtime import ChangeOutcome

MANAGING_ROLES = frozenset({"supervisor", "manager", "director", "admin", "ops"})


@dataclass(frozen=True)
class DealSummary:
    id: int
    name: str
    amount: Any
    currency: str
    stage: str | None
    win_rate: int


@dataclass(frozen=True)
class TaskContext:
    """What a task is about, shown beside its form: the customer (or lead) and open deals."""

    name: str
    kind: str  # "customer" or "lead"
    tier: str | None = None
    owner: str | None = None
    phone: str | None = None
    deals: list[DealSummary] = field(default_factory=list)


def _subject_customer(session: Session, task: HumanTask) -> tuple[Customer | None, Lead | None]:
    kind, subject_id = task.subject_type, task.subject_id
    if kind is None or subject_id is None:
        return None, None
    if kind == "lead":
        lead = session.get(Lead, subject_id)
        customer = session.get(Customer, lead.customer_id) if lead and lead.customer_id else None
        return customer, lead
    customer_id: int | None = subject_id if kind == "customer" else None
    direct: dict[str, Any] = dict(OWNED_WITH_CUSTOMER)
    children: dict[str, Any] = dict(ORDER_CHILDREN)
    if kind in direct:
        model = direct[kind]
        customer_id = session.scalar(select(model.customer_id).where(model.id == subject_id))
    elif kind in children:
        model = children[kind]
        customer_id = session.scalar(
            select(SalesOrder.customer_id)
            .join(model, model.order_id == SalesOrder.id)
            .where(model.id == subject_id)
        )
    return (session.get(Customer, customer_id) if customer_id else None), None


def task_context(session: Session, user: User, task: HumanTask) -> TaskContext | None:
    """Describe the record a task serves, as far as the user may see it."""
    customer, lead = _subject_customer(session, task)
    if customer is not None and can_see_owner(session, user, customer.owner_id):
        owner = session.get(User, customer.owner_id) if customer.owner_id else None
        scope = visible_owner_ids(session, user)
        deals = session.scalars(
            select(Opportunity)
            .where(
                Opportunity.customer_id == customer.id,
                Opportunity.status == "open",
                owned_by(Opportunity.owner_id, scope),
            )
            .order_by(Opportunity.expected_close.is_(None), Opportunity.expected_close)
            .limit(10)
        )
        return TaskContext(
            name=customer.name,
            kind="customer",
            tier=customer.tier,
            owner=owner.display_name if owner else None,
            phone=customer.phone,
            deals=[
                DealSummary(d.id, d.name, d.amount, d.currency, d.stage, d.win_rate) for d in deals
            ],
        )
    if lead is not None and can_see_owner(session, user, lead.owner_id):
        owner = session.get(User, lead.owner_id) if lead.owner_id else None
        return TaskContext(
            name=lead.company or lead.name,
            kind="lead",
            owner=owner.display_name if owner else None,
            phone=lead.phone,
        )
    return None


def task_form_schemas(
    session: Session, task: HumanTask, instance: ProcessInstance | None = None
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Return the task's JSON Schema (None: no form) and UI schema, from its process version.

    `instance`: the task's instance with its definition already read (by a task lock).
    """
    if not task.form:
        return None, {}
    if instance is not None and instance.id == task.instance_id:
        forms: Any = instance.definition.forms
    else:
        forms = session.scalar(
            select(ProcessDefinition.forms)
            .join(ProcessInstance, ProcessInstance.definition_id == ProcessDefinition.id)
            .where(ProcessInstance.id == task.instance_id)
        )
    forms = forms if isinstance(forms, dict) else {}
    schema, ui = forms.get(task.form), forms.get(task.ui_form or "")
    return (schema if isinstance(schema, dict) else None), (ui if isinstance(ui, dict) else {})


def may_act_on(session: Session, user: User, task: HumanTask) -> bool:
    """Tell whether the user may fill in and complete the task (theirs, offered, their team's)."""
    try:
        _acting_actor(session, user, task)
    except Forbidden:
        return False
    return True


def may_manage_tasks(user: User) -> bool:
    """Tell whether the user may reassign and complete tasks in bulk."""
    return bool(user.roles & MANAGING_ROLES)


def is_closed_task(session: Session, task_id: int) -> bool:
    """Tell whether a task exists but is no longer open (a form for it is stale)."""
    status = session.scalar(select(HumanTask.status).where(HumanTask.id == task_id))
    return status is not None and status != "open"


def save_task_draft(
    session: Session, user: User, task_id: int, values: dict[str, Any], *, now: datetime
) -> HumanTask:
    """Keep what the user has typed so far on the task, to show it again next time."""
    task = get_task_as(session, user, task_id)
    if task.status != "open":
        raise Conflict(f"task '{task.title}' was already {task.status}")
    _acting_actor(session, user, task)
    task.draft = values
    session.flush()
    return task


def tasks_opened_for(user: User, outcome: ChangeOutcome) -> list[HumanTask]:
    """Return the tasks a change opened that the user holds or may claim."""
    roles, teams = user.roles, actor_for(user).teams
    return [
        t
        for t in outcome.new_tasks
        if t.assignee == user.username
        or (
            t.assignee is None
            and (
                t.candidate_user == user.username
                or t.candidate_role in roles
                or t.candidate_team in teams
            )
        )
    ]
