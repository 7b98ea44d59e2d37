"""The rule that fires due BPMN timers, once each, however many schedulers run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.instances import fire_instance_timers
from engine.models import Incident, InstanceTimer, ProcessInstance

MAX_ATTEMPTS = 3
BATCH = 200


def fire_due_timers(session: Session, now: datetime) -> int:
    """Fire the timers due at `now`; return how many instances moved.

    Instance rows are taken with FOR UPDATE SKIP LOCKED on PostgreSQL, so two schedulers never
    fire the same instance; a timer that keeps failing gets an incident after three attempts.
    """
    due = session.scalars(
        select(ProcessInstance.id)
        .where(
            ProcessInstance.next_timer_at <= now, ProcessInstance.status.in_(("running", "waiting"))
        )
        .order_by(ProcessInstance.next_timer_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    fired = 0
    for instance_id in due:
        try:
            with session.begin_nested():
                fire_instance_timers(session, instance_id, now=now)
            fired += 1
        except Exception as exc:  # one broken instance must not stop the others
            _count_failure(session, instance_id, now, exc)
    return fired


def _count_failure(session: Session, instance_id: int, now: datetime, exc: Exception) -> None:
    session.execute(
        update(InstanceTimer)
        .where(
            InstanceTimer.instance_id == instance_id,
            InstanceTimer.status == "waiting",
            InstanceTimer.fire_at <= now,
        )
        .values(attempts=InstanceTimer.attempts + 1, last_error=str(exc)[:2000])
    )
    attempts = (
        session.scalar(
            select(InstanceTimer.attempts)
            .where(InstanceTimer.instance_id == instance_id, InstanceTimer.status == "waiting")
            .order_by(InstanceTimer.attempts.desc())
            .limit(1)
        )
        or 0
    )
    if attempts >= MAX_ATTEMPTS:
        instance = session.get(ProcessInstance, instance_id)
        if instance is not None:
            instance.status = "error"
            session.add(
                Incident(
                    instance_id=instance_id,
                    error_type=type(exc).__name__[:80],
                    status="open",
                    message=f"timer failed {attempts} times: {exc}",
                    created_at=now,
                )
            )
