"""Pool rules: recycle idle customers, warn their owners first, allocate pools weekly."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.customers.models import Pool
from crm.pool.allocation import allocate_pools_weekly
from crm.pool.recycling import Candidate, load_rules, recycle_due_customers, upcoming_recycling
from rules.reminders import Due, record_reminders


def recycle_pools(session: Session, now: datetime) -> int:
    """Recycle the customers due now and, from the same scan, warn owners of those due soon."""
    names: dict[int, str] = dict(session.execute(select(Pool.id, Pool.name)).all())
    recycled, warned = recycle_due_customers(
        session, now, warn=lambda soon: _warn(session, soon, now, names)
    )
    return recycled + warned


def warn_before_recycling(session: Session, now: datetime) -> int:
    """Only warn: each owner once, `warning_days` before a customer is due."""
    warned = 0
    names: dict[int, str] = dict(session.execute(select(Pool.id, Pool.name)).all())
    for setting in load_rules(session):
        if setting.policy.warning_days <= 0:
            continue
        for batch in upcoming_recycling(session, now, setting):
            warned += _warn(session, batch, now, names)
    return warned


def _warn(session: Session, soon: list[Candidate], now: datetime, names: dict[int, str]) -> int:
    """Record one warning per (customer, owner, due date); return how many were new."""
    due = [
        Due(
            c.customer_id,
            c.owner_id,
            c.due_at.date().isoformat(),
            {
                "customer": c.name,
                "pool": names.get(c.target_pool_id, ""),
                "due": c.due_at.date().isoformat(),
                "reason": c.trigger,
                "days": c.idle_days,
                "threshold": c.threshold,
                "rule": c.rule_id,
            },
        )
        for c in soon
    ]
    return len(record_reminders(session, "recycle_warning", due, now))


def allocate_pools(session: Session, now: datetime) -> int:
    """Hand out auto-allocated pools "random even" up to each rep's weekly quota."""
    return allocate_pools_weekly(session, now)
