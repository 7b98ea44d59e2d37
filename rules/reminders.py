"""Reminder rules: due and overdue tasks, payments, follow-ups and approvals waiting too long.

Each rule selects what is due and not yet reminded (one query, in batches), records the
reminders with INSERT … ON CONFLICT DO NOTHING on their unique key, and notifies in-app only
the users whose rows it inserted. Two schedulers racing insert each key once: the loser's insert
waits for the winner's commit and then does nothing. E-mails follow from the outbox (rules.mail).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import String, Table, bindparam, cast, exists, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, aliased

from crm.activities.models import Activity
from crm.customers.models import Customer
from crm.directory.models import Notification, User
from crm.orders.models import Installment, SalesOrder
from crm.pool.bulk import as_json, insert_rows
from engine.db import UTCDateTime
from engine.models import HumanTask
from rules.messages import render
from rules.models import Reminder

BATCH = 1000
DUE_SOON = timedelta(hours=24)
PAYMENT_AHEAD_DAYS = 3
# Follow-up dates older than this when reminders start are not reminded of any more.
FOLLOWUP_LOOKBACK_DAYS = 7
APPROVAL_PROCESSES = ("quote_approval",)
APPROVAL_SLA = timedelta(hours=24)


@dataclass(frozen=True)
class Due:
    """One reminder to record: of what, to whom, for which due date, with the message's values."""

    record_id: int
    user_id: int
    step: str
    params: dict[str, Any]


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def record_reminders(session: Session, kind: str, due: list[Due], now: datetime) -> list[Due]:
    """Insert reminders not sent before and notify their users in-app; return those inserted."""
    if not due:
        return []
    inserted = _insert_new(session, kind, due, now)
    fresh = [d for d in due if (d.record_id, d.user_id, d.step) in inserted]
    if fresh:
        locales = dict(
            session.execute(
                select(User.id, User.locale).where(User.id.in_({d.user_id for d in fresh}))
            ).all()
        )
        insert_rows(
            session,
            _table(Notification),
            [
                {
                    "user_id": d.user_id,
                    "kind": kind,
                    "message": render(kind, locales.get(d.user_id), d.params)[1][:500],
                    "created_at": now,
                }
                for d in fresh
            ],
        )
    return fresh


def _table(model: Any) -> Table:
    return typing.cast(Table, model.__table__)


def _insert_new(
    session: Session, kind: str, due: list[Due], now: datetime
) -> set[tuple[int, int, str]]:
    """INSERT … ON CONFLICT DO NOTHING the reminders; return the keys this call inserted."""
    if session.get_bind().dialect.name == "postgresql":
        # One statement and one JSON parameter: thousands of rows per batch stay cheap.
        statement = text(
            """INSERT INTO reminder (kind, record_id, user_id, step, params, created_at,
                                     email_status, email_attempts)
               SELECT :kind, r.record_id, r.user_id, r.step, r.params, :now, 'pending', 0
               FROM jsonb_to_recordset(CAST(:rows AS jsonb))
                    AS r(record_id integer, user_id integer, step varchar, params jsonb)
               ON CONFLICT (kind, record_id, user_id, step) DO NOTHING
               RETURNING record_id, user_id, step"""
        ).bindparams(bindparam("now", type_=UTCDateTime()))
        values = {
            "kind": kind,
            "now": now,
            "rows": as_json(
                [
                    {
                        "record_id": d.record_id,
                        "user_id": d.user_id,
                        "step": d.step,
                        "params": d.params,
                    }
                    for d in due
                ]
            ),
        }
        return {(r, u, s) for r, u, s in session.execute(statement, values)}
    statement_sqlite = (
        sqlite.insert(_table(Reminder))
        .on_conflict_do_nothing(index_elements=["kind", "record_id", "user_id", "step"])
        .returning(Reminder.record_id, Reminder.user_id, Reminder.step)
    )
    rows = [
        {
            "kind": kind,
            "record_id": d.record_id,
            "user_id": d.user_id,
            "step": d.step,
            "params": d.params,
            "created_at": now,
            "email_status": "pending",
            "email_attempts": 0,
        }
        for d in due
    ]
    return {(r, u, s) for r, u, s in session.execute(statement_sqlite, rows)}


def _not_reminded(kind: str, record: Any, user: Any, step: Any = "") -> Any:
    return ~exists().where(
        Reminder.kind == kind,
        Reminder.record_id == record,
        Reminder.user_id == user,
        Reminder.step == step,
    )


def _run(session: Session, kind: str, query: Any, to_due: Any, now: datetime) -> int:
    """Page through `query` (already excluding reminded rows) and record each page."""
    sent = 0
    while True:
        due = [to_due(row) for row in session.execute(query.limit(BATCH)).all()]
        if not due:
            return sent
        fresh = record_reminders(session, kind, due, now)
        if not fresh:  # another scheduler holds these; it sends them
            return sent
        sent += len(fresh)


def _task_holder() -> Any:
    return User.username == func.coalesce(HumanTask.assignee, HumanTask.candidate_user)


def _task_query(kind: str, *conditions: Any) -> Any:
    return (
        select(HumanTask.id, User.id.label("user_id"), HumanTask.title, HumanTask.due_at)
        .join(User, _task_holder())
        .where(
            HumanTask.status == "open",
            *conditions,
            _not_reminded(kind, HumanTask.id, User.id),
        )
        .order_by(HumanTask.id)
    )


def _task_due(row: Any) -> Due:
    return Due(row.id, row.user_id, "", {"title": row.title, "due": _when(row.due_at)})


def remind_tasks(session: Session, now: datetime) -> int:
    """Remind task holders a day before a task is due, and once when it is overdue."""
    soon = _task_query("task_due_soon", HumanTask.due_at > now, HumanTask.due_at <= now + DUE_SOON)
    late = _task_query("task_overdue", HumanTask.due_at <= now)
    return _run(session, "task_due_soon", soon, _task_due, now) + _run(
        session, "task_overdue", late, _task_due, now
    )


def remind_payments(session: Session, now: datetime) -> int:
    """Remind order owners of installments due within the next three days."""
    today = now.date()
    kind = "installment_due"
    query = (
        select(
            Installment.id,
            Installment.seq,
            Installment.due_date,
            Installment.amount,
            Installment.paid_amount,
            SalesOrder.owner_id,
            SalesOrder.number,
            SalesOrder.currency,
            Customer.name.label("customer"),
        )
        .join(SalesOrder, SalesOrder.id == Installment.order_id)
        .join(Customer, Customer.id == SalesOrder.customer_id)
        .where(
            Installment.status == "open",
            Installment.due_date >= today,
            Installment.due_date <= today + timedelta(days=PAYMENT_AHEAD_DAYS),
            _not_reminded(
                kind, Installment.id, SalesOrder.owner_id, cast(Installment.due_date, String)
            ),
        )
        .order_by(Installment.id)
    )

    def to_due(row: Any) -> Due:
        return Due(
            row.id,
            row.owner_id,
            row.due_date.isoformat(),
            {
                "order": row.number,
                "seq": row.seq,
                "customer": row.customer,
                "amount": f"{row.amount - row.paid_amount:,.2f}",
                "currency": row.currency,
                "due": row.due_date.isoformat(),
            },
        )

    return _run(session, kind, query, to_due, now)


def remind_followups(session: Session, now: datetime) -> int:
    """Remind a customer's owner on the follow-up date of the customer's latest activity."""
    today = now.date()
    kind = "followup_due"
    later = aliased(Activity)
    query = (
        select(
            Activity.id,
            Activity.subject,
            Activity.next_followup_on,
            Customer.owner_id,
            Customer.name.label("customer"),
        )
        .join(Customer, Customer.id == Activity.customer_id)
        .where(
            Customer.owner_id.is_not(None),
            Activity.next_followup_on <= today,
            Activity.next_followup_on >= today - timedelta(days=FOLLOWUP_LOOKBACK_DAYS),
            # Followed up already: a later activity on the same customer.
            ~exists().where(
                later.customer_id == Activity.customer_id,
                later.happened_at > Activity.happened_at,
            ),
            _not_reminded(
                kind, Activity.id, Customer.owner_id, cast(Activity.next_followup_on, String)
            ),
        )
        .order_by(Activity.id)
    )

    def to_due(row: Any) -> Due:
        on: date = row.next_followup_on
        return Due(
            row.id,
            row.owner_id,
            on.isoformat(),
            {"customer": row.customer, "subject": row.subject, "due": on.isoformat()},
        )

    return _run(session, kind, query, to_due, now)


def remind_approvals(session: Session, now: datetime) -> int:
    """Remind approvers of quote approvals open longer than their 24-hour SLA."""
    kind = "approval_overdue"
    query = (
        select(HumanTask.id, User.id.label("user_id"), HumanTask.title, HumanTask.created_at)
        .join(User, _task_holder())
        .where(
            HumanTask.status == "open",
            HumanTask.process_id.in_(APPROVAL_PROCESSES),
            HumanTask.created_at <= now - APPROVAL_SLA,
            _not_reminded(kind, HumanTask.id, User.id),
        )
        .order_by(HumanTask.id)
    )

    def to_due(row: Any) -> Due:
        hours = int(APPROVAL_SLA.total_seconds() // 3600)
        return Due(
            row.id,
            row.user_id,
            "",
            {"title": row.title, "since": _when(row.created_at), "hours": hours},
        )

    return _run(session, kind, query, to_due, now)
