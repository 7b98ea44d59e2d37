"""Reading runs and statements within the reader's scope.

Finance, admins and directors see every statement; managers and supervisors those of the reps
they manage; a rep sees only their own, and only once the run is issued.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.commission.models import CommissionPlan, CommissionRun, CommissionStatement
from crm.directory.models import User
from crm.directory.services import managed_user_ids
from crm.errors import NotFound, msg

SEE_ALL_ROLES = frozenset({"finance", "admin", "director"})


@dataclass(frozen=True)
class StatementRow:
    statement: CommissionStatement
    rep: User
    plan_name: str


@dataclass(frozen=True)
class RunSummary:
    run: CommissionRun
    statements: list[StatementRow]

    @property
    def total(self) -> Decimal:
        return sum((s.statement.total for s in self.statements), Decimal(0))


def statement_scope(session: Session, user: User) -> set[int] | None:
    """Return whose statements the user may read (None: everyone's)."""
    if user.roles & SEE_ALL_ROLES:
        return None
    if user.roles & {"manager", "supervisor"}:
        return managed_user_ids(session, user)
    return {user.id}


def _visible(session: Session, user: User, run: CommissionRun) -> list[StatementRow]:
    scope = statement_scope(session, user)
    own_only = scope == {user.id}
    rows = []
    for statement in run.statements:
        if scope is not None and statement.user_id not in scope:
            continue
        if own_only and statement.issued_at is None:
            continue
        rep = session.get(User, statement.user_id)
        plan = session.get(CommissionPlan, statement.plan_id)
        assert rep is not None
        assert plan is not None
        rows.append(StatementRow(statement, rep, plan.name))
    return rows


def list_runs(session: Session, user: User) -> list[RunSummary]:
    """Return every run, newest month first, with the statements the user may see."""
    runs = session.scalars(select(CommissionRun).order_by(CommissionRun.period_start.desc()))
    summaries = [RunSummary(run, _visible(session, user, run)) for run in runs]
    if statement_scope(session, user) is None:
        return summaries
    return [s for s in summaries if s.statements]


def run_summary(session: Session, user: User, run_id: int) -> RunSummary:
    run = session.get(CommissionRun, run_id)
    summary = RunSummary(run, _visible(session, user, run)) if run is not None else None
    if summary is None or (statement_scope(session, user) is not None and not summary.statements):
        raise NotFound(msg("commission run %(id)s does not exist", id=run_id))
    return summary


def get_statement(session: Session, user: User, statement_id: int) -> StatementRow:
    """Return one statement with its lines; another rep's is 'not found'."""
    statement = session.get(CommissionStatement, statement_id)
    run = session.get(CommissionRun, statement.run_id) if statement is not None else None
    rows = _visible(session, user, run) if run is not None else []
    for row in rows:
        if row.statement.id == statement_id:
            return row
    raise NotFound(msg("commission statement %(id)s does not exist", id=statement_id))
