"""Leads as CRM users work them: who sees, captures, claims, assigns and qualifies which lead.

The services in `crm.leads.services` are what the lead-to-cash process calls (no user to check);
these add the user's rights on top. Qualifying (convert, disqualify, return to the pool) completes
the lead's open "qualify the lead" task, so the process stays the one way a lead moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm.customers.models import Pool
from crm.directory.models import User
from crm.directory.services import managed_user_ids, visible_owner_ids
from crm.errors import Conflict, Forbidden, NotFound, fields_error, msg
from crm.leads.models import LEAD_STATUSES, Lead
from crm.leads.services import assign_lead, create_lead, get_lead
from crm.pool.allocation import ALLOCATING_ROLES
from crm.pool.services import CLAIMING_ROLES, mask_email, mask_phone, pools_with_waiting
from crm.work import complete_task_as
from engine.models import HumanTask

CAPTURING_ROLES = frozenset({"marketing", "manager", "supervisor", "director", "admin"})
QUALIFY_TASK = "qualify_lead"
OPEN_STATUSES = ("new", "returned")


@dataclass(frozen=True)
class LeadView:
    """A lead as the user may see it: contact details are masked while it waits in a pool."""

    id: int
    name: str
    company: str | None
    phone: str | None
    email: str | None
    source: str | None
    status: str
    status_reason: str | None
    pool_id: int | None
    owner_id: int | None
    customer_id: int | None
    created_at: datetime
    converted_at: datetime | None
    masked: bool


def lead_view(lead: Lead) -> LeadView:
    masked = lead.owner_id is None
    return LeadView(
        id=lead.id,
        name=lead.name,
        company=lead.company,
        phone=mask_phone(lead.phone) if masked else lead.phone,
        email=mask_email(lead.email) if masked else lead.email,
        source=lead.source,
        status=lead.status,
        status_reason=lead.status_reason,
        pool_id=lead.pool_id,
        owner_id=lead.owner_id,
        customer_id=lead.customer_id,
        created_at=lead.created_at,
        converted_at=lead.converted_at,
        masked=masked,
    )


def show_lead(session: Session, user: User, lead_id: int) -> LeadView:
    """Return a lead in the user's scope, or one waiting in a pool (masked)."""
    return lead_view(get_lead(session, user, lead_id))


def list_leads(
    session: Session,
    user: User,
    *,
    status: str | None = None,
    pool_id: int | None = None,
    limit: int = 100,
) -> list[LeadView]:
    """Return the leads the user may see (their scope's, and pool leads), newest first."""
    if status is not None and status not in LEAD_STATUSES:
        raise fields_error(status=msg("must be one of %(items)s", items=", ".join(LEAD_STATUSES)))
    scope = visible_owner_ids(session, user)
    stmt = select(Lead).order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit)
    if scope is not None:
        stmt = stmt.where(or_(Lead.owner_id.is_(None), Lead.owner_id.in_(scope)))
    if status is not None:
        stmt = stmt.where(Lead.status == status)
    if pool_id is not None:
        stmt = stmt.where(Lead.pool_id == pool_id)
    return [lead_view(lead) for lead in session.scalars(stmt)]


def list_pool_leads(session: Session, pool_id: int, *, limit: int = 100) -> list[LeadView]:
    """Return the leads waiting in a lead pool (masked), oldest first."""
    pool = session.get(Pool, pool_id)
    if pool is None or pool.kind != "lead":
        raise NotFound(msg("lead pool %(id)s does not exist", id=pool_id))
    stmt = (
        select(Lead)
        .where(Lead.pool_id == pool_id, Lead.owner_id.is_(None), Lead.status.in_(OPEN_STATUSES))
        .order_by(Lead.id)
        .limit(limit)
    )
    return [lead_view(lead) for lead in session.scalars(stmt)]


def list_lead_pools(session: Session) -> list[tuple[Pool, int]]:
    """Return the lead pools with how many leads wait in each."""
    return pools_with_waiting(
        session, "lead", Lead.pool_id, Lead.owner_id.is_(None), Lead.status.in_(OPEN_STATUSES)
    )


def capture_lead(
    session: Session, user: User, name: str, *, now: datetime, pool_id: int, **details: Any
) -> Lead:
    """Put a new lead into a lead pool (marketing and managers, as for the CSV import)."""
    if not user.roles & CAPTURING_ROLES:
        raise Forbidden(msg("only marketing and managers capture leads into a pool"))
    pool = session.get(Pool, pool_id)
    if pool is None or pool.kind != "lead":
        raise fields_error(pool_id=msg("is not a lead pool"))
    return create_lead(session, user, name, now=now, pool_id=pool_id, **details)


def _open_lead(session: Session, user: User, lead_id: int) -> Lead:
    lead = get_lead(session, user, lead_id)
    if lead.owner_id is not None or lead.status not in OPEN_STATUSES:
        raise Conflict(
            msg("lead '%(name)s' is %(status)s, not waiting", name=lead.name, status=lead.status)
        )
    return lead


def claim_lead(session: Session, user: User, lead_id: int, *, now: datetime) -> Lead:
    """Take a waiting lead for oneself (reps); this starts its lead-to-cash process."""
    if not user.active or not user.roles & CLAIMING_ROLES:
        raise Forbidden(msg("only active reps may claim leads"))
    lead = _open_lead(session, user, lead_id)
    return assign_lead(session, user, lead.id, user, now=now)


def assign_lead_to(session: Session, user: User, lead_id: int, to: User, *, now: datetime) -> Lead:
    """Give a waiting lead to a rep: managers to their teams, directors and admins to anyone."""
    if not user.roles & ALLOCATING_ROLES:
        raise Forbidden(msg("only managers assign leads"))
    if not to.active or not to.roles & CLAIMING_ROLES:
        raise fields_error(user_id=msg("is not an active rep"))
    if not user.roles & {"director", "admin"} and to.id not in managed_user_ids(session, user):
        raise Forbidden(msg("%(name)s is not in your team", name=to.username))
    lead = _open_lead(session, user, lead_id)
    return assign_lead(session, user, lead.id, to, now=now)


def qualification_task(session: Session, user: User, lead_id: int) -> HumanTask:
    """Return the open "qualify the lead" task of a lead the user may see."""
    lead = get_lead(session, user, lead_id)
    if lead.owner_id is None:
        raise Conflict(msg("lead '%(name)s' is not being worked by anyone", name=lead.name))
    task = session.scalar(
        select(HumanTask)
        .where(
            HumanTask.subject_type == "lead",
            HumanTask.subject_id == lead.id,
            HumanTask.bpmn_id == QUALIFY_TASK,
            HumanTask.status == "open",
        )
        .order_by(HumanTask.id)
        .limit(1)
    )
    if task is None:
        raise Conflict(msg("lead '%(name)s' has no open qualification task", name=lead.name))
    return task


def qualify_lead(
    session: Session, user: User, lead_id: int, data: dict[str, Any], *, now: datetime
) -> Lead:
    """Convert, disqualify or return a lead by completing its qualification task."""
    task = qualification_task(session, user, lead_id)
    complete_task_as(session, user, task.id, data, now=now)
    lead = session.get(Lead, lead_id, populate_existing=True)
    assert lead is not None
    return lead
