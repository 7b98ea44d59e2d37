"""Users, teams and data scopes: who may see whose records, and who manages whom."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import ROLES, Notification, Team, User, UserRole
from crm.errors import NotFound, fields_error, msg
from engine.actor import Actor

ALL_RECORDS_ROLES = frozenset({"director", "admin", "ops"})
TEAM_ROLES = frozenset({"supervisor", "manager"})
MONEY_ROLES = frozenset({"finance"})


def create_user(
    session: Session,
    username: str,
    display_name: str,
    roles: Iterable[str],
    *,
    now: datetime,
    team_id: int | None = None,
    territory_id: int | None = None,
    email: str | None = None,
    password_hash: str | None = None,
    locale: str = "en",
) -> User:
    """Add a user with roles; usernames are unique and roles come from the fixed list."""
    roles = sorted(set(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise fields_error(roles=msg("unknown role(s): %(items)s", items=", ".join(unknown)))
    if not username.strip():
        raise fields_error(username="is required")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise fields_error(username=msg("'%(username)s' is taken", username=username))
    user = User(
        username=username,
        display_name=display_name,
        email=email,
        password_hash=password_hash,
        locale=locale,
        team_id=team_id,
        territory_id=territory_id,
        created_at=now,
        role_rows=[UserRole(role=r) for r in roles],
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(msg("user %(id)s does not exist", id=user_id))
    return user


def user_by_username(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(msg("no user named '%(username)s'", username=username))
    return user


def actor_for(user: User) -> Actor:
    """Return the engine's view of a user: username, roles and team."""
    teams = frozenset({f"team:{user.team_id}"}) if user.team_id else frozenset()
    return Actor(user.username, user.roles, teams)


def team_subtree(session: Session, team_ids: Iterable[int]) -> set[int]:
    """Return the given teams and every team below them."""
    found = set(team_ids)
    frontier = set(found)
    while frontier:
        children = set(session.scalars(select(Team.id).where(Team.parent_id.in_(frontier))))
        frontier = children - found
        found |= frontier
    return found


def managed_user_ids(session: Session, user: User) -> set[int]:
    """Return the user and everyone in the teams the user manages, down the hierarchy."""
    led = set(session.scalars(select(Team.id).where(Team.manager_id == user.id)))
    if "supervisor" in user.roles and user.team_id:
        led.add(user.team_id)
    teams = team_subtree(session, led)
    members = (
        set(session.scalars(select(User.id).where(User.team_id.in_(teams)))) if teams else set()
    )
    return members | {user.id}


def visible_owner_ids(session: Session, user: User, *, money: bool = False) -> set[int] | None:
    """Return whose records the user may see (None: everyone's).

    Reps see their own; supervisors and managers their team subtree; directors, admins and ops
    all; finance all records that carry money (orders, payments, invoices) when `money` is set.
    """
    roles = user.roles
    if roles & ALL_RECORDS_ROLES or (money and roles & MONEY_ROLES):
        return None
    if roles & TEAM_ROLES:
        return managed_user_ids(session, user)
    return {user.id}


def can_see_owner(
    session: Session, user: User, owner_id: int | None, *, money: bool = False
) -> bool:
    """Tell whether the user may see a record owned by `owner_id` (None: in a pool)."""
    if owner_id is None:
        return True
    scope = visible_owner_ids(session, user, money=money)
    return scope is None or owner_id in scope


def manager_of(session: Session, user: User) -> User | None:
    """Return the user's manager: the manager of their team, or of the team above if it is them."""
    team = session.get(Team, user.team_id) if user.team_id else None
    while team is not None:
        if team.manager_id is not None and team.manager_id != user.id:
            return session.get(User, team.manager_id)
        team = session.get(Team, team.parent_id) if team.parent_id else None
    return None


def director_over(session: Session, user: User) -> User | None:
    """Return the nearest director up the user's management chain, else any active director."""
    current: User | None = user
    seen: set[int] = set()
    while current is not None and current.id not in seen:
        seen.add(current.id)
        if current is not user and "director" in current.roles:
            return current
        current = manager_of(session, current)
    return session.scalar(
        select(User)
        .join(UserRole)
        .where(UserRole.role == "director", User.active.is_(True))
        .order_by(User.id)
        .limit(1)
    )


def standing_in_for(session: Session, user: User) -> User:
    """Return who acts for the user now: their delegate while they are on leave."""
    if user.on_leave and user.delegate_id is not None:
        delegate = session.get(User, user.delegate_id)
        if delegate is not None and delegate.active:
            return delegate
    return user


def notify(
    session: Session,
    user_id: int,
    kind: str,
    message: str,
    *,
    now: datetime,
    link: str | None = None,
) -> Notification:
    """Leave an in-app notification for a user."""
    note = Notification(
        user_id=user_id, kind=kind, message=message[:500], link=link, created_at=now
    )
    session.add(note)
    return note
