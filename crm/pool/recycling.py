"""Recycling: owned customers that a pool's rules say were left idle go back to a pool.

One query per rule finds them (`candidates`, in crm/pool/idle_query.py); the rule run, the
warnings and the managers' preview all use it, so the preview lists exactly what the next run
does. Rules are taken in pool and rule order and the first rule that matches a customer
recycles it. On PostgreSQL the due customers' history is written in SQL (crm/pool/recycled.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from crm.customers.models import Customer, Pool
from crm.directory.models import User
from crm.pool.idle_query import candidates
from crm.pool.models import PoolPolicy, RecycleLimit, RecycleRule
from crm.pool.recycled import move_to_pool, record_history, recycle_in_sql
from crm.pool.tasks import hand_open_tasks_to

# Customer ids per batch: a batch's rows and its slice of the activity index stay small.
BATCH = 20000


@dataclass(frozen=True)
class RuleSetting:
    """A recycling rule with everything its query needs."""

    rule: RecycleRule
    pool: Pool
    policy: PoolPolicy
    limits: dict[str, int]  # tier -> days

    @cached_property
    def target_pool_id(self) -> int:
        return self.rule.target_pool_id or self.policy.target_pool_id or self.pool.id


@dataclass(slots=True)
class Candidate:
    """A customer a rule would recycle (or warn about), and the numbers why."""

    customer_id: int
    name: str
    owner_id: int
    tier: str
    rule_id: int
    trigger: str
    pool_id: int
    target_pool_id: int
    since: datetime
    idle_days: int
    threshold: int
    due_at: datetime

    def detail(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "trigger": self.trigger,
            "days": self.idle_days,
            "threshold": self.threshold,
            "since": self.since.isoformat(),
            "pool": self.pool_id,
            "target_pool": self.target_pool_id,
        }


Warn = Callable[[list["Candidate"]], int]


def load_rules(session: Session, pool_id: int | None = None) -> list[RuleSetting]:
    """Return the active rules (with a policy and at least one tier limit), in run order."""
    query = (
        select(RecycleRule, Pool, PoolPolicy)
        .join(Pool, Pool.id == RecycleRule.pool_id)
        .join(PoolPolicy, PoolPolicy.pool_id == Pool.id)
        .where(RecycleRule.active.is_(True))
        .order_by(Pool.id, RecycleRule.id)
    )
    if pool_id is not None:
        query = query.where(Pool.id == pool_id)
    rows = session.execute(query).all()
    limits: dict[int, dict[str, int]] = {}
    if rows:
        for rule_id, tier, days in session.execute(
            select(RecycleLimit.rule_id, RecycleLimit.tier, RecycleLimit.days).where(
                RecycleLimit.rule_id.in_([r.id for r, _, _ in rows])
            )
        ).all():
            limits.setdefault(rule_id, {})[tier] = days
    return [
        RuleSetting(rule, pool, policy, limits[rule.id])
        for rule, pool, policy in rows
        if limits.get(rule.id)
    ]


def _candidates(setting: RuleSetting, rows: Sequence[Any], now: datetime) -> list[Candidate]:
    rule_id, trigger = setting.rule.id, setting.rule.trigger_kind
    pool_id, target = setting.pool.id, setting.target_pool_id
    spans = {tier: timedelta(days=days) for tier, days in setting.limits.items()}
    found = []
    for row in rows:
        since: datetime = row.since
        if trigger == "contract_ended" and row.last_order_end is not None:
            since = max(since, datetime.combine(row.last_order_end, time(0), tzinfo=UTC))
        span = spans[row.tier]
        found.append(
            Candidate(
                row.id,
                row.name,
                row.owner_id,
                row.tier,
                rule_id,
                trigger,
                pool_id,
                target,
                since,
                (now - since).days,
                span.days,
                since + span,
            )
        )
    return found


def _id_ranges(session: Session) -> Iterator[dict[str, int]]:
    """Yield the bound ids of BATCH-wide ranges, skipping gaps; the next is found lazily."""
    low = session.scalar(select(func.min(Customer.id)))
    while low is not None:
        high = low + BATCH
        yield {"range_low": low, "range_high": high}
        low = session.scalar(select(func.min(Customer.id)).where(Customer.id >= high))


def iter_candidates(
    session: Session,
    setting: RuleSetting,
    now: datetime,
    *,
    ahead: timedelta = timedelta(0),
) -> Iterator[list[Candidate]]:
    """Yield the rule's candidates batch by batch, each batch a range of BATCH customer ids."""
    query = candidates(session, setting, now, ahead=ahead, ranged=True).order_by(Customer.id)
    for id_range in _id_ranges(session):
        rows = session.execute(query, id_range).all()
        if rows:
            yield _candidates(setting, rows, now)


def recycle_due_customers(
    session: Session, now: datetime, *, warn: Warn | None = None
) -> tuple[int, int]:
    """Send every customer a rule says is due back to its target pool.

    With `warn`, the same scan also hands it the customers due within the pool's warning days.
    Return how many were recycled and how many warnings `warn` reported.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Many short batched scans: JIT compiling each (~20 ms) would cost more than it saves.
        session.execute(text("SET LOCAL jit = off"))
    recycled = warned = 0
    for setting in load_rules(session):
        ahead = timedelta(days=setting.policy.warning_days) if warn else timedelta(0)
        manager = session.get(User, setting.policy.manager_id)
        recycle_range = _range_recycler(session, setting, now, ahead)
        for id_range in _id_ranges(session):
            owners, soon = recycle_range(id_range)
            recycled += len(owners)
            if owners and manager is not None:
                hand_open_tasks_to(session, owners, manager, now=now, reason="customer recycled")
            if soon and warn is not None:
                warned += warn(soon)
    return recycled, warned


RangeRecycler = Callable[[dict[str, int]], tuple[dict[int, int], list[Candidate]]]


def _range_recycler(
    session: Session, setting: RuleSetting, now: datetime, ahead: timedelta
) -> RangeRecycler:
    """Return a function that recycles a range's due customers.

    It returns {customer: old owner} of those recycled and the candidates due later. The
    customers are taken FOR UPDATE SKIP LOCKED, in id order: another run skips them.
    """
    found = (
        candidates(session, setting, now, ahead=ahead, ranged=True)
        .with_for_update(of=Customer, skip_locked=True)
        .order_by(Customer.id)
    )
    target = setting.target_pool_id
    if session.get_bind().dialect.name == "postgresql":
        # The due rows' history is written in SQL: they never travel to Python and back.
        statement = recycle_in_sql(found, setting, now)

        def in_sql(id_range: dict[str, int]) -> tuple[dict[int, int], list[Candidate]]:
            rows = session.execute(statement, id_range).all()
            owners = {row.id: row.owner_id for row in rows if row.due}
            move_to_pool(session, list(owners), target)
            return owners, _candidates(setting, [row for row in rows if not row.due], now)

        return in_sql

    def in_python(id_range: dict[str, int]) -> tuple[dict[int, int], list[Candidate]]:
        rows = _candidates(setting, session.execute(found, id_range).all(), now)
        due = [c for c in rows if c.due_at <= now]
        record_history(session, due, now)
        move_to_pool(session, [c.customer_id for c in due], target)
        return {c.customer_id: c.owner_id for c in due}, [c for c in rows if c.due_at > now]

    return in_python


def preview_recycling(
    session: Session, now: datetime, *, pool_id: int | None = None, limit: int = 500
) -> list[Candidate]:
    """Return what a run at `now` would recycle, with the rule and numbers, in run order."""
    seen: set[int] = set()
    found: list[Candidate] = []
    # All pools' rules run, in run order: a customer an earlier rule takes is not listed again.
    for setting in load_rules(session):
        for batch in iter_candidates(session, setting, now):
            for candidate in batch:
                if candidate.customer_id in seen:
                    continue
                seen.add(candidate.customer_id)
                if pool_id is None or setting.pool.id == pool_id:
                    found.append(candidate)
                if len(found) >= limit:
                    return found
    return found


def upcoming_recycling(
    session: Session, now: datetime, setting: RuleSetting
) -> Iterator[list[Candidate]]:
    """Yield the rule's customers due within the pool's warning days but not yet due."""
    ahead = timedelta(days=setting.policy.warning_days)
    for batch in iter_candidates(session, setting, now, ahead=ahead):
        yield [c for c in batch if now < c.due_at <= now + ahead]
