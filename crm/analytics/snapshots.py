"""Weekly forecast snapshots and forecast accuracy (the forecast of week N against what was won).

`snapshot_forecasts` is a rule: run it as often as you like, it writes each rep's forecast for
the current and the next two close months once per week (the week starting on Monday, UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.analytics.forecast import collect_rep_months, forecast_months
from crm.analytics.models import ForecastSnapshot
from crm.analytics.numbers import TENTH, money
from crm.analytics.periods import month_start, week_start
from crm.analytics.scope import DealFilter, owner_scope
from crm.directory.models import User, UserRole
from crm.lookups import user_names

SNAPSHOT_MONTHS = 3


def snapshot_forecasts(session: Session, now: datetime) -> int:
    """Store this week's forecast per rep and close month once; return the rows written."""
    week = week_start(now.date())
    months = forecast_months(month_start(now.date()), SNAPSHOT_MONTHS)
    rows = session.execute(
        select(ForecastSnapshot.user_id, ForecastSnapshot.month).where(
            ForecastSnapshot.week_start == week
        )
    )
    taken = {(user_id, month) for user_id, month in rows}
    figures = collect_rep_months(session, DealFilter(pipeline=None), None, months)
    reps = session.scalars(
        select(User.id).join(UserRole).where(UserRole.role == "rep", User.active.is_(True))
    )
    written = 0
    for user_id in sorted(set(reps) | set(figures)):
        for month in months:
            if (user_id, month) in taken:
                continue
            cell = figures.get(user_id, {}).get(month)
            session.add(
                ForecastSnapshot(
                    week_start=week,
                    user_id=user_id,
                    month=month,
                    weighted=cell.weighted if cell else Decimal("0.00"),
                    commit_amount=cell.commit if cell else None,
                    best_case_amount=cell.best_case if cell else None,
                    adjusted_amount=cell.adjusted if cell else None,
                    taken_at=now,
                )
            )
            written += 1
    session.flush()
    return written


def accuracy(forecast: Decimal | None, actual: Decimal) -> Decimal | None:
    """Return 100 − |forecast − actual| ÷ actual × 100 (at least 0), or None when nothing was
    won or nothing was forecast."""
    if forecast is None or not actual:
        return None
    value = 100 - abs(forecast - actual) * 100 / actual
    return max(Decimal("0.0"), value.quantize(TENTH))


@dataclass
class AccuracyCell:
    weighted: Decimal = Decimal("0.00")
    commit: Decimal | None = None  # the rep's own; for teams, the roll-up with adjustments
    actual: Decimal = Decimal("0.00")

    @property
    def weighted_accuracy(self) -> Decimal | None:
        return accuracy(self.weighted, self.actual)

    @property
    def commit_accuracy(self) -> Decimal | None:
        return accuracy(self.commit, self.actual)


@dataclass
class RepAccuracy:
    user_id: int
    name: str
    cells: dict[tuple[date, date], AccuracyCell]  # (week, month)


@dataclass
class Accuracy:
    months: list[date]
    weeks: list[date]
    team: dict[tuple[date, date], AccuracyCell] = field(default_factory=dict)
    reps: list[RepAccuracy] = field(default_factory=list)


def forecast_accuracy(
    session: Session, user: User, flt: DealFilter, months: list[date], *, now: datetime
) -> Accuracy:
    """Return, per snapshot week and close month, the forecast then against the won amount."""
    flt.check()
    owners = owner_scope(session, user, flt)
    stmt = select(ForecastSnapshot).where(ForecastSnapshot.month.in_(months))
    if owners is not None:
        stmt = stmt.where(ForecastSnapshot.user_id.in_(sorted(owners)))
    snapshots = list(session.scalars(stmt.order_by(ForecastSnapshot.week_start)))
    actual = collect_rep_months(session, flt, owners, months, won_only=True)
    weeks = sorted({s.week_start for s in snapshots})
    result = Accuracy(months, weeks)
    reps: dict[int, RepAccuracy] = {}
    names = user_names(session, {s.user_id for s in snapshots})
    for snap in snapshots:
        won = actual.get(snap.user_id, {}).get(snap.month)
        rep = reps.setdefault(
            snap.user_id, RepAccuracy(snap.user_id, names.get(snap.user_id, ""), {})
        )
        key = (snap.week_start, snap.month)
        rep.cells[key] = AccuracyCell(
            money(snap.weighted),
            money(snap.commit_amount) if snap.commit_amount is not None else None,
            won.won if won else Decimal("0.00"),
        )
        team = result.team.setdefault(key, AccuracyCell(commit=Decimal("0.00")))
        team.weighted += money(snap.weighted)
        rolled = snap.adjusted_amount if snap.adjusted_amount is not None else snap.commit_amount
        team.commit = (team.commit or Decimal("0.00")) + money(rolled or 0)
    for (_, month), team in result.team.items():
        team.actual = sum(
            (per[month].won for per in actual.values() if month in per), Decimal("0.00")
        )
    result.reps = sorted(reps.values(), key=lambda r: (r.name, r.user_id))
    return result
