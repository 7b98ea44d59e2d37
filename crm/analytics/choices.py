"""What the analytics filters offer a user: only teams and reps inside their scope."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import Team, Territory, User
from crm.directory.services import ALL_RECORDS_ROLES, team_subtree, visible_owner_ids
from crm.quotes.models import Product


@dataclass(frozen=True)
class FilterChoices:
    teams: list[tuple[int, str]]
    reps: list[tuple[int, str]]
    territories: list[tuple[int, str]]
    products: list[tuple[int, str]]


def visible_team_ids(session: Session, user: User) -> set[int] | None:
    """Return the teams whose figures the user may see (None: all)."""
    if user.roles & (ALL_RECORDS_ROLES | {"director"}):
        return None
    led = set(session.scalars(select(Team.id).where(Team.manager_id == user.id)))
    if "supervisor" in user.roles and user.team_id:
        led.add(user.team_id)
    return team_subtree(session, led) if led else set()


def filter_choices(session: Session, user: User) -> FilterChoices:
    teams_stmt = select(Team.id, Team.name).order_by(Team.name)
    team_ids = visible_team_ids(session, user)
    if team_ids is not None:
        teams_stmt = teams_stmt.where(Team.id.in_(sorted(team_ids)))
    reps_stmt = select(User.id, User.display_name).where(User.active.is_(True))
    owners = visible_owner_ids(session, user)
    if owners is not None:
        reps_stmt = reps_stmt.where(User.id.in_(sorted(owners)))
    return FilterChoices(
        teams=[(i, n) for i, n in session.execute(teams_stmt)] if team_ids != set() else [],
        reps=[(i, n) for i, n in session.execute(reps_stmt.order_by(User.display_name))],
        territories=[
            (i, n)
            for i, n in session.execute(
                select(Territory.id, Territory.name).order_by(Territory.name)
            )
        ],
        products=[
            (i, n)
            for i, n in session.execute(
                select(Product.id, Product.name)
                .where(Product.active.is_(True))
                .order_by(Product.name)
            )
        ],
    )
