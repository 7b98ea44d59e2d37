"""The clock: APScheduler runs each rule at its interval, in its own transaction."""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.orm import Session, sessionmaker

from engine.db import utcnow
from rules.runner import INTERVALS, run_rule


def _tick(make_session: sessionmaker[Session], name: str) -> None:
    run_rule(make_session, name, utcnow())


def build_scheduler(make_session: sessionmaker[Session], *, blocking: bool) -> BaseScheduler:
    """Return a scheduler with every rule as an interval job (not started)."""
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone=UTC)
        if blocking
        else BackgroundScheduler(timezone=UTC, daemon=True)
    )
    for name, seconds in INTERVALS.items():
        scheduler.add_job(
            _tick,
            "interval",
            seconds=seconds,
            args=[make_session, name],
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    return scheduler
