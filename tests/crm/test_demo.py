"""The demo company: every role can sign in, records are spread out, loading twice is safe."""

from __future__ import annotations

from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from crm.customers.models import Customer
from crm.demo import DEMO_PASSWORD, load_demo
from crm.directory.models import ROLES, User
from crm.leads.models import Lead
from tests.conftest import NOW


def test_demo_load_creates_company_once(session):
    first = load_demo(session, now=NOW, customers=40)
    assert first.created
    again = load_demo(session, now=NOW, customers=40)
    assert not again.created
    users = session.scalars(select(User)).all()
    assert len(users) == 14
    assert set().union(*(u.roles for u in users)) == set(ROLES)
    assert all(check_password_hash(u.password_hash, DEMO_PASSWORD) for u in users)
    assert session.scalar(select(func.count()).select_from(Customer)) == 40
    tiers = set(session.scalars(select(Customer.tier)))
    assert len(tiers) >= 4
    in_pool = session.scalar(
        select(func.count()).select_from(Customer).where(Customer.owner_id.is_(None))
    )
    assert 0 < in_pool < 40
    assert (
        session.scalar(select(func.count()).select_from(Lead).where(Lead.pool_id.is_not(None)))
        == 30
    )


def test_demo_load_puts_deals_in_every_stage_with_approvals_and_payments_waiting(session, deploy):
    from crm.orders.models import Installment
    from crm.quotes.models import Quote
    from crm.sales.models import Opportunity
    from engine.models import HumanTask

    deploy()
    result = load_demo(session, now=NOW, customers=20)
    assert result.deals >= 15
    stages = set(session.scalars(select(Opportunity.stage).where(Opportunity.status == "open")))
    assert {"qualification", "needs_analysis", "proposal", "negotiation", "closing"} <= stages
    assert (
        session.scalar(
            select(func.count()).select_from(Opportunity).where(Opportunity.status == "won")
        )
        >= 1
    )
    assert (
        session.scalar(select(func.count()).select_from(Quote).where(Quote.status == "pending"))
        >= 1
    )
    waiting_approvals = session.scalar(
        select(func.count())
        .select_from(HumanTask)
        .where(HumanTask.status == "open", HumanTask.process_id == "quote_approval")
    )
    assert waiting_approvals >= 1
    assert (
        session.scalar(
            select(func.count()).select_from(Installment).where(Installment.status == "open")
        )
        >= 3
    )
