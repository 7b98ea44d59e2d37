"""Campaign figures: leads, lead -> customer -> won conversion, revenue, cash and ROI.

A lead counts for a campaign when `lead.campaign_id` names it; it counts as a customer once
converted (`lead.customer_id` set) and as won when an opportunity created from it
(`opportunity.lead_id`) is won. Revenue is the amount of those won opportunities; cash is what
was received on their orders. ROI = (revenue - cost) / cost, shown in per cent to two places
(ROUND_HALF_UP); a campaign without cost has no ROI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.directory.services import managed_user_ids
from crm.errors import Forbidden
from crm.leads.models import Campaign, Lead
from crm.orders.models import Receipt, SalesOrder
from crm.sales.models import Opportunity

ALL_CAMPAIGNS_ROLES = frozenset({"marketing", "director", "admin"})
TEAM_ROLES = frozenset({"manager", "supervisor"})
PCT = Decimal("0.01")


def percent(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """Return part / whole in per cent to two places, half up (None when whole is 0)."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(PCT, rounding=ROUND_HALF_UP)


@dataclass
class CampaignFigures:
    key: str  # campaign name, or channel
    channel: str
    campaign_id: int | None
    cost: Decimal | None  # None: hidden from a team-scoped reader
    leads: int = 0
    customers: int = 0
    won: int = 0  # leads with at least one won opportunity
    revenue: Decimal = Decimal(0)
    cash: Decimal = Decimal(0)

    @property
    def customer_rate(self) -> Decimal | None:
        return percent(self.customers, self.leads)

    @property
    def win_rate(self) -> Decimal | None:
        """Won leads per converted lead (customer -> won)."""
        return percent(self.won, self.customers)

    @property
    def lead_to_won_rate(self) -> Decimal | None:
        return percent(self.won, self.leads)

    @property
    def roi_pct(self) -> Decimal | None:
        if self.cost is None or not self.cost:
            return None
        return percent(self.revenue - self.cost, self.cost)

    def add(self, other: CampaignFigures) -> None:
        self.leads += other.leads
        self.customers += other.customers
        self.won += other.won
        self.revenue += other.revenue
        self.cash += other.cash
        if self.cost is not None and other.cost is not None:
            self.cost += other.cost
        else:
            self.cost = None


@dataclass(frozen=True)
class CampaignReport:
    campaigns: list[CampaignFigures]
    channels: list[CampaignFigures]
    total: CampaignFigures
    team_scoped: bool  # a manager's view: only their team's leads, no cost or ROI


def _lead_scope(session: Session, user: User) -> set[int] | None:
    if user.roles & ALL_CAMPAIGNS_ROLES:
        return None
    if user.roles & TEAM_ROLES:
        return managed_user_ids(session, user)
    raise Forbidden("campaign figures are for marketing, managers and directors")


def _moment(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def campaign_report(
    session: Session,
    user: User,
    *,
    start: date | None = None,
    end: date | None = None,
    channel: str | None = None,
) -> CampaignReport:
    """Return the figures per campaign and per channel for leads created in [start, end)."""
    scope = _lead_scope(session, user)
    query = select(Campaign).order_by(Campaign.name)
    if channel:
        query = query.where(Campaign.channel == channel)
    campaigns = list(session.scalars(query))
    leads = select(Lead.id, Lead.campaign_id, Lead.customer_id).where(
        Lead.campaign_id.in_([c.id for c in campaigns])
    )
    if start is not None:
        leads = leads.where(Lead.created_at >= _moment(start))
    if end is not None:
        leads = leads.where(Lead.created_at < _moment(end))
    if scope is not None:
        leads = leads.where(Lead.owner_id.in_(scope))
    lead_rows = session.execute(leads).all()
    campaign_of: dict[int, int] = {
        lead_id: campaign_id for lead_id, campaign_id, _ in lead_rows if campaign_id is not None
    }
    won = session.execute(
        select(Opportunity.id, Opportunity.lead_id, Opportunity.amount).where(
            Opportunity.lead_id.in_(list(campaign_of)), Opportunity.status == "won"
        )
    ).all()
    cash_rows = session.execute(
        select(SalesOrder.opportunity_id, func.coalesce(func.sum(Receipt.amount), 0))
        .join(Receipt, Receipt.order_id == SalesOrder.id)
        .where(SalesOrder.opportunity_id.in_([opp_id for opp_id, _, _ in won]))
        .group_by(SalesOrder.opportunity_id)
    ).all()
    cash_of = {opp_id: Decimal(amount) for opp_id, amount in cash_rows}
    figures = {
        c.id: CampaignFigures(c.name, c.channel, c.id, c.cost if scope is None else None)
        for c in campaigns
    }
    for lead_id, _campaign_id, customer_id in lead_rows:
        figures[campaign_of[lead_id]].leads += 1
        figures[campaign_of[lead_id]].customers += customer_id is not None
    won_leads: set[int] = set()
    for opp_id, won_lead_id, amount in won:
        assert won_lead_id is not None  # selected by lead_id IN (...)
        row = figures[campaign_of[won_lead_id]]
        if won_lead_id not in won_leads:
            won_leads.add(won_lead_id)
            row.won += 1
        row.revenue += amount
        row.cash += cash_of.get(opp_id, Decimal(0))
    channels: dict[str, CampaignFigures] = {}
    total = CampaignFigures("total", "", None, Decimal(0) if scope is None else None)
    for row in figures.values():
        channels.setdefault(
            row.channel,
            CampaignFigures(row.channel, row.channel, None, Decimal(0) if scope is None else None),
        ).add(row)
        total.add(row)
    return CampaignReport(
        list(figures.values()),
        [channels[k] for k in sorted(channels)],
        total,
        scope is not None,
    )


def campaign_channels(session: Session) -> list[str]:
    return list(session.scalars(select(Campaign.channel).distinct().order_by(Campaign.channel)))
