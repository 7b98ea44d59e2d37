"""Activities with next follow-ups, and the daily work report (one per person per day)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from crm.activities.models import ACTIVITY_KINDS, Activity, DailyReport
from crm.customers.models import Customer
from crm.customers.services import get_customer
from crm.directory.models import User
from crm.directory.services import visible_owner_ids
from crm.errors import fields_error, msg
from crm.sales.models import Opportunity

MAX_TEXT = 10_000


@dataclass(frozen=True)
class ActivityRow:
    activity: Activity
    customer_name: str
    user_name: str


def log_activity(
    session: Session,
    user: User,
    customer_id: int,
    kind: str,
    subject: str,
    *,
    now: datetime,
    body: str | None = None,
    next_followup_on: date | None = None,
    opportunity_id: int | None = None,
) -> Activity:
    """Record a call, visit, e-mail or note on a customer the user may see."""
    customer = get_customer(session, user, customer_id)
    problems = {}
    if kind not in ACTIVITY_KINDS:
        problems["kind"] = msg("must be one of %(items)s", items=", ".join(ACTIVITY_KINDS))
    subject = (subject or "").strip()
    if not subject:
        problems["subject"] = "is required"
    elif len(subject) > 200:
        problems["subject"] = "is longer than 200 characters"
    if body is not None and len(body) > MAX_TEXT:
        problems["body"] = msg("is longer than %(MAX_TEXT)s characters", MAX_TEXT=MAX_TEXT)
    if next_followup_on is not None and next_followup_on < now.date():
        problems["next_followup_on"] = "is in the past"
    if opportunity_id is not None:
        deal = session.get(Opportunity, opportunity_id)
        if deal is None or deal.customer_id != customer.id:
            problems["opportunity_id"] = "is not a deal of this customer"
    if problems:
        raise fields_error(**problems)
    activity = Activity(
        customer_id=customer.id,
        opportunity_id=opportunity_id,
        user_id=user.id,
        kind=kind,
        subject=subject,
        body=(body or "").strip() or None,
        happened_at=now,
        next_followup_on=next_followup_on,
    )
    session.add(activity)
    if customer.last_activity_at is None or customer.last_activity_at < now:
        customer.last_activity_at = now
    session.flush()
    return activity


def _rows(session: Session, ids: Select[Any]) -> list[ActivityRow]:
    result = session.execute(
        select(Activity, Customer.name, User.display_name)
        .join(Customer, Customer.id == Activity.customer_id)
        .join(User, User.id == Activity.user_id)
        .where(Activity.id.in_(ids))
        .order_by(Activity.happened_at.desc(), Activity.id.desc())
    )
    return [ActivityRow(a, customer, who) for a, customer, who in result]


def customer_activities(
    session: Session, user: User, customer_id: int, *, limit: int = 200
) -> list[ActivityRow]:
    """Return a customer's timeline, newest first."""
    get_customer(session, user, customer_id)
    ids = (
        select(Activity.id)
        .where(Activity.customer_id == customer_id)
        .order_by(Activity.happened_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return _rows(session, ids)


def recent_activities(session: Session, user: User, *, limit: int = 50) -> list[ActivityRow]:
    """Return the user's own latest activities."""
    ids = (
        select(Activity.id)
        .where(Activity.user_id == user.id)
        .order_by(Activity.happened_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return _rows(session, ids)


def followups_due(session: Session, user: User, *, until: date) -> list[ActivityRow]:
    """Return follow-ups the user promised up to a day, on customers they still own."""
    ids = (
        select(Activity.id)
        .join(Customer, Customer.id == Activity.customer_id)
        .where(
            Activity.user_id == user.id,
            Activity.next_followup_on.is_not(None),
            Activity.next_followup_on <= until,
            Customer.owner_id == user.id,
        )
    )
    rows = _rows(session, ids)
    return sorted(rows, key=lambda r: (r.activity.next_followup_on, r.activity.id))


def customer_choices(session: Session, user: User, *, limit: int = 1000) -> list[Customer]:
    """Return the customers the user owns or manages, to pick one when logging an activity."""
    scope = visible_owner_ids(session, user)
    stmt = select(Customer).order_by(Customer.name_key, Customer.id).limit(limit)
    stmt = stmt.where(
        Customer.owner_id.is_not(None) if scope is None else Customer.owner_id.in_(scope)
    )
    return list(session.scalars(stmt))


def todays_report(session: Session, user: User, *, now: datetime) -> DailyReport | None:
    return session.scalar(
        select(DailyReport).where(DailyReport.user_id == user.id, DailyReport.day == now.date())
    )


def save_daily_report(
    session: Session, user: User, summary: str, plan: str | None, *, now: datetime
) -> DailyReport:
    """Write or rewrite the user's report for today; earlier days stay as they were."""
    summary = (summary or "").strip()
    plan = (plan or "").strip() or None
    problems = {}
    if not summary:
        problems["summary"] = "is required"
    elif len(summary) > MAX_TEXT:
        problems["summary"] = msg("is longer than %(MAX_TEXT)s characters", MAX_TEXT=MAX_TEXT)
    if plan is not None and len(plan) > MAX_TEXT:
        problems["plan"] = msg("is longer than %(MAX_TEXT)s characters", MAX_TEXT=MAX_TEXT)
    if problems:
        raise fields_error(**problems)
    report = todays_report(session, user, now=now)
    if report is None:
        report = DailyReport(user_id=user.id, day=now.date(), summary=summary, created_at=now)
        session.add(report)
    report.summary, report.plan = summary, plan
    session.flush()
    return report


def daily_reports(
    session: Session, user: User, *, day: date | None = None, limit: int = 60
) -> list[tuple[DailyReport, str]]:
    """Return reports the user may read (their own; managers their team's), newest first."""
    scope = visible_owner_ids(session, user)
    stmt = (
        select(DailyReport, User.display_name)
        .join(User, User.id == DailyReport.user_id)
        .order_by(DailyReport.day.desc(), User.display_name)
        .limit(limit)
    )
    if scope is not None:
        stmt = stmt.where(DailyReport.user_id.in_(scope))
    if day is not None:
        stmt = stmt.where(DailyReport.day == day)
    return [(report, name) for report, name in session.execute(stmt)]
