"""Run rules by name in their own transaction, and record each run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from crm.analytics.rollup_build import rebuild_funnel_rollups
from crm.analytics.snapshots import snapshot_forecasts
from engine.db import utcnow
from rules.mail import send_reminder_mail
from rules.models import RuleRun
from rules.pool import allocate_pools, recycle_pools
from rules.reminders import remind_approvals, remind_followups, remind_payments, remind_tasks
from rules.timers import fire_due_timers

Rule = Callable[[Session, datetime], int]
RULES: dict[str, Rule] = {
    "fire_timers": fire_due_timers,
    "task_reminders": remind_tasks,
    "approval_reminders": remind_approvals,
    "payment_reminders": remind_payments,
    "followup_reminders": remind_followups,
    "recycle_pools": recycle_pools,
    "allocate_pools": allocate_pools,
    "send_reminder_mail": send_reminder_mail,
    "snapshot_forecasts": snapshot_forecasts,
    "rebuild_funnel_rollup": rebuild_funnel_rollups,
}
# How often the scheduler runs each rule, in seconds.
INTERVALS: dict[str, int] = {
    "fire_timers": 5,
    "task_reminders": 300,
    "approval_reminders": 900,
    "payment_reminders": 3600,
    "followup_reminders": 3600,
    "recycle_pools": 3600,
    "allocate_pools": 3600,
    "send_reminder_mail": 60,
    "snapshot_forecasts": 3600,  # writes once per week (Monday, UTC); the rest are no-ops
    # Builds a pipeline's roll-up once per stage list, else refreshes deals changed behind the
    # services' back (PostgreSQL marks them); funnels read the history until then.
    "rebuild_funnel_rollup": 60,
}


def run_rule(make_session: sessionmaker[Session], name: str, now: datetime) -> RuleRun:
    """Run one rule at `now` and commit; a failure is rolled back and recorded, not raised."""
    rule = RULES[name]
    with make_session() as session:
        try:
            rows = rule(session, now)
            session.commit()
            error = None
        except Exception as exc:  # recorded for ops; the next tick tries again
            session.rollback()
            rows, error = 0, f"{type(exc).__name__}: {exc}"
    with make_session() as session:
        run = RuleRun(rule=name, started_at=now, finished_at=utcnow(), rows=rows, error=error)
        session.add(run)
        session.commit()
        session.refresh(run)
        session.expunge(run)
    return run
