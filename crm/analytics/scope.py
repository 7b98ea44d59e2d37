"""Who may see which analytics, and the filters every figure shares (team, rep, territory,
product, period)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import Team, Territory, User
from crm.directory.services import team_subtree, visible_owner_ids
from crm.errors import Forbidden, NotFound, fields_error
from crm.quotes.models import Product, Quote, QuoteLine
from crm.sales.models import PIPELINES, Opportunity

ANALYTICS_ROLES = frozenset({"rep", "supervisor", "manager", "director", "admin"})
DASHBOARD_ROLES = frozenset({"supervisor", "manager", "director", "admin"})


def require_analytics(user: User, *, dashboard: bool = False) -> None:
    """Refuse people whose work has no sales figures (finance, marketing, ops)."""
    allowed = DASHBOARD_ROLES if dashboard else ANALYTICS_ROLES
    if not user.roles & allowed:
        what = "the sales dashboard" if dashboard else "sales analytics"
        raise Forbidden(f"{what} is for {', '.join(sorted(allowed))}")


@dataclass(frozen=True)
class DealFilter:
    """What a funnel or forecast looks at; None means no restriction."""

    pipeline: str | None = "new_business"  # None: every pipeline
    period_start: date | None = None
    period_end: date | None = None  # the first day after the period
    team_id: int | None = None
    owner_id: int | None = None
    territory_id: int | None = None
    product_id: int | None = None

    def check(self) -> None:
        if self.pipeline is not None and self.pipeline not in PIPELINES:
            raise fields_error(pipeline=f"must be one of {', '.join(PIPELINES)}")
        if self.period_start and self.period_end and self.period_end <= self.period_start:
            raise fields_error(period_end="must be after the start of the period")


def team_member_ids(session: Session, team_id: int) -> set[int]:
    """Return the users in a team and every team below it (and its managers)."""
    teams = team_subtree(session, [team_id])
    members = set(session.scalars(select(User.id).where(User.team_id.in_(teams))))
    managers = session.scalars(select(Team.manager_id).where(Team.id.in_(teams)))
    return members | {m for m in managers if m is not None}


def owner_scope(session: Session, user: User, flt: DealFilter) -> set[int] | None:
    """Return whose deals the figures cover: the user's data scope narrowed by team and rep.

    A team or rep outside the user's scope is refused, not silently shown as empty.
    """
    require_analytics(user)
    scope = visible_owner_ids(session, user)
    if flt.team_id is not None:
        if session.get(Team, flt.team_id) is None:
            raise NotFound(f"team {flt.team_id} does not exist")
        members = team_member_ids(session, flt.team_id)
        if scope is not None and not members <= scope:
            raise Forbidden(f"team {flt.team_id} is outside your scope")
        scope = members
    if flt.owner_id is not None:
        if session.get(User, flt.owner_id) is None:
            raise NotFound(f"user {flt.owner_id} does not exist")
        if scope is not None and flt.owner_id not in scope:
            if flt.team_id is None:
                raise Forbidden(f"user {flt.owner_id} is outside your scope")
            return set()
        scope = {flt.owner_id}
    if flt.territory_id is not None and session.get(Territory, flt.territory_id) is None:
        raise NotFound(f"territory {flt.territory_id} does not exist")
    if flt.product_id is not None and session.get(Product, flt.product_id) is None:
        raise NotFound(f"product {flt.product_id} does not exist")
    return scope


def deal_conditions(flt: DealFilter, owners: set[int] | None) -> list[Any]:
    """Return WHERE conditions on `Opportunity` for the filter (pipeline, owners, territory,
    product)."""
    conditions: list[Any] = []
    if flt.pipeline is not None:
        conditions.append(Opportunity.pipeline == flt.pipeline)
    if owners is not None:
        conditions.append(Opportunity.owner_id.in_(sorted(owners)))
    if flt.territory_id is not None:
        conditions.append(
            Opportunity.customer_id.in_(
                select(Customer.id).where(Customer.territory_id == flt.territory_id)
            )
        )
    if flt.product_id is not None:
        conditions.append(
            exists(
                select(QuoteLine.id)
                .join(Quote, Quote.id == QuoteLine.quote_id)
                .where(
                    Quote.opportunity_id == Opportunity.id,
                    QuoteLine.product_id == flt.product_id,
                )
            )
        )
    return conditions
