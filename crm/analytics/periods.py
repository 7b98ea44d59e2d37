"""Calendar periods (year, quarter, month, week) and the SQL that buckets dates into them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import Session

from crm.errors import fields_error

PERIOD_MONTHS = {"year": 12, "quarter": 3, "month": 1}


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    """Return the first day of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def quarter_start(day: date) -> date:
    return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)


def week_start(day: date) -> date:
    """Return the Monday of the week `day` falls in."""
    return day - timedelta(days=day.weekday())


def check_period_start(period_kind: str, period_start: date) -> None:
    """Refuse a period start that is not the first day of a year, quarter or month."""
    if period_kind not in PERIOD_MONTHS:
        raise fields_error(period_kind=f"must be one of {', '.join(PERIOD_MONTHS)}")
    aligned = {
        "year": period_start.month == 1,
        "quarter": period_start.month in (1, 4, 7, 10),
        "month": True,
    }[period_kind]
    if period_start.day != 1 or not aligned:
        raise fields_error(period_start=f"{period_start} is not the first day of a {period_kind}")


def period_end(period_kind: str, period_start: date) -> date:
    """Return the first day after the period."""
    return add_months(period_start, PERIOD_MONTHS[period_kind])


def months_between(start: date, end: date) -> list[date]:
    """Return the first days of the months from `start`'s month up to, not including, `end`."""
    months, current = [], month_start(start)
    while current < end:
        months.append(current)
        current = add_months(current, 1)
    return months


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def month_key(session: Session, column: Any, *, moment: bool = False) -> Any:
    """Return SQL for 'YYYY-MM' of a date (or, with `moment`, a UTC datetime) column."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column) if moment else column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


def seconds_between(session: Session, start: Any, end: Any) -> Any:
    """Return SQL for the seconds from `start` to `end` (datetimes) on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def parse_month_key(key: str) -> date:
    return date(int(key[:4]), int(key[5:7]), 1)
