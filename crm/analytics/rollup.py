"""Keep the funnel's daily roll-up (`funnel_entry_day`, `funnel_dwell_day`) in step with deals.

Each deal adds its stage stays to the tables once. When the deal changes (a stage move, a win
or loss, a new amount or pipeline)
`refresh_funnel_deal` takes its old share out and puts the new one in, in the caller's
transaction, so the tables are exact whenever the deal's change is. What a deal added is
recomputed from `funnel_deal` (the amount, status and newest move it was computed from)
and the unchanged history, so nothing per stay is stored twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm.analytics.models import (
    FunnelDeal,
    FunnelDwellDay,
    FunnelEntryDay,
    FunnelRollup,
    FunnelStaleDeal,
)
from crm.sales.models import Opportunity, StageChange

NO_DAY_BEFORE = date(1, 1, 1)
NO_DAY_AFTER = date(9999, 12, 31)
OPEN_CELL = -1
# Days are shown with one decimal, rounded half up: a stay of s seconds shows as cell / 10 days.
CELL_SECONDS = Decimal(8640)
_HALF_CELL = Decimal(4320)
OUTCOMES = ("won", "lost")

# pipeline, day, stage, prev_day, moved_on_day / pipeline, day, stage, cell
EntryKey = tuple[str, date, str, date, date]
DwellKey = tuple[str, date, str, int]


@dataclass(frozen=True)
class DealState:
    """What of a deal its share depends on besides its moves."""

    pipeline: str
    amount: Decimal
    status: str


@dataclass
class DwellSum:
    stays: int = 0
    seconds: Decimal = Decimal("0.000000")
    # Closed stays' lengths, counted up and down: a length whose count goes below zero was
    # taken out, and the row's shortest and longest length are no longer known.
    lengths: dict[Decimal, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class Share:
    """What some deals add to the roll-up tables (`None` from `deal_share`: left out)."""

    entries: dict[EntryKey, list[Any]] = field(
        default_factory=lambda: defaultdict(lambda: [0, Decimal("0.00"), 0, 0])
    )
    dwell: dict[DwellKey, DwellSum] = field(default_factory=lambda: defaultdict(DwellSum))

    def add(self, other: Share, sign: int = 1) -> None:
        for key, values in other.entries.items():
            mine = self.entries[key]
            for i, value in enumerate(values):
                mine[i] += sign * value
        for dkey, theirs in other.dwell.items():
            dmine = self.dwell[dkey]
            dmine.stays += sign * theirs.stays
            dmine.seconds += sign * theirs.seconds
            for length, count in theirs.lengths.items():
                dmine.lengths[length] += sign * count


def exact_seconds(delta: timedelta) -> Decimal:
    """Return a time span in seconds, exact to the microsecond."""
    whole = Decimal(delta.days * 86400 + delta.seconds)
    return whole + Decimal(delta.microseconds).scaleb(-6)


def dwell_cell(seconds: Decimal) -> int:
    """Return the tenth of a day that `seconds` shows as (rounded half up)."""
    return int((seconds + _HALF_CELL) // CELL_SECONDS)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def day_offset(moment: datetime) -> Decimal:
    """Return the seconds from the start of the moment's UTC day."""
    moment = moment.astimezone(UTC)
    return exact_seconds(moment - datetime.combine(moment.date(), datetime.min.time(), UTC))


def deal_share(
    moves: Sequence[tuple[str, datetime]],
    stages: Sequence[str],
    deal: DealState,
) -> Share | None:
    """Return what one deal adds, from its moves `(to_stage, changed_at)` in history order.

    A deal that moved into a stage outside `stages` is left out (None): the funnel counts only
    the pipeline's stages, and only the stage history can answer for such a deal.
    """
    if any(stage not in stages and stage not in OUTCOMES for stage, _ in moves):
        return None
    following = {s: stages[i + 1] if i + 1 < len(stages) else "won" for i, s in enumerate(stages)}
    share = Share()
    stays = [i for i, (stage, _) in enumerate(moves) if stage in following]
    moved_on_day: dict[str, date] = {}  # per stage, the first later stay that moved on
    for i in reversed(stays):
        stage, entered = moves[i]
        nxt = moves[i + 1] if i + 1 < len(moves) else None
        if nxt is not None and nxt[0] == following[stage]:
            moved_on_day[stage] = utc_day(entered)
        earlier = [moves[j][1] for j in stays if j < i and moves[j][0] == stage]
        prev_day = utc_day(earlier[-1]) if earlier else NO_DAY_BEFORE
        day = utc_day(entered)
        seconds = exact_seconds(nxt[1] - entered) if nxt is not None else None
        entry = share.entries[
            (deal.pipeline, day, stage, prev_day, moved_on_day.get(stage, NO_DAY_AFTER))
        ]
        entry[0] += 1
        entry[1] += deal.amount
        entry[2] += deal.status == "won"
        entry[3] += deal.status == "lost"
        if seconds is None:
            dwell = share.dwell[(deal.pipeline, day, stage, OPEN_CELL)]
            dwell.seconds += day_offset(entered)
        else:
            dwell = share.dwell[(deal.pipeline, day, stage, dwell_cell(seconds))]
            dwell.seconds += seconds
            dwell.lengths[seconds] += 1
        dwell.stays += 1
    return share


def _moves(session: Session, opportunity_id: int) -> list[Any]:
    query = select(StageChange.id, StageChange.to_stage, StageChange.changed_at).where(
        StageChange.opportunity_id == opportunity_id
    )
    return list(session.execute(query.order_by(StageChange.changed_at, StageChange.id)))


def refresh_funnel_deal(session: Session, opportunity_id: int) -> None:
    """Bring one deal's share of the funnel roll-up up to date (after any change to it).

    Call it in the transaction that changes the deal. Pipelines without a roll-up are skipped.
    """
    session.flush()
    session.execute(delete(FunnelStaleDeal).where(FunnelStaleDeal.opportunity_id == opportunity_id))
    # Shared lock: moves refresh side by side; a rebuild locks the table exclusively, so it
    # waits for the moves under way and they for it, and no move is counted twice or never.
    rollups = {
        r.pipeline: r for r in session.scalars(select(FunnelRollup).with_for_update(read=True))
    }
    if not rollups:
        return
    known = session.get(FunnelDeal, opportunity_id, with_for_update=True)
    deal = session.get(Opportunity, opportunity_id)
    moves = _moves(session, opportunity_id)
    delta = Share()
    if known is not None and known.pipeline in rollups:
        rollup = rollups[known.pipeline]
        counted = [(m.to_stage, m.changed_at) for m in moves if m.id <= known.last_move_id]
        was = DealState(known.pipeline, known.amount, known.status)
        old = deal_share(counted, rollup.stages.split(","), was)
        if old is None:
            rollup.left_out_deals -= 1
        else:
            delta.add(old, -1)
    if deal is None or deal.pipeline not in rollups:
        if known is not None:
            session.delete(known)
        _apply(session, delta)
        return
    rollup = rollups[deal.pipeline]
    now_is = DealState(deal.pipeline, deal.amount, deal.status)
    new = deal_share([(m.to_stage, m.changed_at) for m in moves], rollup.stages.split(","), now_is)
    if new is None:
        rollup.left_out_deals += 1
    else:
        delta.add(new)
    if known is None:
        known = FunnelDeal(opportunity_id=opportunity_id)
        session.add(known)
    known.pipeline, known.amount, known.status = deal.pipeline, deal.amount, deal.status
    known.last_move_id = max((m.id for m in moves), default=0)
    known.left_out = new is None
    _apply(session, delta)


def refresh_funnel_deals(session: Session, opportunity_ids: Iterable[int]) -> None:
    """Refresh several deals (e.g. after a bulk change of their amounts)."""
    for opportunity_id in sorted(set(opportunity_ids)):
        refresh_funnel_deal(session, opportunity_id)


_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(session: Session, table: Any) -> Any:
    """Return the dialect's INSERT … ON CONFLICT that adds to a roll-up row (built once)."""
    dialect = session.get_bind().dialect.name
    if (dialect, table.name) not in _UPSERTS:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table)
        new, old = statement.excluded, table.c
        if table is FunnelEntryDay.__table__:
            keys = ["pipeline", "day", "stage", "prev_day", "moved_on_day"]
            added = {name: old[name] + new[name] for name in ("stays", "amount", "won", "lost")}
        else:
            keys = ["pipeline", "day", "stage", "cell"]
            added = {
                "stays": old.stays + new.stays,
                "seconds": old.seconds + new.seconds,
                "shortest": _either(old.shortest, new.shortest, old.shortest < new.shortest),
                "longest": _either(old.longest, new.longest, old.longest > new.longest),
                "lengths_known": and_(old.lengths_known, new.lengths_known),
            }
        _UPSERTS[(dialect, table.name)] = statement.on_conflict_do_update(
            index_elements=keys, set_=added
        )
    return _UPSERTS[(dialect, table.name)]


def _apply(session: Session, delta: Share) -> None:
    """Add a share to the tables, rows in key order (so concurrent moves lock shared rows in
    the same order)."""
    entries = [
        {
            "pipeline": key[0], "day": key[1], "stage": key[2], "prev_day": key[3],
            "moved_on_day": key[4], "stays": stays, "amount": amount, "won": won, "lost": lost,
        }
        for key, (stays, amount, won, lost) in sorted(delta.entries.items())
        if stays or amount or won or lost
    ]  # fmt: skip
    if entries:
        session.execute(_upsert(session, FunnelEntryDay.__table__), entries)
    dwell_rows = []
    for dkey, dwell in sorted(delta.dwell.items()):
        added = [length for length, count in dwell.lengths.items() if count > 0]
        exact = all(count >= 0 for count in dwell.lengths.values())
        if dwell.stays or dwell.seconds or added or not exact:
            dwell_rows.append(
                {
                    "pipeline": dkey[0], "day": dkey[1], "stage": dkey[2], "cell": dkey[3],
                    "stays": dwell.stays, "seconds": dwell.seconds,
                    "shortest": min(added, default=None), "longest": max(added, default=None),
                    "lengths_known": exact,
                }
            )  # fmt: skip
    if dwell_rows:
        session.execute(_upsert(session, FunnelDwellDay.__table__), dwell_rows)


def _either(old: Any, new: Any, keep_old: Any) -> Any:
    """Return SQL for `old` or `new`, whichever is not null, else the one `keep_old` picks."""
    return case((new.is_(None), old), (old.is_(None), new), (keep_old, old), else_=new)
