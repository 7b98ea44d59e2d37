"""What recycling a batch writes: one owner-history row per customer, then the customers' move.

On PostgreSQL one statement per batch finds, locks and judges the candidates and writes the due
ones' history (`recycle_in_sql`), so their rows never travel to Python and back: at 100,000
customers, adapting them in Python cost more than the inserts themselves. Elsewhere the
candidates judged in Python are written by `record_history`. `move_to_pool` follows either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    String,
    Table,
    case,
    extract,
    func,
    insert,
    literal,
    null,
    select,
    type_coerce,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from crm.customers.models import Customer, OwnerChange
from crm.pool.bulk import among, insert_rows
from engine.db import UTCDateTime

if TYPE_CHECKING:
    from crm.pool.recycling import Candidate, RuleSetting

# The history shows when idleness began to the second, in UTC.
_SINCE_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'


def recycle_in_sql(found: Select[Any], setting: RuleSetting, now: datetime) -> Select[Any]:
    """Return one PostgreSQL statement that writes the history of `found`'s due customers.

    `found` is `candidates(...)` locked FOR UPDATE SKIP LOCKED. The rows written are those
    `record_history` writes. The statement returns every row of `found` with the idle start
    `since` (counted as `Candidate.since` is), `threshold` and `due` (`Candidate.due_at <= now`),
    in id order; of a due row only `id`, `owner_id` and `due`.
    """
    rule_id, trigger, target = setting.rule.id, setting.rule.trigger_kind, setting.target_pool_id
    locked = found.cte("found")
    since: Any = locked.c.since
    if trigger == "contract_ended":
        # A contract's last day counts from its midnight, UTC (as in `_candidates`).
        ended = func.timezone("UTC", sql_cast(locked.c.last_order_end, DateTime()))
        since = func.greatest(since, ended)
    since = type_coerce(since, UTCDateTime())
    # due_at = since + limit <= now, i.e. since <= now - limit: the same datetime arithmetic.
    cutoff = case(
        {
            tier: literal(now - timedelta(days=days), UTCDateTime())
            for tier, days in setting.limits.items()
        },
        value=locked.c.tier,
    )
    threshold = case(dict(setting.limits), value=locked.c.tier)
    extra = [locked.c.last_order_end] if trigger == "contract_ended" else []
    judged = select(
        locked.c.id,
        locked.c.name,
        locked.c.owner_id,
        locked.c.tier,
        since.label("since"),
        threshold.label("threshold"),
        (since <= cutoff).label("due"),
        *extra,
    ).cte("judged")
    # Whole days, rounded down as timedelta.days does.
    days = sql_cast(
        func.floor(extract("epoch", literal(now, UTCDateTime()) - judged.c.since) / 86400),
        Integer,
    )
    note = (
        literal(trigger, String)
        + ": "
        + sql_cast(days, String)
        + " days (limit "
        + sql_cast(judged.c.threshold, String)
        + ")"
    )
    detail = func.jsonb_build_object(
        *("rule", literal(rule_id, Integer)),
        *("trigger", literal(trigger, String)),
        *("days", days),
        *("threshold", judged.c.threshold),
        *("since", func.to_char(func.timezone("UTC", judged.c.since), _SINCE_FORMAT)),
        *("pool", literal(setting.pool.id, Integer)),
        *("target_pool", literal(target, Integer)),
    )
    history = insert(OwnerChange).from_select(
        ["customer_id", "from_user_id", "reason", "note", "detail", "changed_at", "changed_by"],
        select(
            judged.c.id,
            judged.c.owner_id,
            literal("recycle", String),
            note,
            detail,
            literal(now, UTCDateTime()),
            literal(f"rule:{rule_id}", String),
        ).where(judged.c.due),
    )
    # Of a due row only its id and owner come back (for the handover of its open tasks).
    later = [
        type_coerce(case((judged.c.due, null()), else_=column), column.type).label(column.name)
        for column in judged.c
        if column.name not in ("id", "owner_id", "due")
    ]
    return (
        select(judged.c.id, judged.c.owner_id, judged.c.due, *later)
        .add_cte(history.cte("history"))
        .order_by(judged.c.id)
    )


def move_to_pool(session: Session, customer_ids: list[int], target_pool_id: int) -> None:
    """Put the customers in `target_pool_id`, unowned; run after their history is written.

    The rows are locked by the caller (or, on SQLite, the database is), so the owners the
    history names were still theirs. Written after the history, the history's foreign-key
    check finds each customer row already locked by the scan and takes no second lock.
    """
    if not customer_ids:
        return
    session.execute(
        update(Customer)
        .where(among(session, Customer.id, customer_ids), Customer.owner_id.is_not(None))
        .values(
            owner_id=None, pool_id=target_pool_id, home_pool_id=target_pool_id, owner_since=None
        )
        .execution_options(synchronize_session=False)
    )


def record_history(session: Session, found: Sequence[Candidate], now: datetime) -> None:
    """Add an owner-history row ("recycle", rule id, days, threshold) for each candidate."""
    if not found:
        return
    insert_rows(
        session,
        cast(Table, OwnerChange.__table__),
        [
            {
                "customer_id": c.customer_id,
                "from_user_id": c.owner_id,
                "to_user_id": None,
                "reason": "recycle",
                "note": f"{c.trigger}: {c.idle_days} days (limit {c.threshold})",
                "detail": c.detail(),
                "changed_at": now,
                "changed_by": f"rule:{c.rule_id}",
            }
            for c in found
        ],
    )
