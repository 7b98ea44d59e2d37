"""Targets: set them top-down (the parts may not exceed the whole), and measure attainment.

Decomposition rule: a target may name a parent target of the same metric whose period and scope
contain it. The children of one parent may add up to less than the parent (the rest is shown as
an unallocated gap) but never to more: a change that would make them exceed the parent is
refused with a message naming the parent and the excess. See docs/analytics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.analytics.numbers import money
from crm.analytics.periods import PERIOD_MONTHS, check_period_start, day_start, period_end
from crm.analytics.scope import team_member_ids
from crm.customers.models import Customer
from crm.directory.models import Team, Territory, User
from crm.directory.services import ALL_RECORDS_ROLES, managed_user_ids, team_subtree
from crm.errors import Conflict, Forbidden, NotFound, fields_error
from crm.orders.models import Receipt, SalesOrder
from crm.sales.models import Opportunity
from crm.sales.services import parse_amount
from crm.targets.models import METRICS, SCOPE_KINDS, Target

RATIO = Decimal("0.0001")
SETTER_ROLES = frozenset({"director", "admin"})


@dataclass(frozen=True)
class TargetKey:
    metric: str
    period_kind: str
    period_start: date
    scope_kind: str
    scope_id: int | None

    def check(self) -> None:
        problems: dict[str, str] = {}
        if self.metric not in METRICS:
            problems["metric"] = f"must be one of {', '.join(METRICS)}"
        if self.scope_kind not in SCOPE_KINDS:
            problems["scope_kind"] = f"must be one of {', '.join(SCOPE_KINDS)}"
        elif (self.scope_kind == "company") != (self.scope_id is None):
            problems["scope_id"] = (
                "must be empty for the company"
                if self.scope_kind == "company"
                else f"names the {self.scope_kind}; it is required"
            )
        if problems:
            raise fields_error(**problems)
        check_period_start(self.period_kind, self.period_start)

    @property
    def period_end(self) -> date:
        return period_end(self.period_kind, self.period_start)


def describe(target: Target) -> str:
    """Return a short name for a target: 'team 3 sales, quarter from 2026-10-01'."""
    scope = (
        "company" if target.scope_kind == "company" else f"{target.scope_kind} {target.scope_id}"
    )
    return (
        f"#{target.id} ({scope} {target.metric}, {target.period_kind} from "
        f"{target.period_start.isoformat()})"
    )


def find_target(session: Session, key: TargetKey) -> Target | None:
    scope_id = (
        Target.scope_id.is_(None) if key.scope_id is None else Target.scope_id == key.scope_id
    )
    return session.scalar(
        select(Target).where(
            Target.metric == key.metric,
            Target.period_kind == key.period_kind,
            Target.period_start == key.period_start,
            Target.scope_kind == key.scope_kind,
            scope_id,
        )
    )


def _scope_exists(session: Session, scope_kind: str, scope_id: int | None) -> None:
    model = {"territory": Territory, "team": Team, "user": User}.get(scope_kind)
    if model is not None and session.get(model, scope_id) is None:
        raise NotFound(f"{scope_kind} {scope_id} does not exist")


def can_set_target(session: Session, actor: User, scope_kind: str, scope_id: int | None) -> bool:
    """Directors and admins set any target; managers those of their team subtree and its reps."""
    if actor.roles & SETTER_ROLES:
        return True
    if not actor.roles & {"manager", "supervisor"} or scope_kind in ("company", "territory"):
        return False
    led = set(session.scalars(select(Team.id).where(Team.manager_id == actor.id)))
    if "supervisor" in actor.roles and actor.team_id:
        led.add(actor.team_id)
    if scope_kind == "team":
        return scope_id in team_subtree(session, led)
    return scope_id in managed_user_ids(session, actor) and scope_id != actor.id


def can_see_target(session: Session, actor: User, target: Target) -> bool:
    if actor.roles & (SETTER_ROLES | ALL_RECORDS_ROLES):
        return True
    if target.scope_kind in ("company", "territory"):
        return bool(actor.roles & {"manager", "supervisor"})
    if target.scope_kind == "user" and target.scope_id == actor.id:
        return True
    if target.scope_kind == "team" and target.scope_id == actor.team_id:
        return True
    return can_set_target(session, actor, target.scope_kind, target.scope_id)


def _contains(session: Session, parent: Target, key: TargetKey) -> str | None:
    """Return why the parent cannot hold the child, or None when it can."""
    if parent.metric != key.metric:
        return f"is a {parent.metric} target; this one is {key.metric}"
    parent_end = period_end(parent.period_kind, parent.period_start)
    if not (parent.period_start <= key.period_start and key.period_end <= parent_end):
        return "covers a period that does not contain this one"
    if PERIOD_MONTHS[key.period_kind] > PERIOD_MONTHS[parent.period_kind]:
        return "has a shorter period than this one"
    same_period = PERIOD_MONTHS[key.period_kind] == PERIOD_MONTHS[parent.period_kind]
    if parent.scope_kind == "company":
        return (
            "has the same scope and period" if same_period and key.scope_kind == "company" else None
        )
    inside = False
    if parent.scope_kind == "territory":
        if key.scope_kind == "territory":
            inside = key.scope_id == parent.scope_id and not same_period
        elif key.scope_kind in ("team", "user"):
            model: Any = Team if key.scope_kind == "team" else User
            record = session.get(model, key.scope_id)
            inside = record is not None and record.territory_id == parent.scope_id
    elif parent.scope_kind == "team":
        assert parent.scope_id is not None
        if key.scope_kind == "team":
            inside = key.scope_id in team_subtree(session, [parent.scope_id]) and (
                key.scope_id != parent.scope_id or not same_period
            )
        elif key.scope_kind == "user":
            inside = key.scope_id in team_member_ids(session, parent.scope_id)
    elif parent.scope_kind == "user":
        inside = key.scope_kind == "user" and key.scope_id == parent.scope_id and not same_period
    return (
        None
        if inside
        else f"is for {parent.scope_kind} {parent.scope_id}, which does not contain this scope"
    )


def children_total(session: Session, parent_id: int, *, without: int | None = None) -> Decimal:
    stmt = select(func.coalesce(func.sum(Target.amount), 0)).where(Target.parent_id == parent_id)
    if without is not None:
        stmt = stmt.where(Target.id != without)
    return Decimal(str(session.scalar(stmt) or 0))


def set_target(
    session: Session,
    actor: User,
    key: TargetKey,
    amount: Any,
    *,
    now: datetime,
    parent_id: int | None = None,
) -> Target:
    """Create or change the target for a scope and period (the unique key)."""
    key.check()
    value = money(parse_amount(amount))
    _scope_exists(session, key.scope_kind, key.scope_id)
    if not can_set_target(session, actor, key.scope_kind, key.scope_id):
        raise Forbidden(
            f"you may not set targets for {key.scope_kind} {key.scope_id or ''}".strip()
        )
    target = find_target(session, key)
    if parent_id is not None:
        parent = session.get(Target, parent_id)
        if parent is None:
            raise fields_error(parent_id=f"target {parent_id} does not exist")
        if target is not None and parent.id == target.id:
            raise fields_error(parent_id="a target cannot be its own part")
        why = _contains(session, parent, key)
        if why:
            raise fields_error(parent_id=f"target {describe(parent)} {why}")
        total = money(
            children_total(session, parent.id, without=target.id if target else None) + value
        )
        whole = money(parent.amount)
        if total > whole:
            raise Conflict(
                f"the parts of target {describe(parent)} would add up to {total}, "
                f"{total - whole} more than its {whole}"
            )
    if target is not None:
        parts = money(children_total(session, target.id))
        if parts > value:
            raise Conflict(
                f"target {describe(target)} is split into parts adding up to {parts}; "
                f"it cannot be {value}, {parts - value} less than its parts"
            )
    if target is None:
        target = Target(
            metric=key.metric,
            period_kind=key.period_kind,
            period_start=key.period_start,
            scope_kind=key.scope_kind,
            scope_id=key.scope_id,
        )
        session.add(target)
    target.amount, target.parent_id = value, parent_id
    target.set_by, target.set_at = actor.username, now
    session.flush()
    return target


def delete_target(session: Session, actor: User, target_id: int) -> None:
    """Remove a target that has no parts."""
    target = session.get(Target, target_id)
    if target is None or not can_see_target(session, actor, target):
        raise NotFound(f"target {target_id} does not exist")
    if not can_set_target(session, actor, target.scope_kind, target.scope_id):
        raise Forbidden(f"you may not change target {describe(target)}")
    if session.scalar(select(Target.id).where(Target.parent_id == target.id).limit(1)):
        raise Conflict(f"target {describe(target)} has parts; remove them first")
    session.delete(target)
    session.flush()


def _period_bounds(period_kind: str, period_start: date, now: datetime) -> tuple[date, date]:
    end = period_end(period_kind, period_start)
    return period_start, min(end, now.date() + timedelta(days=1))


def _owner_condition(session: Session, column: Any, scope_kind: str, scope_id: int | None) -> Any:
    if scope_kind == "team":
        assert scope_id is not None
        return column.in_(sorted(team_member_ids(session, scope_id)))
    if scope_kind == "user":
        return column == scope_id
    return None


def actual_amount(
    session: Session,
    *,
    scope_kind: str,
    scope_id: int | None,
    metric: str,
    period_start: date,
    period_kind: str,
    now: datetime,
) -> Decimal:
    """Return won opportunity amount (sales) or received cash (cash) in the period up to now."""
    start, end = _period_bounds(period_kind, period_start, now)
    conditions: list[Any] = []
    if metric == "sales":
        stmt = select(func.coalesce(func.sum(Opportunity.amount), 0)).where(
            Opportunity.status == "won",
            Opportunity.closed_at >= day_start(start),
            Opportunity.closed_at < min(day_start(end), now),
        )
        owner, customer = Opportunity.owner_id, Opportunity.customer_id
    else:
        stmt = (
            select(func.coalesce(func.sum(Receipt.amount), 0))
            .join(SalesOrder, SalesOrder.id == Receipt.order_id)
            .where(Receipt.received_on >= start, Receipt.received_on < end)
        )
        owner, customer = SalesOrder.owner_id, SalesOrder.customer_id
    if scope_kind == "territory":
        conditions.append(
            customer.in_(select(Customer.id).where(Customer.territory_id == scope_id))
        )
    condition = _owner_condition(session, owner, scope_kind, scope_id)
    if condition is not None:
        conditions.append(condition)
    return Decimal(str(session.scalar(stmt.where(*conditions)) or 0)).quantize(Decimal("0.01"))


def attainment(
    session: Session,
    *,
    scope_kind: str,
    scope_id: int | None,
    metric: str,
    period_start: date,
    period_kind: str,
    now: datetime,
) -> tuple[Decimal | None, Decimal, Decimal | None]:
    """Return (target, actual, actual ÷ target as a fraction with 4 decimals) for a scope.

    The target is None when none is set; the ratio is None without a (non-zero) target.
    """
    key = TargetKey(metric, period_kind, period_start, scope_kind, scope_id)
    key.check()
    target = find_target(session, key)
    actual = actual_amount(
        session,
        scope_kind=scope_kind,
        scope_id=scope_id,
        metric=metric,
        period_start=period_start,
        period_kind=period_kind,
        now=now,
    )
    if target is None:
        return None, actual, None
    ratio = (actual / target.amount).quantize(RATIO, ROUND_HALF_UP) if target.amount else None
    return target.amount, actual, ratio
