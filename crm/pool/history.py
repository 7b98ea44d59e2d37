"""The owner history of a recycling batch: one row per customer with the rule and its numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import Integer, Table, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from crm.customers.models import OwnerChange
from crm.pool.bulk import insert_rows
from engine.db import UTCDateTime

if TYPE_CHECKING:
    from crm.pool.recycling import Candidate

# On PostgreSQL the rows are built in SQL from five arrays: no per-row work in Python.
_HISTORY = text(
    """INSERT INTO owner_change (customer_id, from_user_id, reason, note, detail, changed_at,
                              changed_by)
       SELECT c, o, 'recycle', :trigger || ': ' || d || ' days (limit ' || t || ')',
              jsonb_build_object('rule', :rule, 'trigger', :trigger, 'days', d, 'threshold', t,
                                 'since', to_char(s AT TIME ZONE 'UTC',
                                                  'YYYY-MM-DD"T"HH24\\:MI\\:SS"+00\\:00"'),
                                 'pool', :pool, 'target_pool', :target),
              :now, :by
       FROM unnest(:customers, :owners, :days, :limits, :since) AS u(c, o, d, t, s)"""
).bindparams(
    bindparam("now", type_=UTCDateTime()),
    bindparam("customers", type_=postgresql.ARRAY(Integer)),
    bindparam("owners", type_=postgresql.ARRAY(Integer)),
    bindparam("days", type_=postgresql.ARRAY(Integer)),
    bindparam("limits", type_=postgresql.ARRAY(Integer)),
    bindparam("since", type_=postgresql.ARRAY(postgresql.TIMESTAMP(timezone=True))),
)


def record_recycling(session: Session, found: Sequence[Candidate], now: datetime) -> None:
    """Add an owner-history row ("recycle", rule id, days, threshold) for each candidate."""
    if not found:
        return
    first = found[0]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _HISTORY,
            {
                "trigger": first.trigger,
                "rule": first.rule_id,
                "pool": first.pool_id,
                "target": first.target_pool_id,
                "now": now,
                "by": f"rule:{first.rule_id}",
                "customers": [c.customer_id for c in found],
                "owners": [c.owner_id for c in found],
                "days": [c.idle_days for c in found],
                "limits": [c.threshold for c in found],
                "since": [c.since for c in found],
            },
        )
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
