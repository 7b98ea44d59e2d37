"""The month-end run: start it, calculate statements, take adjustments, return, issue."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.commission.models import (
    CommissionLine,
    CommissionRun,
    CommissionStatement,
)
from crm.commission.plans import coefficient_for, plan_for, plan_tiers
from crm.commission.rules import (
    Contribution,
    attainment_pct,
    cap_correction,
    commission_lines,
    money,
)
from crm.directory.models import User, UserRole
from crm.directory.services import actor_for, managed_user_ids, notify, user_by_username
from crm.errors import Conflict, Forbidden, NotFound, fields_error, msg
from crm.orders.models import Receipt, SalesOrder
from crm.sales.models import Opportunity
from crm.targets.services import attainment
from engine.instances import start_instance

PROCESS_ID = "commission_run"
RUN_STARTERS = frozenset({"finance", "admin"})
ADJUSTERS_OF_ANYONE = frozenset({"admin", "director"})


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_target(
    session: Session, user_id: int, metric: str, month: date, *, now: datetime
) -> Decimal | None:
    """Return the rep's monthly target for the metric (cash or sales), if one is set."""
    target, _actual, _ratio = attainment(
        session,
        scope_kind="user",
        scope_id=user_id,
        metric=metric,
        period_start=month,
        period_kind="month",
        now=now,
    )
    return target


def contributions_of(session: Session, user_id: int, basis: str, month: date) -> list[Contribution]:
    """Return the receipts collected (cash) or deals won (sales) by the rep in the month."""
    if basis == "cash":
        rows = session.execute(
            select(Receipt, SalesOrder.number)
            .join(SalesOrder, SalesOrder.id == Receipt.order_id)
            .where(
                SalesOrder.owner_id == user_id,
                Receipt.received_on >= month,
                Receipt.received_on < next_month(month),
            )
        )
        return [
            Contribution(
                "receipt",
                receipt.id,
                f"Receipt {receipt.reference or receipt.id} · order {number}",
                receipt.received_on,
                receipt.amount,
            )
            for receipt, number in rows
        ]
    start = datetime.combine(month, time(), UTC)
    end = datetime.combine(next_month(month), time(), UTC)
    deals = session.scalars(
        select(Opportunity).where(
            Opportunity.owner_id == user_id,
            Opportunity.status == "won",
            Opportunity.closed_at >= start,
            Opportunity.closed_at < end,
        )
    )
    return [
        Contribution("deal", d.id, f"Deal {d.name}", _day(d.closed_at), d.amount) for d in deals
    ]


def _day(moment: datetime | None) -> date:
    assert moment is not None  # won deals always have a close time
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).date()


def start_run(session: Session, user: User, month: date, *, now: datetime) -> CommissionRun:
    """Open the month's run and start its `commission_run` process (finance or admin)."""
    if not user.roles & RUN_STARTERS:
        raise Forbidden("only finance and admins start a commission run")
    month = month.replace(day=1)
    if next_month(month) > now.date():
        raise fields_error(month="the month has not ended yet")
    if session.scalar(select(CommissionRun.id).where(CommissionRun.period_start == month)):
        raise Conflict(msg("the run for %(month)s exists already", month=f"{month:%Y-%m}"))
    run = CommissionRun(
        period_start=month, status="calculating", started_by=user.username, started_at=now
    )
    session.add(run)
    session.flush()
    start_instance(
        session,
        actor_for(user),
        PROCESS_ID,
        now=now,
        business_key=f"commission:{month:%Y-%m}",
        subject=("commission_run", run.id),
        data={"run_id": run.id, "period": f"{month:%Y-%m}"},
    )
    return run


def get_run_row(session: Session, run_id: int) -> CommissionRun:
    run = session.get(CommissionRun, run_id)
    if run is None:
        raise NotFound(msg("commission run %(id)s does not exist", id=run_id))
    return run


def _reps(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .join(UserRole)
            .where(UserRole.role == "rep", User.active.is_(True))
            .order_by(User.id)
        )
    )


def calculate_run(session: Session, run_id: int, *, now: datetime) -> dict[str, Any]:
    """(Re)compute every rep's statement; manual adjustments survive a recalculation."""
    run = get_run_row(session, run_id)
    if run.status == "issued":
        raise Conflict(
            msg("the run for %(month)s is issued already", month=f"{run.period_start:%Y-%m}")
        )
    kept = {s.user_id: [ln for ln in s.lines if ln.kind == "adjustment"] for s in run.statements}
    run.statements.clear()
    session.flush()
    for rep in _reps(session):
        plan = plan_for(session, rep, run.period_start)
        if plan is None:
            continue
        statement = _statement(session, run, rep, plan, now)
        for line in kept.get(rep.id, []):
            statement.lines.append(_copy(line))
        statement.total = sum((ln.amount for ln in statement.lines), Decimal(0))
        run.statements.append(statement)
    run.status, run.calculated_at = "in_review", now
    session.flush()
    total = sum((s.total for s in run.statements), Decimal(0))
    return {"statements": len(run.statements), "total": str(total)}


def _statement(
    session: Session, run: CommissionRun, rep: User, plan: Any, now: datetime
) -> CommissionStatement:
    month = run.period_start
    target = month_target(session, rep.id, plan.basis, month, now=now)
    row = coefficient_for(session, rep.id, month)
    coefficient = row.coefficient if row is not None else Decimal("1.00")
    contributions = contributions_of(session, rep.id, plan.basis, month)
    achieved = sum((c.amount for c in contributions), Decimal(0))
    figures = commission_lines(
        contributions,
        target=target,
        tiers=plan_tiers(plan),
        rate=plan.base_rate,
        coefficient=coefficient,
    )
    lines = [
        CommissionLine(
            kind=f.contribution.kind,
            source_id=f.contribution.source_id,
            label=f.contribution.label[:200],
            occurred_on=f.contribution.occurred_on,
            base=f.base,
            rate=plan.base_rate,
            tier=f.tier,
            multiplier=f.multiplier,
            coefficient=coefficient,
            amount=f.amount,
            created_at=now,
        )
        for f in figures
    ]
    correction = cap_correction(sum((ln.amount for ln in lines), Decimal(0)), plan.cap)
    if correction:
        lines.append(_line("cap", f"Cap {money(plan.cap)}", correction, now, by=None, comment=None))
    return CommissionStatement(
        user_id=rep.id,
        plan_id=plan.id,
        basis=plan.basis,
        target=target,
        achieved=achieved,
        attainment_pct=attainment_pct(achieved, target),
        coefficient=coefficient,
        total=Decimal(0),
        currency=plan.currency,
        lines=lines,
    )


def _line(
    kind: str, label: str, amount: Decimal, now: datetime, *, by: str | None, comment: str | None
) -> CommissionLine:
    return CommissionLine(
        kind=kind,
        source_id=None,
        label=label,
        occurred_on=None,
        base=Decimal("0.00"),
        rate=Decimal("0.0000"),
        tier="",
        multiplier=Decimal("0.000"),
        coefficient=Decimal("0.00"),
        amount=amount,
        comment=comment,
        created_by=by,
        created_at=now,
    )


def _copy(line: CommissionLine) -> CommissionLine:
    return _line(
        line.kind,
        line.label,
        line.amount,
        line.created_at,
        by=line.created_by,
        comment=line.comment,
    )


def _adjustment_problems(
    session: Session, run: CommissionRun, by: User, items: list[Any]
) -> tuple[list[str], list[tuple[CommissionStatement, Decimal, str]]]:
    statements = {s.user_id: s for s in run.statements}
    scope = None if by.roles & ADJUSTERS_OF_ANYONE else managed_user_ids(session, by)
    problems, accepted = [], []
    for number, item in enumerate(items, start=1):
        item = item if isinstance(item, dict) else {}
        name = str(item.get("rep") or "").strip()
        comment = str(item.get("comment") or "").strip()
        try:
            amount = Decimal(str(item.get("amount") or "").strip())
        except InvalidOperation:
            amount = Decimal("NaN")
        rep = session.scalar(select(User).where(User.username == name)) if name else None
        if rep is None or rep.id not in statements:
            problems.append(
                msg(
                    "adjustment %(number)s: '%(rep)s' has no statement in this run",
                    number=number,
                    rep=name,
                )
            )
        elif scope is not None and rep.id not in scope:
            problems.append(
                msg("adjustment %(number)s: you do not manage %(rep)s", number=number, rep=name)
            )
        elif not amount.is_finite() or amount == 0 or money(amount) != amount:
            problems.append(
                msg(
                    "adjustment %(number)s: the amount must be a non-zero sum in cents",
                    number=number,
                )
            )
        elif not comment:
            problems.append(msg("adjustment %(number)s: a comment is required", number=number))
        else:
            accepted.append((statements[rep.id], amount, comment))
    return problems, accepted


def adjust_run(
    session: Session, run_id: int, items: list[Any], *, by: str | None, now: datetime
) -> dict[str, Any]:
    """Add the reviewer's adjustment lines; any bad item refuses them all (with the reasons)."""
    run = get_run_row(session, run_id)
    if run.status != "in_review":
        raise Conflict(
            msg("the run for %(month)s is not in review", month=f"{run.period_start:%Y-%m}")
        )
    reviewer = user_by_username(session, by or "")
    problems, accepted = _adjustment_problems(session, run, reviewer, items or [])
    if problems:
        return {"problems": problems}
    for statement, amount, comment in accepted:
        statement.lines.append(
            _line("adjustment", "Adjustment", amount, now, by=reviewer.username, comment=comment)
        )
        statement.total += amount
    run.status, run.comment = "awaiting_finance", None
    session.flush()
    return {"problems": [], "adjusted": len(accepted)}


def return_run(session: Session, run_id: int, comment: str) -> dict[str, Any]:
    """Send the run back to review with finance's reason."""
    run = get_run_row(session, run_id)
    run.status, run.comment = "in_review", comment
    session.flush()
    return {}


def issue_statements(
    session: Session, run_id: int, *, by: str | None, now: datetime
) -> dict[str, Any]:
    """Issue the approved run: every statement is final and its rep is told."""
    run = get_run_row(session, run_id)
    if run.status != "awaiting_finance":
        raise Conflict(
            msg(
                "the run for %(month)s is not approved for issue",
                month=f"{run.period_start:%Y-%m}",
            )
        )
    run.status, run.approved_by, run.issued_at = "issued", by, now
    for statement in run.statements:
        statement.issued_at = now
        notify(
            session,
            statement.user_id,
            "commission_statement",
            f"Your commission statement for {run.period_start:%Y-%m}: "
            f"{statement.total} {statement.currency}",
            now=now,
            link=f"/analytics/commission/statements/{statement.id}",
        )
    session.flush()
    return {"issued": len(run.statements)}
