"""Editing commission plans and coefficients, and finding the plan that applies to a rep."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.commission.models import (
    BASES,
    CommissionAudit,
    CommissionCoefficient,
    CommissionPlan,
    CommissionPlanMember,
    CommissionTier,
)
from crm.commission.rules import Tier, build_tiers
from crm.directory.models import Team, User
from crm.directory.services import managed_user_ids
from crm.errors import Forbidden, NotFound, fields_error, msg

PLAN_EDITORS = frozenset({"admin", "finance"})
ALL_REPS_ROLES = frozenset({"admin", "director"})
COEFFICIENT_ROLES = ALL_REPS_ROLES | {"manager", "supervisor"}
COEFFICIENT_RANGE = (Decimal("0.50"), Decimal("1.50"))


@dataclass(frozen=True)
class PlanInput:
    """What the editor sends; text fields are parsed and checked by `save_plan`."""

    name: str
    basis: str
    base_rate_pct: str  # "5" = 5 %
    valid_from: date | None
    valid_to: date | None
    cap: str
    tiers: str  # one "lower% multiplier" pair per line: "0 0.8"
    user_ids: tuple[int, ...] = ()
    team_ids: tuple[int, ...] = ()


def _decimal(text: str, field: str, *, places: int) -> Decimal:
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise fields_error(**{field: msg("'%(text)s' is not a number", text=text)}) from None
    if not value.is_finite() or value < 0:
        raise fields_error(**{field: "must be zero or more"})
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise fields_error(**{field: msg("has more than %(places)s decimal places", places=places)})
    return value


def parse_tiers(text: str) -> list[Tier]:
    """Read tier lines such as "0 0.8", "80 1.0", "100 1.5" (lower %, multiplier)."""
    bands = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.replace("%", " ").split()
        if not parts:
            continue
        if len(parts) != 2:
            raise fields_error(
                tiers=msg(
                    "line %(number)s: write 'lower%% multiplier', e.g. '80 1.0'", number=number
                )
            )
        lower = _decimal(parts[0], "tiers", places=2)
        multiplier = _decimal(parts[1], "tiers", places=3)
        if lower > 1000 or multiplier > 10:
            raise fields_error(
                tiers=msg("line %(number)s: at most 1000 %% and a multiplier of 10", number=number)
            )
        bands.append((lower, multiplier))
    if len({lower for lower, _ in bands}) != len(bands):
        raise fields_error(tiers="two tiers start at the same %")
    try:
        return build_tiers(bands)
    except ValueError as exc:
        raise fields_error(tiers=str(exc)) from None


def tiers_text(plan: CommissionPlan) -> str:
    return "\n".join(
        f"{format(t.lower_pct.normalize(), 'f')} {format(t.multiplier.normalize(), 'f')}"
        for t in plan.tiers
    )


def plan_tiers(plan: CommissionPlan) -> list[Tier]:
    return build_tiers((t.lower_pct, t.multiplier) for t in plan.tiers)


def _require_editor(user: User) -> None:
    if not user.roles & PLAN_EDITORS:
        raise Forbidden("only finance and admins edit commission plans")


def list_plans(session: Session, user: User) -> list[CommissionPlan]:
    _require_editor(user)
    return list(session.scalars(select(CommissionPlan).order_by(CommissionPlan.name)))


def get_plan(session: Session, user: User, plan_id: int) -> CommissionPlan:
    _require_editor(user)
    plan = session.get(CommissionPlan, plan_id)
    if plan is None:
        raise NotFound(msg("commission plan %(id)s does not exist", id=plan_id))
    return plan


def save_plan(
    session: Session, user: User, plan_id: int | None, data: PlanInput, *, now: datetime
) -> CommissionPlan:
    """Create or change a plan; every field is checked before anything is stored."""
    _require_editor(user)
    plan = get_plan(session, user, plan_id) if plan_id is not None else None
    name = data.name.strip()
    if not name:
        raise fields_error(name="is required")
    clash = session.scalar(select(CommissionPlan.id).where(CommissionPlan.name == name))
    if clash is not None and (plan is None or clash != plan.id):
        raise fields_error(name=msg("'%(name)s' is taken", name=name))
    if data.basis not in BASES:
        raise fields_error(basis="choose collected cash or won sales")
    rate_pct = _decimal(data.base_rate_pct or "", "base_rate", places=2)
    if rate_pct > 100:
        raise fields_error(base_rate="must be at most 100 %")
    if data.valid_from is None:
        raise fields_error(valid_from="is required")
    if data.valid_to is not None and data.valid_to < data.valid_from:
        raise fields_error(valid_to="is before valid from")
    cap = _decimal(data.cap, "cap", places=2) if data.cap.strip() else None
    tiers = parse_tiers(data.tiers)
    for user_id in data.user_ids:
        if session.get(User, user_id) is None:
            raise fields_error(users=msg("user %(id)s does not exist", id=user_id))
    for team_id in data.team_ids:
        if session.get(Team, team_id) is None:
            raise fields_error(teams=msg("team %(id)s does not exist", id=team_id))
    before = plan_snapshot(plan) if plan is not None else None
    if plan is None:
        plan = CommissionPlan()
        session.add(plan)
    else:  # delete the old tiers first: the new ones may reuse their (plan, lower %) keys
        plan.tiers.clear()
        plan.members.clear()
        session.flush()
    plan.name, plan.basis = name, data.basis
    plan.base_rate = (rate_pct / 100).quantize(Decimal("0.0001"))
    plan.valid_from, plan.valid_to = data.valid_from, data.valid_to
    plan.cap = cap.quantize(Decimal("0.01")) if cap is not None else None
    plan.updated_by, plan.updated_at = user.username, now
    plan.tiers = [
        CommissionTier(
            lower_pct=t.lower_pct.quantize(Decimal("0.01")),
            multiplier=t.multiplier.quantize(Decimal("0.001")),
        )
        for t in tiers
    ]
    plan.members = [CommissionPlanMember(user_id=u) for u in sorted(set(data.user_ids))] + [
        CommissionPlanMember(team_id=t) for t in sorted(set(data.team_ids))
    ]
    session.flush()
    session.add(
        CommissionAudit(
            at=now,
            actor=user.username,
            action="plan_created" if before is None else "plan_changed",
            plan_id=plan.id,
            detail={"before": before, "after": plan_snapshot(plan)},
        )
    )
    session.flush()
    return plan


def plan_snapshot(plan: CommissionPlan) -> dict[str, Any]:
    """Return a plan's rules as JSON-friendly data (for the audit trail)."""
    return {
        "name": plan.name,
        "basis": plan.basis,
        "base_rate": str(plan.base_rate),
        "valid_from": plan.valid_from.isoformat(),
        "valid_to": plan.valid_to.isoformat() if plan.valid_to else None,
        "cap": str(plan.cap) if plan.cap is not None else None,
        "tiers": [[str(t.lower_pct), str(t.multiplier)] for t in plan.tiers],
        "users": sorted(m.user_id for m in plan.members if m.user_id),
        "teams": sorted(m.team_id for m in plan.members if m.team_id),
    }


def plan_history(session: Session, user: User, plan_id: int) -> list[CommissionAudit]:
    """Return the changes of a plan, newest first."""
    get_plan(session, user, plan_id)
    return list(
        session.scalars(
            select(CommissionAudit)
            .where(CommissionAudit.plan_id == plan_id)
            .order_by(CommissionAudit.at.desc(), CommissionAudit.id.desc())
        )
    )


def _month_end(month: date) -> date:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def plan_for(session: Session, user: User, month: date) -> CommissionPlan | None:
    """Return the plan valid in `month` for the rep: their own, else their nearest team's."""
    end = _month_end(month)
    valid = [
        p
        for p in session.scalars(select(CommissionPlan).order_by(CommissionPlan.id))
        if p.valid_from <= end and (p.valid_to is None or p.valid_to >= month)
    ]
    for plan in valid:
        if any(m.user_id == user.id for m in plan.members):
            return plan
    team = session.get(Team, user.team_id) if user.team_id else None
    seen: set[int] = set()
    while team is not None and team.id not in seen:
        seen.add(team.id)
        for plan in valid:
            if any(m.team_id == team.id for m in plan.members):
                return plan
        team = session.get(Team, team.parent_id) if team.parent_id else None
    return None


def coefficient_for(session: Session, user_id: int, month: date) -> CommissionCoefficient | None:
    return session.scalar(
        select(CommissionCoefficient).where(
            CommissionCoefficient.user_id == user_id, CommissionCoefficient.period_start == month
        )
    )


def coefficient_setters_scope(session: Session, user: User) -> set[int] | None:
    """Return whose coefficients the user may set (None: everyone's); reps may set none."""
    if user.roles & ALL_REPS_ROLES:
        return None
    if user.roles & {"manager", "supervisor"}:
        return managed_user_ids(session, user) - {user.id}
    return set()


def set_coefficient(
    session: Session,
    user: User,
    rep_id: int,
    month: date,
    value: str,
    reason: str,
    *,
    now: datetime,
) -> CommissionCoefficient:
    """Set a rep's performance coefficient for a month; the manager gives a reason."""
    scope = coefficient_setters_scope(session, user)
    if scope is not None and rep_id not in scope:
        raise Forbidden("you may set coefficients only for the reps you manage")
    if session.get(User, rep_id) is None:
        raise fields_error(rep="does not exist")
    coefficient = _decimal(value or "", "coefficient", places=2)
    low, high = COEFFICIENT_RANGE
    if not low <= coefficient <= high:
        raise fields_error(
            coefficient=msg("must be between %(low)s and %(high)s", low=low, high=high)
        )
    if not reason.strip():
        raise fields_error(reason="is required")
    month = month.replace(day=1)
    row = coefficient_for(session, rep_id, month)
    before = None if row is None else {"coefficient": str(row.coefficient), "reason": row.reason}
    if row is None:
        row = CommissionCoefficient(user_id=rep_id, period_start=month)
        session.add(row)
    session.add(
        CommissionAudit(
            at=now,
            actor=user.username,
            action="coefficient_set",
            user_id=rep_id,
            detail={
                "month": f"{month:%Y-%m}",
                "before": before,
                "after": {"coefficient": str(coefficient), "reason": reason.strip()[:2000]},
            },
        )
    )
    row.coefficient, row.reason = coefficient, reason.strip()[:2000]
    row.set_by, row.set_at = user.username, now
    session.flush()
    return row


def list_coefficients(session: Session, user: User, month: date) -> list[dict[str, Any]]:
    """Return the reps the user may rate with their coefficient for the month (1.00 if unset)."""
    scope = coefficient_setters_scope(session, user)
    if scope is not None and not scope:
        raise Forbidden("only managers set performance coefficients")
    query = select(User).where(User.active.is_(True)).order_by(User.display_name)
    if scope is not None:
        query = query.where(User.id.in_(scope))
    rows = []
    for rep in session.scalars(query):
        if "rep" not in rep.roles:
            continue
        row = coefficient_for(session, rep.id, month)
        rows.append({"user": rep, "row": row})
    return rows


def plan_choices(session: Session, user: User) -> dict[str, list[Any]]:
    """Return the reps and teams a plan may be assigned to (for the editor)."""
    _require_editor(user)
    reps = [
        u
        for u in session.scalars(
            select(User).where(User.active.is_(True)).order_by(User.display_name)
        )
        if "rep" in u.roles
    ]
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    return {"reps": reps, "teams": teams}
