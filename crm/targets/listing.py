"""Targets as the targets page lists them: names, parts, the unallocated gap and attainment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.analytics.scope import require_analytics
from crm.directory.models import Team, Territory, User
from crm.errors import Forbidden
from crm.targets.models import Target
from crm.targets.services import attainment, can_see_target, can_set_target


@dataclass(frozen=True)
class TargetRow:
    target: Target
    scope_name: str
    parent: Target | None
    parts_total: Decimal | None  # None when nothing is decomposed from it
    actual: Decimal
    ratio: Decimal | None
    editable: bool

    @property
    def gap(self) -> Decimal | None:
        """Return what is not yet given to any part (None when it has no parts)."""
        return None if self.parts_total is None else self.target.amount - self.parts_total


def scope_name(session: Session, scope_kind: str, scope_id: int | None) -> str:
    if scope_kind == "company":
        return "Company"
    if scope_kind == "user":
        user = session.get(User, scope_id)
        return user.display_name if user else f"user {scope_id}"
    group: Territory | Team | None = (
        session.get(Territory, scope_id)
        if scope_kind == "territory"
        else session.get(Team, scope_id)
    )
    return group.name if group else f"{scope_kind} {scope_id}"


def list_targets(
    session: Session,
    user: User,
    *,
    year: int,
    now: datetime,
    metric: str | None = None,
) -> list[TargetRow]:
    """Return the targets of a year the user may see, with their parts and attainment."""
    require_analytics(user)
    stmt = select(Target).where(
        Target.period_start >= date(year, 1, 1), Target.period_start < date(year + 1, 1, 1)
    )
    if metric:
        stmt = stmt.where(Target.metric == metric)
    targets = [
        t
        for t in session.scalars(
            stmt.order_by(Target.metric, Target.period_start, Target.scope_kind, Target.id)
        )
        if can_see_target(session, user, t)
    ]
    sums = session.execute(
        select(Target.parent_id, func.sum(Target.amount))
        .where(Target.parent_id.in_([t.id for t in targets]))
        .group_by(Target.parent_id)
    )
    parts = {parent_id: total for parent_id, total in sums}
    rows = []
    for target in targets:
        _, actual, ratio = attainment(
            session,
            scope_kind=target.scope_kind,
            scope_id=target.scope_id,
            metric=target.metric,
            period_start=target.period_start,
            period_kind=target.period_kind,
            now=now,
        )
        total = parts.get(target.id)
        rows.append(
            TargetRow(
                target,
                scope_name(session, target.scope_kind, target.scope_id),
                session.get(Target, target.parent_id) if target.parent_id else None,
                Decimal(str(total)).quantize(Decimal("0.01")) if total is not None else None,
                actual,
                ratio,
                can_set_target(session, user, target.scope_kind, target.scope_id),
            )
        )
    return rows


def visible_attainment(
    session: Session,
    user: User,
    *,
    scope_kind: str,
    scope_id: int | None,
    metric: str,
    period_start: date,
    period_kind: str,
    now: datetime,
) -> tuple[Decimal | None, Decimal, Decimal | None]:
    """Return `attainment` for a scope the user may see (their own, their teams', or all for
    directors and admins); other scopes are refused."""
    require_analytics(user)
    probe = Target(scope_kind=scope_kind, scope_id=scope_id)
    if not can_see_target(session, user, probe):
        raise Forbidden(f"the figures of {scope_kind} {scope_id or ''} are outside your scope")
    return attainment(
        session,
        scope_kind=scope_kind,
        scope_id=scope_id,
        metric=metric,
        period_start=period_start,
        period_kind=period_kind,
        now=now,
    )
