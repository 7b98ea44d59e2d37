"""Leads: capture, assignment (which starts lead-to-cash), conversion, disqualification."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from crm.customers.models import BUYING_ROLES
from crm.customers.services import add_contact, create_customer, possible_duplicates
from crm.directory.models import User
from crm.directory.services import actor_for, can_see_owner
from crm.errors import Conflict, NotFound, fields_error, msg
from crm.leads.models import Lead
from crm.sales.services import create_opportunity
from engine.instances import start_instance

LEAD_TO_CASH = "lead_to_cash"


def create_lead(
    session: Session,
    by: User,
    name: str,
    *,
    now: datetime,
    company: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    source: str | None = None,
    campaign_id: int | None = None,
    pool_id: int | None = None,
) -> Lead:
    """Capture a lead into a pool (or unassigned)."""
    if not name or not name.strip():
        raise fields_error(name="is required")
    lead = Lead(
        name=name.strip(),
        company=company,
        phone=phone,
        email=email,
        source=source,
        campaign_id=campaign_id,
        pool_id=pool_id,
        status="new",
        created_at=now,
    )
    session.add(lead)
    session.flush()
    return lead


def get_lead(session: Session, user: User, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    if lead is None or not can_see_owner(session, user, lead.owner_id):
        raise NotFound(msg("lead %(id)s does not exist", id=lead_id))
    return lead


def assign_lead(session: Session, by: User, lead_id: int, owner: User, *, now: datetime) -> Lead:
    """Give a lead to a rep and start its lead-to-cash process."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(msg("lead %(id)s does not exist", id=lead_id))
    if lead.owner_id is not None or lead.status not in ("new", "returned"):
        raise Conflict(
            msg("lead '%(name)s' is already %(status)s", name=lead.name, status=lead.status)
        )
    lead.owner_id, lead.status = owner.id, "working"
    session.flush()
    start_instance(
        session,
        actor_for(by),
        LEAD_TO_CASH,
        now=now,
        business_key=f"lead:{lead.id}",
        subject=("lead", lead.id),
        data={
            "lead_id": lead.id,
            "lead_name": lead.name,
            "company": lead.company or "",
            "owner": owner.username,
        },
    )
    return lead


def convert_lead(
    session: Session,
    lead_id: int,
    *,
    now: datetime,
    customer_name: str,
    contact_name: str,
    contact_title: str | None,
    contact_buying_role: str | None,
    opportunity_name: str,
    amount: Any,
    currency: str,
    expected_close: date | None,
    pipeline: str,
    confirm_duplicate: bool = False,
) -> dict[str, int]:
    """Turn a working lead into a customer, a contact and an opportunity, owned by its rep."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(msg("lead %(id)s does not exist", id=lead_id))
    if lead.status != "working" or lead.owner_id is None:
        raise Conflict(
            msg(
                "lead '%(name)s' is %(status)s, not being worked",
                name=lead.name,
                status=lead.status,
            )
        )
    if contact_buying_role and contact_buying_role not in BUYING_ROLES:
        raise fields_error(
            contact_buying_role=msg("must be one of %(items)s", items=", ".join(BUYING_ROLES))
        )
    owner = session.get(User, lead.owner_id)
    assert owner is not None
    existing = possible_duplicates(session, customer_name)
    if existing and confirm_duplicate:
        customer = existing[0]
    else:
        customer = create_customer(
            session,
            owner,
            customer_name,
            now=now,
            owner=owner,
            source=lead.source,
            reason="convert",
        )
    contact = add_contact(
        session,
        owner,
        customer.id,
        contact_name,
        title=contact_title,
        buying_role=contact_buying_role or None,
    )
    opportunity = create_opportunity(
        session,
        owner,
        customer.id,
        opportunity_name,
        amount,
        now=now,
        pipeline=pipeline,
        currency=currency,
        expected_close=expected_close,
        lead_id=lead.id,
    )
    lead.status, lead.customer_id, lead.converted_at = "converted", customer.id, now
    return {"customer_id": customer.id, "contact_id": contact.id, "opportunity_id": opportunity.id}


def close_lead(session: Session, lead_id: int, status: str, reason: str, *, now: datetime) -> Lead:
    """Disqualify a lead, or return it to its pool; both need a reason."""
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(msg("lead %(id)s does not exist", id=lead_id))
    if not (reason or "").strip():
        raise fields_error(reason="is required")
    if lead.status != "working":
        raise Conflict(
            msg(
                "lead '%(name)s' is %(status)s, not being worked",
                name=lead.name,
                status=lead.status,
            )
        )
    lead.status, lead.status_reason = status, reason.strip()
    if status == "returned":
        lead.owner_id = None
    return lead
