"""The scheduler page: each rule with its interval, last run, next run and failures; the BPMN
timers that are due; and a "run now" button per rule for ops and admins (audited).

The scheduler itself is a separate process (`stagecraft scheduler`); this page reads what it
recorded in `rule_run` and never starts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm.directory.services import actor_for
from engine.actor import Actor
from engine.models import InstanceTimer, ProcessInstance
from engine.repair import RepairLog, record_repair, require_repairer
from rules.models import RuleRun
from rules.runner import INTERVALS, RULES, run_rule
from webapp.crm_pages.common import crm_user, request_now
from webapp.extensions import db
from webapp.ops import bp

FAILURES_SHOWN = 20
TIMERS_SHOWN = 100
# Timers due within this window are listed with the overdue ones.
DUE_SOON = timedelta(hours=1)


@dataclass(frozen=True)
class RuleStatus:
    """One rule as the page shows it."""

    name: str
    interval: timedelta
    last: RuleRun | None
    last_ok: RuleRun | None
    failures_24h: int
    next_run: datetime | None

    @property
    def duration(self) -> timedelta | None:
        if self.last is None or self.last.finished_at is None:
            return None
        return self.last.finished_at - self.last.started_at

    def overdue(self, now: datetime) -> bool:
        """Tell whether the rule missed two of its runs: is the scheduler running?"""
        return self.next_run is not None and now - self.next_run > self.interval * 2


def _latest_runs(session: Session, *, succeeded_only: bool = False) -> dict[str, RuleRun]:
    newest = select(RuleRun.rule, func.max(RuleRun.id).label("id")).group_by(RuleRun.rule)
    if succeeded_only:
        newest = newest.where(RuleRun.error.is_(None))
    ids = [row.id for row in session.execute(newest)]
    if not ids:
        return {}
    return {r.rule: r for r in session.scalars(select(RuleRun).where(RuleRun.id.in_(ids)))}


def rule_statuses(session: Session, now: datetime) -> list[RuleStatus]:
    """Return every rule with its last run, last successful run and next expected run."""
    last, last_ok = _latest_runs(session), _latest_runs(session, succeeded_only=True)
    failures = {
        rule: count
        for rule, count in session.execute(
            select(RuleRun.rule, func.count())
            .where(RuleRun.error.is_not(None), RuleRun.started_at >= now - timedelta(days=1))
            .group_by(RuleRun.rule)
        )
    }
    statuses = []
    for name in RULES:
        interval = timedelta(seconds=INTERVALS.get(name, 60))
        run = last.get(name)
        statuses.append(
            RuleStatus(
                name,
                interval,
                run,
                last_ok.get(name),
                failures.get(name, 0),
                run.started_at + interval if run is not None else None,
            )
        )
    return statuses


def recent_failures(session: Session, limit: int = FAILURES_SHOWN) -> list[RuleRun]:
    return list(
        session.scalars(
            select(RuleRun)
            .where(RuleRun.error.is_not(None))
            .order_by(RuleRun.id.desc())
            .limit(limit)
        )
    )


def due_timers(
    session: Session, now: datetime, limit: int = TIMERS_SHOWN
) -> tuple[list[tuple[InstanceTimer, ProcessInstance]], int]:
    """Return waiting timers due by `now` + DUE_SOON, oldest first, and the count overdue."""
    rows = session.execute(
        select(InstanceTimer, ProcessInstance)
        .join(ProcessInstance, ProcessInstance.id == InstanceTimer.instance_id)
        .where(InstanceTimer.status == "waiting", InstanceTimer.fire_at <= now + DUE_SOON)
        .order_by(InstanceTimer.fire_at)
        .limit(limit)
    )
    overdue = session.scalar(
        select(func.count())
        .select_from(InstanceTimer)
        .where(InstanceTimer.status == "waiting", InstanceTimer.fire_at <= now)
    )
    return [(timer, instance) for timer, instance in rows], overdue or 0


def manual_runs(session: Session, limit: int = 20) -> list[RepairLog]:
    return list(
        session.scalars(
            select(RepairLog)
            .where(RepairLog.action == "run_rule")
            .order_by(RepairLog.id.desc())
            .limit(limit)
        )
    )


def _actor() -> Actor:
    actor = actor_for(crm_user())
    require_repairer(actor)
    return actor


@bp.get("/scheduler", endpoint="scheduler_index")
@login_required
def scheduler_index() -> Any:
    _actor()
    now = request_now()
    timers, overdue = due_timers(db.session, now)
    return render_template(
        "ops/scheduler.html",
        now=now,
        rules=rule_statuses(db.session, now),
        failures=recent_failures(db.session),
        timers=timers,
        overdue=overdue,
        manual=manual_runs(db.session),
        fmt_interval=lambda interval: format_timedelta(interval, threshold=1.0),
    )


@bp.post("/scheduler/<rule>/run", endpoint="scheduler_run")
@login_required
def scheduler_run(rule: str) -> Any:
    actor = _actor()
    if rule not in RULES:
        abort(404)
    # The rule runs in its own transactions; let go of this request's (SQLite has one writer).
    db.session.rollback()
    now = request_now()
    run = run_rule(sessionmaker(bind=db.engine, expire_on_commit=False), rule, now)
    record_repair(
        db.session,
        actor,
        "run_rule",
        {"rule": rule},
        {"rule_run_id": run.id, "rows": run.rows, "error": run.error},
        {"rows": run.rows, "failed": int(run.error is not None)},
        now=now,
    )
    if run.error:
        flash(_("%(rule)s failed: %(error)s", rule=rule, error=run.error), "error")
    else:
        flash(_("%(rule)s ran: %(rows)s rows changed.", rule=rule, rows=run.rows))
    return redirect(url_for("ops.scheduler_index"), 303)
