"""The inbox list: a user's tasks by tab, filtered, sorted and paged, with tab counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import User
from crm.directory.services import visible_owner_ids
from crm.inbox.tabs import (
    ORDER_CHILDREN,
    OWNED_WITH_CUSTOMER,
    TABS,
    TabStatements,
    listed_by_ids,
    owned_by,
    page_statement,
    tab_params,
    tab_statements,
    task_stage,
    unfiltered_page,
)
from crm.leads.models import Lead
from crm.orders.models import SalesOrder
from engine.models import HumanTask, ProcessDefinition

__all__ = ["ORDER_CHILDREN", "OWNED_WITH_CUSTOMER", "TABS", "owned_by"]
PAGE_SIZE = 50
DUE_WINDOWS = ("overdue", "today", "week")
SORTS = ("due", "created", "title")


@dataclass(frozen=True)
class InboxQuery:
    tab: str = "mine"
    process_id: str | None = None
    stage: str | None = None
    customer: str | None = None
    due: str | None = None
    sort: str = "due"
    page: int = 1

    def as_params(self, **changes: Any) -> dict[str, Any]:
        """Return the query as URL parameters, leaving out defaults."""
        query = replace(self, **changes)
        params = {
            "tab": query.tab,
            "process": query.process_id,
            "stage": query.stage,
            "customer": query.customer,
            "due": query.due,
            "sort": query.sort if query.sort != "due" else None,
            "page": query.page if query.page != 1 else None,
        }
        return {k: v for k, v in params.items() if v not in (None, "")}


def parse_inbox_query(params: Mapping[str, str]) -> InboxQuery:
    """Read an inbox query from URL parameters; unknown values fall back to the defaults."""

    def text(name: str) -> str | None:
        value = (params.get(name) or "").strip()[:200]
        return value or None

    page = params.get("page") or "1"
    tab, sort = params.get("tab") or "mine", params.get("sort") or "due"
    return InboxQuery(
        tab=tab if tab in TABS else "mine",
        process_id=text("process"),
        stage=text("stage"),
        customer=text("customer"),
        due=params.get("due") if params.get("due") in DUE_WINDOWS else None,
        sort=sort if sort in SORTS else "due",
        page=min(int(page), 100_000) if page.isdigit() and int(page) > 0 else 1,
    )


@dataclass(frozen=True)
class InboxRow:
    task: Any  # a row of crm.inbox.tabs.LISTED_COLUMNS, read like a HumanTask
    customer: str | None
    overdue: bool
    due_today: bool


@dataclass(frozen=True)
class InboxPage:
    query: InboxQuery
    rows: list[InboxRow]
    total: int
    pages: int
    counts: dict[str, int]
    processes: dict[str, str]  # process id -> name, for the filter and the rows
    stages: list[str]
    people: dict[str, str]  # username -> display name of everyone the rows name
    scope: set[int] | None = None  # whose records the user sees (None: everyone's)


def _about(kind: str, ids: Any) -> ColumnElement[bool]:
    return and_(HumanTask.subject_type == kind, HumanTask.subject_id.in_(ids))


def _about_customer(text: str) -> ColumnElement[bool]:
    """Tasks about a customer (or lead) whose name contains `text`."""
    customers = select(Customer.id).where(Customer.name.icontains(text, autoescape=True))
    leads = select(Lead.id).where(
        or_(
            Lead.name.icontains(text, autoescape=True),
            Lead.company.icontains(text, autoescape=True),
            Lead.customer_id.in_(customers),
        )
    )
    clauses = [_about("lead", leads), _about("customer", customers)]
    clauses += [
        _about(kind, select(model.id).where(model.customer_id.in_(customers)))
        for kind, model in OWNED_WITH_CUSTOMER
    ]
    clauses += [
        _about(
            kind,
            select(model.id)
            .join(SalesOrder, SalesOrder.id == model.order_id)
            .where(SalesOrder.customer_id.in_(customers)),
        )
        for kind, model in ORDER_CHILDREN
    ]
    return or_(*clauses)


def _day_start(now: datetime, tz: tzinfo) -> datetime:
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(), tzinfo=tz).astimezone(UTC)


def _due_condition(window: str, now: datetime, tz: tzinfo) -> ColumnElement[bool]:
    if window == "overdue":
        return HumanTask.due_at < now
    start = _day_start(now, tz)
    if window == "week":
        start -= timedelta(days=now.astimezone(tz).weekday())
        return and_(HumanTask.due_at >= start, HumanTask.due_at < start + timedelta(days=7))
    return and_(HumanTask.due_at >= start, HumanTask.due_at < start + timedelta(days=1))


def inbox_page(
    session: Session, user: User, query: InboxQuery, *, now: datetime, tz: tzinfo = UTC
) -> InboxPage:
    """Return one page of the user's inbox with the count of every tab."""
    _serial_plans(session)
    scope = visible_owner_ids(session, user)
    shape, params = tab_params(user, scope)
    statements = tab_statements(shape)
    tab = statements.tabs[query.tab]
    filters = _filters(query, now, tz)
    # A rep's or a team's "On my customers" by due date: counted, paged and its choices listed
    # from one scan of its tasks (a few thousand at most), not three.
    at_once = query.tab == "customers" and scope is not None and not filters and query.sort == "due"
    if at_once:
        counts = _counts(session, statements.counts_but_records, params)
        count, ids, choices = _records_at_once(session, statements, params, query.page)
        counts["customers"] = count
    else:
        counts = _counts(session, statements.counts, params)
    if not filters:  # the tab's count is the total
        total = counts[query.tab]
    else:
        condition = select(func.count()).select_from(HumanTask).where(tab.condition, *filters)
        total = session.scalar(condition, params) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    asked = query.page
    query = replace(query, page=min(query.page, pages))
    if at_once:
        if query.page != asked:  # asked past the last page: show the last one
            _, ids, _ = _records_at_once(session, statements, params, query.page)
        tasks = session.execute(listed_by_ids(), {"ids": ids}).all() if ids else []
    else:
        page_of = (
            page_statement(tab, query.sort, filters)
            if filters
            else unfiltered_page(shape, query.tab, query.sort)
        )
        paging = {
            "size": PAGE_SIZE,
            "skip": (query.page - 1) * PAGE_SIZE,
            "head": query.page * PAGE_SIZE,
        }
        tasks = session.execute(page_of, {**params, **paging}).all()
        # The filter's choices: the processes and stages of every task in the tab, in one pass.
        choices = {(p, s) for p, s in session.execute(statements.choices[query.tab], params)}
    names, processes, people = _page_names(
        session,
        tasks,
        {process_id for process_id, _ in choices} | {t.process_id for t in tasks},
        {u for t in tasks for u in (t.assignee, t.candidate_user, t.completed_by)},
    )
    today_end = _day_start(now, tz) + timedelta(days=1)
    rows = [
        InboxRow(
            task=t,
            customer=names.get((t.subject_type or "", t.subject_id or 0)),
            overdue=t.status == "open" and t.due_at is not None and t.due_at < now,
            due_today=t.status == "open" and t.due_at is not None and now <= t.due_at < today_end,
        )
        for t in tasks
    ]
    return InboxPage(
        query=query,
        rows=rows,
        total=total,
        pages=pages,
        counts=counts,
        processes=processes,
        stages=sorted({s for _, s in choices if s}),
        people=people,
        scope=scope,
    )


def _filters(query: InboxQuery, now: datetime, tz: tzinfo) -> list[Any]:
    filters: list[Any] = []
    if query.process_id:
        filters.append(HumanTask.process_id == query.process_id)
    if query.stage:
        filters.append(task_stage() == query.stage)
    if query.customer:
        filters.append(_about_customer(query.customer))
    if query.due:
        filters.append(_due_condition(query.due, now, tz))
    return filters


def _records_at_once(
    session: Session, statements: TabStatements, params: dict[str, Any], page: int
) -> tuple[int, list[int], set[tuple[str, str | None]]]:
    """Return the count, the ids on `page` and the choices of "On my customers", in one scan."""
    paging = {"size": PAGE_SIZE, "skip": (page - 1) * PAGE_SIZE}
    count, ids, choices = 0, [], set()
    for part, number, process_id, stage in session.execute(
        statements.records_at_once, {**params, **paging}
    ):
        if part == "count":
            count = number
        elif part == "page":
            ids.append(number)
        else:
            choices.add((process_id, stage))
    return count, ids, choices


def _counts(session: Session, statement: Any, params: dict[str, Any]) -> dict[str, int]:
    row = session.execute(statement, params).one()
    return {name: count or 0 for name, count in zip(TABS, row, strict=True)}


def _serial_plans(session: Session) -> None:
    """Keep PostgreSQL from starting parallel workers for the rest of this transaction.

    The inbox's statements read a few thousand index entries at most. Parallel plans were chosen
    for the counts on records of a team, and starting the workers took longer than the scans
    (see docs/inbox-performance.md).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def display_names(session: Session, usernames: Iterable[str | None]) -> dict[str, str]:
    """Return the display name of each username (unknown ones are left out)."""
    names = sorted({u for u in usernames if u})
    if not names:
        return {}
    rows = session.execute(select(User.username, User.display_name).where(User.username.in_(names)))
    return {username: display for username, display in rows}


def process_names(session: Session, process_ids: Iterable[str]) -> dict[str, str]:
    """Return the name of each process id, from its newest deployed version."""
    ids = sorted(set(process_ids))
    names = dict.fromkeys(ids, "")
    rows = session.execute(
        select(ProcessDefinition.process_id, ProcessDefinition.name)
        .where(ProcessDefinition.process_id.in_(ids))
        .order_by(ProcessDefinition.version)
    )
    for process_id, name in rows:
        names[process_id] = name or process_id
    return {k: v or k for k, v in names.items()}


def _page_names(
    session: Session, tasks: Iterable[Any], process_ids: set[str], usernames: set[str | None]
) -> tuple[dict[tuple[str, int], str], dict[str, str], dict[str, str]]:
    """Return what a page names, read in one statement.

    The customer (or lead) of each task (`_subject_name_parts`), the name of each process
    (`process_names`) and the display name of each username (`display_names`).
    """
    ids, names = sorted(process_ids), sorted({u for u in usernames if u})
    parts = [
        select(
            literal("process").label("kind"),
            ProcessDefinition.process_id.label("key"),
            ProcessDefinition.name.label("name"),
            ProcessDefinition.version.label("version"),
        ).where(ProcessDefinition.process_id.in_(ids)),
        select(literal("user"), User.username, User.display_name, literal(0)).where(
            User.username.in_(names)
        ),
        *_subject_name_parts(tasks),
    ]
    subjects: dict[tuple[str, int], str] = {}
    found = dict.fromkeys(ids, "")
    display: dict[str, str] = {}
    # Processes by version: the name of the newest version wins, as in `process_names`.
    rows = sorted(session.execute(union_all(*parts)), key=lambda row: row[3])
    for kind, key, name, _version in rows:
        if kind == "process":
            found[key] = name or key
        elif kind == "user":
            display[key] = name
        else:
            subjects[(kind, int(key))] = name
    return subjects, {k: v or k for k, v in found.items()}, display


def _names_of(kind: str, ids: set[int]) -> Any:
    """Select (record id, customer or lead name) of the records of one kind."""
    if kind == "lead":
        return (
            select(Lead.id, func.coalesce(Customer.name, Lead.company, Lead.name))
            .outerjoin(Customer, Customer.id == Lead.customer_id)
            .where(Lead.id.in_(ids))
        )
    if kind == "customer":
        return select(Customer.id, Customer.name).where(Customer.id.in_(ids))
    direct: dict[str, Any] = dict(OWNED_WITH_CUSTOMER)
    if kind in direct:
        model = direct[kind]
        return (
            select(model.id, Customer.name)
            .join(Customer, Customer.id == model.customer_id)
            .where(model.id.in_(ids))
        )
    model = dict(ORDER_CHILDREN)[kind]
    return (
        select(model.id, Customer.name)
        .join(SalesOrder, SalesOrder.id == model.order_id)
        .join(Customer, Customer.id == SalesOrder.customer_id)
        .where(model.id.in_(ids))
    )


_NAMED_KINDS = frozenset(
    {"lead", "customer", *(k for k, _ in OWNED_WITH_CUSTOMER), *(k for k, _ in ORDER_CHILDREN)}
)


def _subject_name_parts(tasks: Iterable[Any]) -> list[Any]:
    """Select (kind, record id as text, customer or lead name, 0) per kind of record named."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for task in tasks:
        if task.subject_type in _NAMED_KINDS and task.subject_id is not None:
            wanted[task.subject_type].add(task.subject_id)
    parts = []
    for kind, ids in sorted(wanted.items()):
        names = _names_of(kind, ids)
        record_id, name = names.selected_columns
        parts.append(
            names.with_only_columns(literal(kind), cast(record_id, String), name, literal(0))
        )
    return parts
