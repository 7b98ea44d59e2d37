"""One deal as its page shows it: customer, stage history, quotes and the open stage task."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import User
from crm.directory.services import visible_owner_ids
from crm.quotes.models import Quote
from crm.sales.board import find_stage_task, neighbour_stages
from crm.sales.models import Opportunity, StageChange
from crm.sales.services import get_opportunity
from engine.models import HumanTask


@dataclass
class DealPage:
    deal: Opportunity
    customer: Customer
    owner: User | None
    stage_history: list[StageChange]
    quotes: list[Quote]
    stage_task: HumanTask | None
    previous_stage: str | None
    next_stage: str | None


def deal_page(session: Session, user: User, opportunity_id: int) -> DealPage:
    """Return a deal the user may see with what its page shows."""
    deal = get_opportunity(session, user, opportunity_id)
    customer = session.get(Customer, deal.customer_id)
    assert customer is not None  # a foreign key
    scope = visible_owner_ids(session, user)
    quotes = select(Quote).where(Quote.opportunity_id == deal.id)
    if scope is not None:
        quotes = quotes.where(Quote.owner_id.in_(scope))
    task = find_stage_task(session, deal) if deal.status == "open" else None
    before, after = neighbour_stages(session, deal.pipeline, deal.stage)
    return DealPage(
        deal=deal,
        customer=customer,
        owner=session.get(User, deal.owner_id),
        stage_history=list(
            session.scalars(
                select(StageChange)
                .where(StageChange.opportunity_id == deal.id)
                .order_by(StageChange.changed_at.desc(), StageChange.id.desc())
            )
        ),
        quotes=list(session.scalars(quotes.order_by(Quote.id.desc()))),
        stage_task=task,
        previous_stage=before if task else None,
        next_stage=after if task else None,
    )
