"""Managers edit a pool's settings: its policy, claim limits per tier and recycling rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm.customers.models import TIERS, Pool
from crm.directory.models import User, UserRole
from crm.directory.services import visible_owner_ids
from crm.errors import Forbidden, NotFound, fields_error, msg
from crm.pool.models import TRIGGERS, ClaimLimit, PoolPolicy, RecycleLimit, RecycleRule
from crm.pool.recycling import Candidate, preview_recycling

EDITING_ROLES = frozenset({"manager", "director", "admin"})
MAX_DAYS = 3650


@dataclass
class PoolSettings:
    pool: Pool
    policy: PoolPolicy | None
    claim_limits: dict[str, ClaimLimit] = field(default_factory=dict)
    rules: list[tuple[RecycleRule, dict[str, int]]] = field(default_factory=list)


def _pool_for_editing(session: Session, user: User, pool_id: int) -> Pool:
    pool = session.get(Pool, pool_id)
    if pool is None:
        raise NotFound(msg("pool %(id)s does not exist", id=pool_id))
    if not user.roles & EDITING_ROLES:
        raise Forbidden("only managers edit pool settings")
    policy = session.get(PoolPolicy, pool_id)
    if (
        policy is not None
        and policy.manager_id != user.id
        and not user.roles & {"director", "admin"}
    ):
        raise Forbidden(msg("'%(name)s' is managed by someone else", name=pool.name))
    return pool


def _whole(
    value: Any, name: str, *, low: int = 0, high: int = MAX_DAYS, optional: bool = False
) -> Any:
    if value in (None, "") and optional:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise fields_error(**{name: "must be a whole number"}) from None
    if not low <= number <= high:
        raise fields_error(**{name: f"must be between {low} and {high}"})
    return number


def get_pool_settings(session: Session, pool_id: int) -> PoolSettings:
    """Return everything that governs one pool."""
    pool = session.get(Pool, pool_id)
    if pool is None:
        raise NotFound(msg("pool %(id)s does not exist", id=pool_id))
    settings = PoolSettings(pool, session.get(PoolPolicy, pool_id))
    for limit in session.scalars(select(ClaimLimit).where(ClaimLimit.pool_id == pool_id)):
        settings.claim_limits[limit.tier] = limit
    rules = session.scalars(
        select(RecycleRule).where(RecycleRule.pool_id == pool_id).order_by(RecycleRule.id)
    ).all()
    days: dict[int, dict[str, int]] = {r.id: {} for r in rules}
    if rules:
        for row in session.scalars(
            select(RecycleLimit).where(RecycleLimit.rule_id.in_(list(days)))
        ):
            days[row.rule_id][row.tier] = row.days
    settings.rules = [(rule, days[rule.id]) for rule in rules]
    return settings


def save_policy(
    session: Session, user: User, pool_id: int, values: dict[str, Any], *, now: datetime
) -> PoolPolicy:
    """Create or change a pool's policy from form values (numbers may come as text)."""
    pool = _pool_for_editing(session, user, pool_id)
    manager_id = _whole(values.get("manager_id"), "manager_id", low=1, high=2**31)
    manager = session.get(User, manager_id)
    if manager is None or not manager.active:
        raise fields_error(manager_id="choose an active manager")
    target = _whole(values.get("target_pool_id"), "target_pool_id", high=2**31, optional=True)
    _check_target(session, target, "target_pool_id")
    policy = session.get(PoolPolicy, pool.id) or PoolPolicy(pool_id=pool.id)
    policy.manager_id = manager.id
    policy.target_pool_id = target if target != pool.id else None
    policy.warning_days = _whole(values.get("warning_days", 3), "warning_days", high=90)
    policy.cooldown_days = _whole(values.get("cooldown_days", 30), "cooldown_days")
    policy.daily_claim_cap = _whole(values.get("daily_claim_cap", 10), "daily_claim_cap", high=1000)
    policy.weekly_quota = _whole(values.get("weekly_quota", 20), "weekly_quota", high=10000)
    policy.exempt_win_rate = _whole(
        values.get("exempt_win_rate"), "exempt_win_rate", high=100, optional=True
    )
    policy.auto_allocate = _flag(values.get("auto_allocate"))
    policy.exempt_locked = _flag(values.get("exempt_locked"))
    policy.exempt_open_approval = _flag(values.get("exempt_open_approval"))
    policy.updated_at, policy.updated_by = now, user.username
    session.add(policy)
    session.flush()
    return policy


def _flag(value: Any) -> bool:
    return value in (True, "1", "on", "true", "yes")


def _check_target(session: Session, pool_id: int | None, name: str) -> None:
    if pool_id is None:
        return
    target = session.get(Pool, pool_id)
    if target is None or target.kind != "customer":
        raise fields_error(**{name: "choose a customer pool"})


def set_claim_limit(
    session: Session,
    user: User,
    pool_id: int,
    tier: str,
    *,
    max_held: Any = None,
    daily_claims: Any = None,
) -> ClaimLimit | None:
    """Set how many customers of a tier one rep may hold and claim per day (blank: no limit)."""
    _pool_for_editing(session, user, pool_id)
    if tier not in TIERS:
        raise fields_error(tier=msg("must be one of %(items)s", items=", ".join(TIERS)))
    held = _whole(max_held, "max_held", high=100000, optional=True)
    daily = _whole(daily_claims, "daily_claims", high=1000, optional=True)
    limit = session.get(ClaimLimit, (pool_id, tier))
    if held is None and daily is None:
        if limit is not None:
            session.delete(limit)
            session.flush()
        return None
    limit = limit or ClaimLimit(pool_id=pool_id, tier=tier)
    limit.max_held, limit.daily_claims = held, daily
    session.add(limit)
    session.flush()
    return limit


def save_recycle_rule(
    session: Session,
    user: User,
    pool_id: int,
    *,
    trigger: str,
    days: dict[str, Any],
    now: datetime,
    rule_id: int | None = None,
    active: bool = True,
    target_pool_id: Any = None,
) -> RecycleRule:
    """Add or change a recycling rule; `days` maps tiers to day limits (blank: tier exempt)."""
    _pool_for_editing(session, user, pool_id)
    if trigger not in TRIGGERS:
        raise fields_error(trigger=msg("must be one of %(items)s", items=", ".join(TRIGGERS)))
    limits = {
        tier: _whole(value, f"days_{tier}", low=1, optional=True)
        for tier, value in days.items()
        if tier in TIERS
    }
    limits = {tier: d for tier, d in limits.items() if d is not None}
    if not limits:
        raise fields_error(days="give the days for at least one tier")
    target = _whole(target_pool_id, "target_pool_id", high=2**31, optional=True)
    _check_target(session, target, "target_pool_id")
    if rule_id is None:
        rule = RecycleRule(pool_id=pool_id, created_at=now)
        session.add(rule)
    else:
        found = session.get(RecycleRule, rule_id)
        if found is None or found.pool_id != pool_id:
            raise NotFound(msg("rule %(id)s does not exist", id=rule_id))
        rule = found
    rule.trigger_kind, rule.active, rule.target_pool_id = trigger, active, target
    session.flush()
    session.execute(delete(RecycleLimit).where(RecycleLimit.rule_id == rule.id))
    session.add_all(RecycleLimit(rule_id=rule.id, tier=t, days=d) for t, d in limits.items())
    session.flush()
    return rule


def delete_recycle_rule(session: Session, user: User, pool_id: int, rule_id: int) -> None:
    _pool_for_editing(session, user, pool_id)
    rule = session.get(RecycleRule, rule_id)
    if rule is None or rule.pool_id != pool_id:
        raise NotFound(msg("rule %(id)s does not exist", id=rule_id))
    session.execute(delete(RecycleLimit).where(RecycleLimit.rule_id == rule.id))
    session.delete(rule)
    session.flush()


def manager_choices(session: Session) -> list[User]:
    """Return the active users who may manage a pool."""
    return list(
        session.scalars(
            select(User)
            .join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role.in_(sorted(EDITING_ROLES)), User.active.is_(True))
            .distinct()
            .order_by(User.display_name)
        )
    )


def preview_for(session: Session, user: User, pool_id: int, at: datetime) -> list[Candidate]:
    """Return what a run at `at` would recycle from the pool, as far as the user may see.

    The pool's manager, directors and admins see every customer; other managers see those
    their teams own.
    """
    if not user.roles & EDITING_ROLES:
        raise Forbidden("only managers see the recycling preview")
    found = preview_recycling(session, at, pool_id=pool_id)
    policy = session.get(PoolPolicy, pool_id)
    if user.roles & {"director", "admin"} or (policy is not None and policy.manager_id == user.id):
        return found
    scope = visible_owner_ids(session, user)
    return [c for c in found if scope is None or c.owner_id in scope]
