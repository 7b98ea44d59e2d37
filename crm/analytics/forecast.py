"""The forecast by expected close month: weighted pipeline, won so far, the reps' commit and best
case, managers' adjustments, and the target beside it.

A manager's adjustment replaces the rep's commit in every roll-up above the rep; the rep's own
commit stays as entered and is shown beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.analytics.models import ForecastAdjustment, ForecastEntry
from crm.analytics.numbers import money, percent
from crm.analytics.periods import add_months, day_start, month_key, parse_month_key
from crm.analytics.scope import DealFilter, deal_conditions, owner_scope
from crm.directory.models import Team, User, UserRole
from crm.directory.services import ALL_RECORDS_ROLES, managed_user_ids
from crm.errors import Forbidden, NotFound, fields_error
from crm.sales.models import Opportunity
from crm.sales.services import parse_amount
from crm.targets.models import Target
from crm.targets.services import TargetKey, find_target

MAX_MONTHS = 12


@dataclass
class RepMonth:
    weighted: Decimal = Decimal("0.00")  # open deals closing this month, amount × win rate
    won: Decimal = Decimal("0.00")  # deals won this month
    commit: Decimal | None = None  # the rep's own numbers
    best_case: Decimal | None = None
    adjusted: Decimal | None = None  # the manager's number for the rep, if any
    comment: str = ""
    adjusted_by: str = ""
    target: Decimal | None = None

    @property
    def rollup_commit(self) -> Decimal | None:
        """Return the number a team roll-up uses: the manager's if adjusted, else the rep's."""
        return self.adjusted if self.adjusted is not None else self.commit


@dataclass
class RepForecast:
    user_id: int
    name: str
    team: str
    months: dict[date, RepMonth]


@dataclass
class MonthTotal:
    weighted: Decimal = Decimal("0.00")
    won: Decimal = Decimal("0.00")
    commit: Decimal = Decimal("0.00")  # the reps' own commits added up
    adjusted_commit: Decimal = Decimal("0.00")  # with managers' adjustments: the team roll-up
    best_case: Decimal = Decimal("0.00")
    target: Decimal | None = None

    @property
    def attainment(self) -> Decimal | None:
        return percent(self.won, self.target) if self.target else None


@dataclass
class Forecast:
    months: list[date]
    reps: list[RepForecast]
    totals: dict[date, MonthTotal] = field(default_factory=dict)
    target_scope: tuple[str, int | None] | None = None


def forecast_months(first: date, count: int) -> list[date]:
    if not 1 <= count <= MAX_MONTHS:
        raise fields_error(months=f"must be from 1 to {MAX_MONTHS}")
    return [add_months(first, i) for i in range(count)]


def _forecast_users(
    session: Session, owners: set[int] | None, seen: set[int]
) -> list[tuple[int, str, int | None]]:
    if owners is None:
        reps = set(
            session.scalars(
                select(User.id).join(UserRole).where(UserRole.role == "rep", User.active.is_(True))
            )
        )
        wanted = reps | seen
    else:
        wanted = set(owners)
    if not wanted:
        return []
    rows = session.execute(
        select(User.id, User.display_name, User.team_id)
        .where(User.id.in_(sorted(wanted)))
        .order_by(User.display_name, User.id)
    )
    return [(uid, name, team_id) for uid, name, team_id in rows]


def target_scope_for(session: Session, user: User, flt: DealFilter) -> tuple[str, int | None]:
    """Return whose target a forecast is compared with: the filtered rep or team, else the
    viewer's own level (company for directors, the managed team, or the rep)."""
    if flt.owner_id is not None:
        return "user", flt.owner_id
    if flt.team_id is not None:
        return "team", flt.team_id
    if user.roles & (ALL_RECORDS_ROLES | {"director"}):
        return "company", None
    if user.roles & {"manager", "supervisor"}:
        led = session.scalar(
            select(Team.id).where(Team.manager_id == user.id).order_by(Team.id).limit(1)
        )
        team_id = led or user.team_id
        return ("team", team_id) if team_id else ("user", user.id)
    return "user", user.id


def build_forecast(
    session: Session, user: User, flt: DealFilter, months: list[date], *, now: datetime
) -> Forecast:
    """Return the forecast the user may see for the given close months."""
    flt.check()
    owners = owner_scope(session, user, flt)
    result = Forecast(months, [], {m: MonthTotal() for m in months})
    figures = collect_rep_months(session, flt, owners, months)
    teams = {tid: name for tid, name in session.execute(select(Team.id, Team.name))}
    for user_id, name, team_id in _forecast_users(session, owners, set(figures)):
        person_months = figures.get(user_id) or {m: RepMonth() for m in months}
        result.reps.append(RepForecast(user_id, name, teams.get(team_id or 0, ""), person_months))
    _add_up(session, user, flt, result)
    return result


def collect_rep_months(
    session: Session,
    flt: DealFilter,
    owners: set[int] | None,
    months: list[date],
    *,
    won_only: bool = False,
) -> dict[int, dict[date, RepMonth]]:
    """Return each owner's figures per close month (owners None: everyone's); with `won_only`
    just the amounts won."""
    figures: dict[int, dict[date, RepMonth]] = {}
    if owners is not None and not owners:
        return figures
    first, end = months[0], add_months(months[-1], 1)
    keys = {m.strftime("%Y-%m"): m for m in months}

    def cell(owner_id: int, month: date) -> RepMonth:
        return figures.setdefault(owner_id, {m: RepMonth() for m in months})[month]

    conditions = deal_conditions(flt, owners)
    if not won_only:
        _weighted(session, conditions, months, cell)
    closed = month_key(session, Opportunity.closed_at, moment=True)
    rows = session.execute(
        select(Opportunity.owner_id, closed, func.sum(Opportunity.amount))
        .where(
            *conditions,
            Opportunity.status == "won",
            Opportunity.closed_at >= day_start(first),
            Opportunity.closed_at < day_start(end),
        )
        .group_by(Opportunity.owner_id, closed)
    )
    for owner_id, key, total in rows:
        cell(owner_id, keys[key]).won = money(total)
    if not won_only:
        _entered_numbers(session, owners, months, cell)
    return figures


def _weighted(session: Session, conditions: list[Any], months: list[date], cell: Any) -> None:
    first, end = months[0], add_months(months[-1], 1)
    keys = {m.strftime("%Y-%m"): m for m in months}
    rate = func.coalesce(Opportunity.win_rate_override, Opportunity.stage_win_rate)
    close = month_key(session, Opportunity.expected_close)
    rows = session.execute(
        select(Opportunity.owner_id, close, func.sum(Opportunity.amount * rate))
        .where(
            *conditions,
            Opportunity.status == "open",
            Opportunity.expected_close >= first,
            Opportunity.expected_close < end,
        )
        .group_by(Opportunity.owner_id, close)
    )
    for owner_id, key, total in rows:
        cell(owner_id, keys[key]).weighted = money(Decimal(str(total)) / 100)


def _entered_numbers(
    session: Session, owners: set[int] | None, months: list[date], cell: Any
) -> None:
    entries = select(ForecastEntry).where(ForecastEntry.month.in_(months))
    adjustments = (
        select(ForecastAdjustment, User.display_name)
        .join(User, User.id == ForecastAdjustment.adjusted_by_id)
        .where(ForecastAdjustment.month.in_(months))
    )
    if owners is not None:
        entries = entries.where(ForecastEntry.user_id.in_(sorted(owners)))
        adjustments = adjustments.where(ForecastAdjustment.user_id.in_(sorted(owners)))
    for entry in session.scalars(entries):
        month = cell(entry.user_id, entry.month)
        month.commit, month.best_case = money(entry.commit_amount), money(entry.best_case_amount)
    for adjustment, by in session.execute(adjustments):
        month = cell(adjustment.user_id, adjustment.month)
        month.adjusted, month.comment, month.adjusted_by = (
            money(adjustment.amount),
            adjustment.comment,
            by,
        )


def _add_up(session: Session, user: User, flt: DealFilter, result: Forecast) -> None:
    rep_targets = {
        (t.scope_id, t.period_start): money(t.amount)
        for t in session.scalars(
            select(Target).where(
                Target.metric == "sales",
                Target.period_kind == "month",
                Target.period_start.in_(result.months),
                Target.scope_kind == "user",
            )
        )
    }
    for rep in result.reps:
        for month, figures in rep.months.items():
            total = result.totals[month]
            total.weighted += figures.weighted
            total.won += figures.won
            total.commit += figures.commit or 0
            total.adjusted_commit += figures.rollup_commit or 0
            total.best_case += figures.best_case or 0
            figures.target = rep_targets.get((rep.user_id, month))
    scope_kind, scope_id = target_scope_for(session, user, flt)
    result.target_scope = (scope_kind, scope_id)
    for month, total in result.totals.items():
        found = find_target(session, TargetKey("sales", "month", month, scope_kind, scope_id))
        total.target = money(found.amount) if found else None


def _month(value: date) -> date:
    return value.replace(day=1)


def set_forecast_entry(
    session: Session,
    actor: User,
    month: date,
    commit: Any,
    best_case: Any,
    *,
    now: datetime,
) -> ForecastEntry:
    """Record the acting rep's own commit and best case for a close month."""
    commit_value = _amount_or_zero(commit, "commit")
    best_value = _amount_or_zero(best_case, "best_case")
    if best_value < commit_value:
        raise fields_error(best_case=f"must be at least the commit ({commit_value})")
    month = _month(month)
    entry = session.scalar(
        select(ForecastEntry).where(ForecastEntry.user_id == actor.id, ForecastEntry.month == month)
    )
    if entry is None:
        entry = ForecastEntry(user_id=actor.id, month=month)
        session.add(entry)
    entry.commit_amount, entry.best_case_amount = commit_value, best_value
    entry.updated_by, entry.updated_at = actor.username, now
    session.flush()
    return entry


def _amount_or_zero(value: Any, name: str) -> Decimal:
    if str(value).strip() in ("0", "0.0", "0.00"):
        return Decimal("0.00")
    return parse_amount(value, name)


def can_adjust(session: Session, actor: User, rep_id: int) -> bool:
    """Managers adjust the people they manage (not themselves); directors and admins anyone."""
    if rep_id == actor.id:
        return False
    if actor.roles & {"director", "admin"}:
        return True
    return bool(actor.roles & {"manager", "supervisor"}) and rep_id in managed_user_ids(
        session, actor
    )


def adjustable_ids(session: Session, actor: User, rep_ids: list[int]) -> set[int]:
    """Return which of the reps the actor may adjust (one scope lookup for all of them)."""
    if actor.roles & {"director", "admin"}:
        return set(rep_ids) - {actor.id}
    if not actor.roles & {"manager", "supervisor"}:
        return set()
    return (set(rep_ids) & managed_user_ids(session, actor)) - {actor.id}


def adjust_forecast(
    session: Session,
    actor: User,
    rep_id: int,
    month: date,
    amount: Any,
    comment: str,
    *,
    now: datetime,
) -> ForecastAdjustment:
    """Set a manager's number for a subordinate's month; the rep's own commit is kept."""
    if session.get(User, rep_id) is None:
        raise NotFound(f"user {rep_id} does not exist")
    if not can_adjust(session, actor, rep_id):
        raise Forbidden(f"you may not adjust the forecast of user {rep_id}")
    value = _amount_or_zero(amount, "amount")
    if not comment.strip():
        raise fields_error(comment="say why you adjust the number")
    month = _month(month)
    adjustment = session.scalar(
        select(ForecastAdjustment).where(
            ForecastAdjustment.user_id == rep_id, ForecastAdjustment.month == month
        )
    )
    if adjustment is None:
        adjustment = ForecastAdjustment(user_id=rep_id, month=month)
        session.add(adjustment)
    adjustment.amount, adjustment.comment = value, comment.strip()[:2000]
    adjustment.adjusted_by_id, adjustment.adjusted_at = actor.id, now
    session.flush()
    return adjustment


def parse_month(text: str, name: str = "month") -> date:
    """Read 'YYYY-MM' (or a full date) as the first day of that month, naming the field."""
    value = (text or "").strip()
    try:
        return parse_month_key(value) if len(value) == 7 else _month(date.fromisoformat(value))
    except ValueError:
        raise fields_error(**{name: f"'{value}' is not a month (YYYY-MM)"}) from None
