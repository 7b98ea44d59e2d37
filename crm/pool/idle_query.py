"""The query for the customers a recycling rule finds idle (`candidates`), batch by batch.

The trigger's latest event per customer comes from a grouped subquery joined once (not a
subquery per customer); with `ranged`, it and the customers are limited to the batch's id
range, bound when the query runs, so a batch reads its own slice of each index.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from crm.activities.models import Activity
from crm.customers.models import Customer
from crm.orders.models import SalesOrder
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.db import UTCDateTime

if TYPE_CHECKING:
    from crm.pool.recycling import RuleSetting

# A batch's id range, bound when its query runs: one statement, built once, serves every batch.
RANGE_LOW = bindparam("range_low", type_=Integer)
RANGE_HIGH = bindparam("range_high", type_=Integer)


def _later(dialect: str, a: ColumnElement[Any], b: Any) -> ColumnElement[Any]:
    # GREATEST skips NULLs on PostgreSQL; SQLite's two-argument max() would return NULL.
    if dialect == "postgresql":
        return func.greatest(a, b)
    return func.max(a, func.coalesce(b, a))


def _last_event(setting: RuleSetting, ranged: bool) -> Any:
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
    if ranged:
        query = query.where(key >= RANGE_LOW, key < RANGE_HIGH)
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
    ranged: bool = False,
) -> Select[Any]:
    """Return the query for the customers this rule recycles at `now + ahead`.

    Columns: id, name, owner_id, tier, since (and last_order_end for contract_ended). With
    `ranged`, only ids in [range_low, range_high), bound when the query is executed.
    """
    at = now + ahead
    cutoffs = {tier: at - timedelta(days=days) for tier, days in setting.limits.items()}
    cutoff = case(
        {tier: literal(cut, UTCDateTime()) for tier, cut in cutoffs.items()},
        value=Customer.tier,
    )
    base = func.coalesce(Customer.owner_since, Customer.created_at)
    last = _last_event(setting, ranged)
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
    if ranged:
        query = query.where(Customer.id >= RANGE_LOW, Customer.id < RANGE_HIGH)
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
