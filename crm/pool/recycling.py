"""Recycling: owned customers that a pool's rules say were left idle go back to a pool.

One query per rule finds them (`candidates`); the rule run, the warnings and the managers'
preview all use it, so the preview lists exactly what the next run does. Rules are taken in
pool and rule order and the first rule that matches a customer recycles it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session

from crm.activities.models import Activity
from crm.customers.models import Customer, Pool
from crm.directory.models import User
from crm.orders.models import SalesOrder
from crm.pool.bulk import among
from crm.pool.history import record_recycling
from crm.pool.models import PoolPolicy, RecycleLimit, RecycleRule
from crm.pool.tasks import hand_open_tasks_to
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.db import UTCDateTime

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


def _later(dialect: str, a: ColumnElement[Any], b: Any) -> ColumnElement[Any]:
    # GREATEST skips NULLs on PostgreSQL; SQLite's two-argument max() would return NULL.
    if dialect == "postgresql":
        return func.greatest(a, b)
    return func.max(a, func.coalesce(b, a))


def _last_event(setting: RuleSetting, id_range: tuple[int, int] | None) -> Any:
    """Return a subquery (customer_id, at) of the event the trigger counts from, or None.

    A grouped subquery joined once (not a subquery per customer), limited to the id range of
    the batch: a batch then reads its own slice of the activity or opportunity index.
    """
    trigger = setting.rule.trigger_kind
    query: Any
    if trigger == "no_followup":
        key = Activity.customer_id
        query = select(key.label("customer_id"), func.max(Activity.happened_at).label("at"))
    elif trigger == "no_opportunity":
        key = Opportunity.customer_id
        latest = func.max(func.coalesce(Opportunity.closed_at, Opportunity.created_at))
        query = select(key.label("customer_id"), latest.label("at"))
    elif trigger == "no_deal":
        key = Opportunity.customer_id
        query = select(key.label("customer_id"), func.max(Opportunity.closed_at).label("at"))
        query = query.where(Opportunity.status == "won")
    elif trigger == "stage_unchanged":
        key = Opportunity.customer_id
        moved = func.max(func.coalesce(Opportunity.stage_since, Opportunity.created_at))
        query = select(key.label("customer_id"), moved.label("at"))
        query = query.where(Opportunity.status == "open")
    else:  # contract_ended: counted from the owner taking over; the order dates are checked apart
        return None
    if id_range is not None:
        query = query.where(key >= id_range[0], key < id_range[1])
    return query.group_by(key).subquery("last_event")


def _exemptions(setting: RuleSetting) -> list[ColumnElement[bool]]:
    policy = setting.policy
    kept: list[ColumnElement[bool]] = []
    if policy.exempt_locked:
        kept.append(Customer.locked.is_(False))
    if policy.exempt_win_rate is not None:
        kept.append(
            ~exists().where(
                Opportunity.customer_id == Customer.id,
                Opportunity.status == "open",
                Opportunity.stage_win_rate >= policy.exempt_win_rate,
            )
        )
    if policy.exempt_open_approval:
        kept.append(~exists().where(Quote.customer_id == Customer.id, Quote.status == "pending"))
    return kept


def _trigger_conditions(setting: RuleSetting, cutoffs: dict[str, datetime]) -> list[Any]:
    trigger = setting.rule.trigger_kind
    of_customer = Opportunity.customer_id == Customer.id
    if trigger == "no_opportunity":
        return [~exists().where(of_customer, Opportunity.status == "open")]
    if trigger == "stage_unchanged":
        return [exists().where(of_customer, Opportunity.status == "open")]
    if trigger == "contract_ended":
        ended_by = case({tier: cut.date() for tier, cut in cutoffs.items()}, value=Customer.tier)
        orders = SalesOrder.customer_id == Customer.id
        return [
            exists().where(orders),
            ~exists().where(
                orders, or_(SalesOrder.ends_on.is_(None), SalesOrder.ends_on > ended_by)
            ),
        ]
    return []


def candidates(
    session: Session,
    setting: RuleSetting,
    now: datetime,
    *,
    ahead: timedelta = timedelta(0),
    id_range: tuple[int, int] | None = None,
) -> Select[Any]:
    """Return the query for the customers this rule recycles at `now + ahead`.

    Columns: id, name, owner_id, tier, since (and last_order_end for contract_ended).
    """
    at = now + ahead
    cutoffs = {tier: at - timedelta(days=days) for tier, days in setting.limits.items()}
    cutoff = case(
        {tier: literal(cut, UTCDateTime()) for tier, cut in cutoffs.items()},
        value=Customer.tier,
    )
    base = func.coalesce(Customer.owner_since, Customer.created_at)
    last = _last_event(setting, id_range)
    since: Any = base
    if last is not None:
        since = _later(session.get_bind().dialect.name, base, last.c.at)
    since = type_coerce(since, UTCDateTime())
    pool = setting.pool
    governed: ColumnElement[bool] = Customer.home_pool_id == pool.id
    if pool.territory_id is not None:
        governed = or_(
            governed,
            and_(Customer.home_pool_id.is_(None), Customer.territory_id == pool.territory_id),
        )
    columns: list[Any] = [
        Customer.id,
        Customer.name,
        Customer.owner_id,
        Customer.tier,
        since.label("since"),
    ]
    if setting.rule.trigger_kind == "contract_ended":
        columns.append(
            select(func.max(SalesOrder.ends_on))
            .where(SalesOrder.customer_id == Customer.id)
            .scalar_subquery()
            .label("last_order_end")
        )
    query = select(*columns).select_from(Customer)
    if last is not None:
        query = query.outerjoin(last, last.c.customer_id == Customer.id)
    if id_range is not None:
        query = query.where(Customer.id >= id_range[0], Customer.id < id_range[1])
    return query.where(
        Customer.owner_id.is_not(None),
        governed,
        Customer.tier.in_(sorted(setting.limits)),
        # Cheap first: idle time never starts before the owner took over.
        base <= cutoff,
        since <= cutoff,
        *_trigger_conditions(setting, cutoffs),
        *_exemptions(setting),
    )


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


def iter_candidates(
    session: Session,
    setting: RuleSetting,
    now: datetime,
    *,
    ahead: timedelta = timedelta(0),
    lock: bool = False,
) -> Iterator[list[Candidate]]:
    """Yield the rule's candidates batch by batch, each batch a range of BATCH customer ids.

    With `lock`, rows are taken FOR UPDATE SKIP LOCKED: another run skips them.
    """
    low = session.scalar(select(func.min(Customer.id)))
    while low is not None:
        high = low + BATCH
        query = candidates(session, setting, now, ahead=ahead, id_range=(low, high))
        if lock:
            query = query.with_for_update(of=Customer, skip_locked=True)
        rows = session.execute(query.order_by(Customer.id)).all()
        if rows:
            yield _candidates(setting, rows, now)
        low = session.scalar(select(func.min(Customer.id)).where(Customer.id >= high))


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
        for found in iter_candidates(session, setting, now, ahead=ahead, lock=True):
            due = [c for c in found if c.due_at <= now]
            if due:
                recycled += _recycle(session, setting, due, now)
            soon = [c for c in found if c.due_at > now]
            if soon and warn is not None:
                warned += warn(soon)
    return recycled, warned


def _recycle(session: Session, setting: RuleSetting, found: list[Candidate], now: datetime) -> int:
    target = setting.target_pool_id
    owners = {c.customer_id: c.owner_id for c in found}
    record_recycling(session, found, now)
    # The rows are locked (or, on SQLite, the database is): the owners read are still theirs.
    session.execute(
        update(Customer)
        .where(among(session, Customer.id, list(owners)), Customer.owner_id.is_not(None))
        .values(owner_id=None, pool_id=target, home_pool_id=target, owner_since=None)
        .execution_options(synchronize_session=False)
    )
    manager = session.get(User, setting.policy.manager_id)
    if manager is not None:
        hand_open_tasks_to(session, owners, manager, now=now, reason="customer recycled")
    return len(found)


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
