"""The funnel of one pipeline over a period: entries per stage, conversion, win rates, dwell.

Every figure comes from the stage history (`StageChange`), which the pipeline process writes
each time a deal enters a stage, wins or is lost. See docs/analytics.md for the definitions.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, literal, select, text, true
from sqlalchemy.orm import Session, aliased

from crm.analytics.funnel_rollup import stage_entries_from_rollup
from crm.analytics.numbers import days, money, percent
from crm.analytics.periods import day_start, seconds_between
from crm.analytics.scope import DealFilter, deal_conditions, owner_scope
from crm.analytics.stages import StageConfig, pipeline_stages
from crm.directory.models import User
from crm.errors import fields_error
from crm.lookups import user_names
from crm.sales.models import Opportunity, StageChange
from engine.db import UTCDateTime

STALE_LIST_LIMIT = 50


@dataclass
class StageFigures:
    stage: str
    configured_win_rate: int | None
    max_days: float | None
    entered: int = 0  # deals that entered the stage in the period
    amount: Decimal = Decimal("0.00")
    advanced: int = 0  # of those, deals whose next move was into the next stage (or won)
    won: int = 0
    lost: int = 0
    stays: int = 0  # entries (a deal may enter a stage twice)
    avg_days: Decimal | None = None
    median_days: Decimal | None = None
    stale: int = 0  # open deals in the stage now for longer than max_days

    @property
    def conversion(self) -> Decimal | None:
        return percent(self.advanced, self.entered)

    @property
    def observed_win_rate(self) -> Decimal | None:
        return percent(self.won, self.won + self.lost)


@dataclass(frozen=True)
class ReasonFigures:
    outcome: str
    reason: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class StaleDeal:
    opportunity_id: int
    name: str
    owner: str
    stage: str
    stage_since: datetime
    days_in_stage: Decimal
    max_days: float


@dataclass
class Funnel:
    pipeline: str
    period_start: date
    period_end: date
    stages: list[StageFigures]
    won_count: int = 0
    won_amount: Decimal = Decimal("0.00")
    lost_count: int = 0
    lost_amount: Decimal = Decimal("0.00")
    avg_cycle_days_won: Decimal | None = None
    avg_cycle_days_lost: Decimal | None = None
    reasons: list[ReasonFigures] = field(default_factory=list)
    stale_deals: list[StaleDeal] = field(default_factory=list)

    @property
    def avg_deal_size(self) -> Decimal | None:
        return money(self.won_amount / self.won_count) if self.won_count else None

    @property
    def win_rate(self) -> Decimal | None:
        return percent(self.won_count, self.won_count + self.lost_count)


def build_funnel(session: Session, user: User, flt: DealFilter, *, now: datetime) -> Funnel:
    """Return the funnel the user may see for a pipeline and period."""
    flt.check()
    if flt.pipeline is None:
        raise fields_error(pipeline="a funnel is for one pipeline")
    if flt.period_start is None or flt.period_end is None:
        raise fields_error(period_start="a funnel needs a period")
    owners = owner_scope(session, user, flt)
    configs = pipeline_stages(session, flt.pipeline)
    result = Funnel(
        flt.pipeline,
        flt.period_start,
        flt.period_end,
        [StageFigures(c.stage, c.win_rate, c.max_days) for c in configs],
    )
    if owners is not None and not owners:
        return result
    conditions = deal_conditions(flt, owners)
    if session.get_bind().dialect.name == "postgresql":
        # The planner's costs for these queries on large tables pass the JIT threshold, and
        # compiling took longer (up to 1-2 s for the history) than running them.
        session.execute(text("SET LOCAL jit = off"))
    # Company-wide figures come from the daily roll-up when it can give them exactly.
    if len(conditions) > 1 or not stage_entries_from_rollup(session, result, now):
        _stage_entries(session, result, configs, conditions, now)
    _closed_deals(session, result, conditions)
    _stale(session, result, configs, conditions, now)
    return result


def _stage_entries(
    session: Session,
    result: Funnel,
    configs: list[StageConfig],
    conditions: list[Any],
    now: datetime,
) -> None:
    names = [c.stage for c in configs]
    start, end = day_start(result.period_start), day_start(result.period_end)
    # A period that has not ended has no moves after it: the window then sees every next move.
    ended = end <= now
    postgres = session.get_bind().dialect.name == "postgresql"
    history, scoped = _period_moves(
        [*names, "won", "lost"], conditions, start, end, ended=ended, lateral=postgres
    )
    moves = history.subquery()
    later = aliased(StageChange)

    def after_period(column: Any) -> Any:
        return (
            select(column)
            .where(later.opportunity_id == moves.c.oid, later.changed_at >= end)
            .order_by(later.changed_at, later.id)
            .limit(1)
            .scalar_subquery()
        )

    still = literal(now, UTCDateTime())
    left = func.coalesce(moves.c.left_at, after_period(later.changed_at), still)
    next_stage: Any = func.coalesce(moves.c.next_stage, after_period(later.to_stage))
    if not ended:
        left, next_stage = func.coalesce(moves.c.left_at, still), moves.c.next_stage
    following = {
        name: names[i + 1] if i + 1 < len(names) else "won" for i, name in enumerate(names)
    }
    # The deals' amount and status come along with a filter's deals, else from a join below.
    deal_columns = (moves.c.amount, moves.c.status) if scoped is not None else ()
    stays = (
        select(
            moves.c.oid,
            moves.c.stage,
            *deal_columns,
            seconds_between(session, moves.c.entered, left).label("dwell"),
            case((next_stage == case(following, value=moves.c.stage), 1), else_=0).label(
                "advanced"
            ),
        )
        .where(moves.c.entered < end, moves.c.stage.in_(names))
        .cte("stays")
    )
    carried = (stays.c.amount, stays.c.status) if scoped is not None else ()
    per_deal = (
        select(stays.c.oid, stays.c.stage, *carried, func.max(stays.c.advanced).label("advanced"))
        .group_by(stays.c.oid, stays.c.stage, *carried)
        .subquery()
    )
    deal: Any = per_deal.c if scoped is not None else Opportunity
    deals = select(
        per_deal.c.stage,
        func.count().label("entered"),
        func.sum(deal.amount).label("amount"),
        func.sum(per_deal.c.advanced).label("advanced"),
        func.sum(case((deal.status == "won", 1), else_=0)).label("won"),
        func.sum(case((deal.status == "lost", 1), else_=0)).label("lost"),
    ).group_by(per_deal.c.stage)
    if scoped is None:
        deals = deals.join(Opportunity, Opportunity.id == per_deal.c.oid)
    by_stage = {f.stage: f for f in result.stages}
    if postgres:
        # One statement: the stays are computed once and feed both aggregates. A long period
        # sorts hundreds of thousands of moves; let this transaction sort them in memory.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        dwell = (
            select(
                stays.c.stage,
                func.count().label("stays"),
                func.avg(stays.c.dwell).label("average"),
                func.percentile_cont(0.5).within_group(stays.c.dwell).label("median"),
            )
            .group_by(stays.c.stage)
            .subquery()
        )
        per_stage = deals.subquery()
        rows = session.execute(
            select(dwell, per_stage).join(per_stage, per_stage.c.stage == dwell.c.stage)
        )
        for row in rows:
            figures = by_stage[row[0]]
            figures.stays, figures.avg_days, figures.median_days = (
                int(row.stays),
                days(row.average),
                days(row.median),
            )
            _deal_figures(figures, row)
        return
    for row in session.execute(deals):
        _deal_figures(by_stage[row.stage], row)
    samples: dict[str, list[float]] = {}
    for stage, dwell_seconds in session.execute(select(stays.c.stage, stays.c.dwell)):
        samples.setdefault(stage, []).append(round(float(dwell_seconds), 3))
    for stage, values in samples.items():
        figures = by_stage[stage]
        figures.stays = len(values)
        figures.avg_days = days(statistics.fmean(values))
        figures.median_days = days(statistics.median(values))


def _period_moves(
    kinds: list[str],
    conditions: list[Any],
    start: datetime,
    end: datetime,
    *,
    ended: bool,
    lateral: bool,
) -> tuple[Any, Any]:
    """Return the period's moves into `kinds`, each with the deal's next move in the period,
    and the filtered deals' subquery (None without filters) whose amount and status come along.

    For the last move of a deal in the period the next move is looked up after the period
    (index on deal and time), and an open deal without one is still in its stage at `now`.
    Stage names belong to one pipeline, so without other filters the deals need not be joined;
    with them (team, rep, territory, product) the deals come first and each one's moves are
    read from the index on deal and time, instead of every deal's moves of the period.
    """
    source: Any = StageChange.__table__
    in_period = [source.c.changed_at >= start, source.c.to_stage.in_(kinds)]
    if ended:
        in_period.append(source.c.changed_at < end)
    scoped: Any = None
    if len(conditions) > 1:  # conditions[0] is the pipeline
        scoped = (
            select(Opportunity.id, Opportunity.amount, Opportunity.status)
            .where(*conditions)
            .subquery("scoped")
        )
        columns = (source.c.id, source.c.opportunity_id, source.c.to_stage, source.c.changed_at)
        own = select(*columns).where(source.c.opportunity_id == scoped.c.id, *in_period)
        # LATERAL makes PostgreSQL read the moves deal by deal; SQLite has no LATERAL.
        source = own.lateral("own_moves") if lateral else own.subquery("own_moves")
    window: dict[str, Any] = {
        "partition_by": source.c.opportunity_id,
        "order_by": (source.c.changed_at, source.c.id),
    }
    history = select(
        source.c.opportunity_id.label("oid"),
        source.c.to_stage.label("stage"),
        source.c.changed_at.label("entered"),
        func.lead(source.c.changed_at).over(**window).label("left_at"),
        func.lead(source.c.to_stage).over(**window).label("next_stage"),
        *((scoped.c.amount, scoped.c.status) if scoped is not None else ()),
    )
    if scoped is None:
        return history.where(*in_period), None
    if lateral:
        return history.select_from(scoped).join(source, true()), scoped
    return history.select_from(scoped).join(source, source.c.opportunity_id == scoped.c.id), scoped


def _deal_figures(figures: StageFigures, row: Any) -> None:
    figures.entered, figures.amount = int(row.entered), money(row.amount)
    figures.advanced, figures.won, figures.lost = int(row.advanced), int(row.won), int(row.lost)


def _closed_deals(session: Session, result: Funnel, conditions: list[Any]) -> None:
    start, end = day_start(result.period_start), day_start(result.period_end)
    cycle = seconds_between(session, Opportunity.created_at, Opportunity.closed_at)
    rows = session.execute(
        select(
            Opportunity.status,
            Opportunity.close_reason,
            func.count(),
            func.sum(Opportunity.amount),
            func.sum(cycle),
        )
        .where(
            *conditions,
            Opportunity.status.in_(("won", "lost")),
            Opportunity.closed_at >= start,
            Opportunity.closed_at < end,
        )
        .group_by(Opportunity.status, Opportunity.close_reason)
    )
    cycle_seconds = {"won": 0.0, "lost": 0.0}
    for status, reason, count, amount, seconds in rows:
        result.reasons.append(ReasonFigures(status, reason or "", int(count), money(amount)))
        cycle_seconds[status] += float(seconds or 0)
        if status == "won":
            result.won_count += int(count)
            result.won_amount = money(result.won_amount + money(amount))
        else:
            result.lost_count += int(count)
            result.lost_amount = money(result.lost_amount + money(amount))
    if result.won_count:
        result.avg_cycle_days_won = days(cycle_seconds["won"] / result.won_count)
    if result.lost_count:
        result.avg_cycle_days_lost = days(cycle_seconds["lost"] / result.lost_count)
    result.reasons.sort(key=lambda r: (r.outcome != "won", -r.count, r.reason))


def _stale(
    session: Session,
    result: Funnel,
    configs: list[StageConfig],
    conditions: list[Any],
    now: datetime,
) -> None:
    limits = {c.stage: c.max_days for c in configs if c.max_days}
    # Stage names belong to one pipeline, so conditions[0] (the pipeline) is not needed here.
    narrowing = conditions[1:]
    by_stage = {f.stage: f for f in result.stages}
    found: list[Opportunity] = []
    for stage, max_days in limits.items():
        overdue = (
            Opportunity.status == "open",
            Opportunity.stage == stage,
            Opportunity.stage_since < now - timedelta(days=max_days),
            *narrowing,
        )
        by_stage[stage].stale = session.scalar(select(func.count()).where(*overdue)) or 0
        if by_stage[stage].stale:
            found += session.scalars(
                select(Opportunity)
                .where(*overdue)
                .order_by(Opportunity.stage_since, Opportunity.id)
                .limit(STALE_LIST_LIMIT)
            )
    deals = sorted(found, key=lambda d: (d.stage_since or now, d.id))[:STALE_LIST_LIMIT]
    names = user_names(session, (d.owner_id for d in deals))
    for deal in deals:
        assert deal.stage is not None  # by the query
        assert deal.stage_since is not None
        result.stale_deals.append(
            StaleDeal(
                deal.id,
                deal.name,
                names.get(deal.owner_id, ""),
                deal.stage,
                deal.stage_since,
                days((now - deal.stage_since).total_seconds()) or Decimal("0"),
                limits[deal.stage],
            )
        )
