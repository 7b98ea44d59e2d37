"""The funnel's stage figures from the daily roll-up instead of the stage history.

A company-wide funnel (no team, rep, territory or product filter, seen by someone whose scope is
everything) reads a few rows per day and stage instead of every move of the period. The figures
are the same as the ones `crm.analytics.funnel` computes from the history on PostgreSQL. When
the roll-up cannot give exactly those (no roll-up yet, a changed stage list, a deal moved into a
stage outside the list or changed without a refresh, a median next to a stay recorded out of
order), `stage_entries_from_rollup` answers False and the funnel reads the history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from math import ceil, floor
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, literal, select, text
from sqlalchemy.orm import Session

from crm.analytics.models import FunnelDwellDay, FunnelEntryDay, FunnelRollup, FunnelStaleDeal
from crm.analytics.numbers import TENTH, days
from crm.analytics.periods import day_start
from crm.analytics.rollup import CELL_SECONDS, OPEN_CELL, exact_seconds
from crm.sales.models import PIPELINES, Opportunity
from engine.db import UTCDateTime

if TYPE_CHECKING:
    from crm.analytics.funnel import Funnel

_MICRO = Decimal("0.000001")


def rollup_usable(session: Session, pipeline: str, names: list[str]) -> bool:
    """Tell whether the roll-up answers for the pipeline's current stages.

    The history counts a move by its stage name whatever the deal's pipeline, so every
    pipeline needs a roll-up, with no deal left out and no stage name shared.
    """
    if session.get_bind().dialect.name != "postgresql":
        return False  # SQLite's dwell seconds are rounded floats; see funnel._stage_entries
    rollups = {r.pipeline: r for r in session.scalars(select(FunnelRollup))}
    if set(rollups) != set(PIPELINES) or rollups[pipeline].stages != ",".join(names):
        return False
    layouts = [r.stages.split(",") for r in rollups.values()]
    every = [s for layout in layouts for s in layout]
    if len(every) != len(set(every)) or any(r.left_out_deals for r in rollups.values()):
        return False
    # A deal changed behind the services' back (marked by a trigger) waits for the rule.
    # Through the primary key: the marks come and go, and a scan would read the dead ones.
    marked = select(FunnelStaleDeal.opportunity_id).order_by(FunnelStaleDeal.opportunity_id)
    return session.scalar(marked.limit(1)) is None


def stage_entries_from_rollup(session: Session, result: Funnel, now: datetime) -> bool:
    """Fill each stage's entries, conversion, stays and dwell; answer False if the history
    must."""
    from crm.analytics.funnel import _deal_figures  # funnel imports this module

    names = [f.stage for f in result.stages]
    if not rollup_usable(session, result.pipeline, names):
        return False
    start, end = result.period_start, result.period_end
    dwell = _dwell_samples(session, result.pipeline, names, (start, end), now)
    if dwell is None:
        return False
    by_stage = {f.stage: f for f in result.stages}
    medians: dict[str, Decimal] = {}
    for stage, (count, _seconds, cells) in dwell.items():
        median = _median_days(cells, count)
        if median is None:
            return False
        medians[stage] = median
    averages = _averages(session, {s: (c, total) for s, (c, total, _) in dwell.items()})
    entry = FunnelEntryDay
    moved_on = case((entry.moved_on_day < end, entry.stays), else_=0)
    rows = session.execute(
        select(
            entry.stage,
            func.sum(entry.stays).label("entered"),
            func.sum(entry.amount).label("amount"),
            func.sum(moved_on).label("advanced"),
            func.sum(entry.won).label("won"),
            func.sum(entry.lost).label("lost"),
        )
        .where(
            entry.pipeline == result.pipeline,
            entry.day >= start,
            entry.day < end,
            entry.prev_day < start,
        )
        .group_by(entry.stage)
    )
    # Rows emptied by refreshes stay behind with zeros; a stage without stays has no figures.
    found = [row for row in rows if row.entered]
    if any(row.stage not in dwell for row in found):
        return False
    for row in found:
        figures = by_stage[row.stage]
        _deal_figures(figures, row)
        figures.stays = dwell[row.stage][0]
        figures.avg_days, figures.median_days = days(averages[row.stage]), medians[row.stage]
    return True


@dataclass
class CellStays:
    """Stays shown as one tenth of a day, with the shortest and longest where known."""

    stays: int = 0
    shortest: Decimal | None = None
    longest: Decimal | None = None
    known: bool = True

    def add(self, stays: int, shortest: Decimal | None, longest: Decimal | None) -> None:
        self.stays += stays
        if shortest is None or longest is None:
            self.known = False
            return
        self.shortest = shortest if self.shortest is None else min(self.shortest, shortest)
        self.longest = longest if self.longest is None else max(self.longest, longest)


Cells = dict[int, CellStays]


def _dwell_samples(
    session: Session,
    pipeline: str,
    names: list[str],
    period: tuple[Any, Any],
    now: datetime,
) -> dict[str, tuple[int, Decimal, Cells]] | None:
    """Return per stage: stays, their summed seconds up to `now`, and the stays per cell."""
    dwell = FunnelDwellDay
    rows = session.execute(
        select(
            dwell.stage, dwell.day, dwell.cell, dwell.stays, dwell.seconds, dwell.shortest,
            dwell.longest, dwell.lengths_known,
        ).where(
            dwell.pipeline == pipeline, dwell.day >= period[0], dwell.day < period[1],
            dwell.stays != 0,
        )
    )  # fmt: skip
    open_stays: dict[str, tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal(0)))
    cells: dict[str, Cells] = defaultdict(lambda: defaultdict(CellStays))
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for stage, day, cell, stays, seconds, shortest, longest, known in rows:
        totals[stage][0] += stays
        if cell == OPEN_CELL:  # seconds: the stays' start times after midnight
            up_to_now = stays * exact_seconds(now - day_start(day)) - seconds
            totals[stage][1] += up_to_now
            count, summed = open_stays[stage]
            open_stays[stage] = (count + stays, summed + up_to_now)
        else:
            totals[stage][1] += seconds
            cells[stage][cell].add(stays, shortest if known else None, longest)
    # An open stay's length depends on `now`: its cell comes from the deal itself, and the
    # deals must agree with the roll-up's count and sum of such stays.
    for stage, cell, stays, seconds, shortest, longest in _open_cells(session, names, period, now):
        if cell < 0:
            return None  # a stay that starts after `now`: let the history decide the sign
        cells[stage][int(cell)].add(stays, shortest, longest)
        count, summed = open_stays[stage]
        open_stays[stage] = (count - stays, summed - seconds)
    if any(count or summed for count, summed in open_stays.values()):
        return None
    return {
        stage: (count, seconds, cells[stage]) for stage, (count, seconds) in totals.items() if count
    }


def _open_cells(session: Session, names: list[str], period: Any, now: datetime) -> list[Any]:
    """Return the open deals' current stays begun in the period by stage and display cell."""
    seconds = func.extract("epoch", literal(now, UTCDateTime()) - Opportunity.stage_since)
    cell = func.floor((seconds + CELL_SECONDS / 2) / CELL_SECONDS)
    return list(
        session.execute(
            select(
                Opportunity.stage, cell, func.count(), func.sum(seconds), func.min(seconds),
                func.max(seconds),
            )
            .where(
                Opportunity.status == "open",
                Opportunity.stage.in_(names),
                Opportunity.stage_since >= day_start(period[0]),
                Opportunity.stage_since < day_start(period[1]),
            )
            .group_by(Opportunity.stage, cell)
        )
    )  # fmt: skip


def _median_days(cells: Cells, count: int) -> Decimal | None:
    """Return the median in days as the history shows it, or None if the cells cannot tell.

    The history's median lies between its two middle stays. When both are in one cell it
    shows as that cell; otherwise they are the longest of one cell and the shortest of the
    next, and their mean is taken as PostgreSQL's percentile_cont does (in floating point).
    """
    middle = 0.5 * (count - 1)
    low, high = floor(middle), ceil(middle)
    seen, low_cell, high_cell = 0, None, None
    for cell in sorted(cells):
        seen += cells[cell].stays
        if low_cell is None and low < seen:
            low_cell = cell
        if high < seen:
            high_cell = cell
            break
    if low_cell is None or high_cell is None:
        return None
    if low_cell == high_cell:
        return (Decimal(low_cell) / 10).quantize(TENTH)
    below, above = cells[low_cell], cells[high_cell]
    if not (below.known and above.known) or below.longest is None or above.shortest is None:
        return None
    first, second = float(below.longest), float(above.shortest)
    return days(first + (middle - low) * (second - first))


def _averages(session: Session, sums: dict[str, tuple[int, Decimal]]) -> dict[str, Any]:
    """Divide the sums as PostgreSQL's avg(numeric) does, so the rounding is the same."""
    averages: dict[str, Any] = {}
    for stage, (count, seconds) in sums.items():
        averages[stage] = session.scalar(
            text("SELECT CAST(:seconds AS numeric) / CAST(:count AS numeric)"),
            {"seconds": seconds.quantize(_MICRO), "count": count},
        )
    return averages
