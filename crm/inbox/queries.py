"""The inbox list: a user's tasks by tab, filtered, sorted and paged, with tab counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, union, union_all
from sqlalchemy.orm import Session

from crm.customers.models import Customer
from crm.directory.models import User
from crm.directory.services import actor_for, visible_owner_ids
from crm.leads.models import Lead
from crm.orders.models import Installment, InvoiceRequest, SalesOrder
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.models import HumanTask, ProcessDefinition
from engine.tasks import offered_task_ids, offered_ways

PAGE_SIZE = 50
TABS = ("mine", "open", "customers", "completed")
DUE_WINDOWS = ("overdue", "today", "week")
SORTS = ("due", "created", "title")
# Records a task can be about whose own row names customer and owner.
OWNED_WITH_CUSTOMER: tuple[tuple[str, Any], ...] = (
    ("opportunity", Opportunity),
    ("quote", Quote),
    ("order", SalesOrder),
)
ORDER_CHILDREN: tuple[tuple[str, Any], ...] = (
    ("installment", Installment),
    ("invoice_request", InvoiceRequest),
)


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
    task: HumanTask
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


def owned_by(column: Any, scope: set[int] | None) -> ColumnElement[bool]:
    return column.is_not(None) if scope is None else column.in_(sorted(scope))


def _about(kind: str, ids: Any) -> ColumnElement[bool]:
    return and_(HumanTask.subject_type == kind, HumanTask.subject_id.in_(ids))


def _open_tasks_on_visible_records(scope: set[int] | None, username: str) -> list[Any]:
    """Select the ids of open tasks not held by `username` whose record's owner is in `scope`.

    `scope` None: any owner. One SELECT per kind of record (kinds do not overlap): each starts
    from the owner's records and finds their tasks through the subject index, where an OR of
    `IN (subquery)` tests would read every open task.
    """

    def tasks_about(kind: str, model: Any) -> Any:
        return select(HumanTask.id).join(
            model, and_(HumanTask.subject_type == kind, HumanTask.subject_id == model.id)
        )

    is_open = and_(
        HumanTask.status == "open",
        or_(HumanTask.assignee.is_(None), HumanTask.assignee != username),
    )
    parts = [tasks_about("lead", Lead).where(is_open, owned_by(Lead.owner_id, scope))]
    parts += [
        tasks_about(kind, model).where(is_open, owned_by(model.owner_id, scope))
        for kind, model in OWNED_WITH_CUSTOMER
    ]
    parts += [
        tasks_about(kind, model)
        .join(SalesOrder, SalesOrder.id == model.order_id)
        .where(is_open, owned_by(SalesOrder.owner_id, scope))
        for kind, model in ORDER_CHILDREN
    ]
    parts += [
        tasks_about("customer", Customer).where(is_open, owned_by(Customer.owner_id, scope)),
        tasks_about("user", User).where(is_open, owned_by(User.id, scope)),
    ]
    return parts


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


@dataclass(frozen=True)
class _Tab:
    condition: ColumnElement[bool]
    # The tab's task ids as index-only scans, where counting them is cheaper than the condition.
    ids: Any = None
    # SELECTs of task ids whose union is the tab, each served by an index that carries the
    # due date, process and properties: pages by due date and filter choices come from them.
    ways: tuple[Any, ...] = ()


def _tabs(session: Session, user: User) -> dict[str, _Tab]:
    """Return what selects the tasks of every tab."""
    actor = actor_for(user)
    is_open = HumanTask.status == "open"
    offered = [HumanTask.candidate_user == actor.username]
    if actor.roles:
        offered.append(HumanTask.candidate_role.in_(sorted(actor.roles)))
    if actor.teams:
        offered.append(HumanTask.candidate_team.in_(sorted(actor.teams)))
    on_records = _open_tasks_on_visible_records(visible_owner_ids(session, user), actor.username)
    return {
        "mine": _Tab(and_(is_open, HumanTask.assignee == actor.username)),
        "open": _Tab(
            and_(is_open, HumanTask.assignee.is_(None), or_(*offered)),
            offered_task_ids(actor),
            tuple(select(HumanTask.id).where(way) for way in offered_ways(actor)),
        ),
        "customers": _Tab(
            and_(
                is_open,
                or_(HumanTask.assignee.is_(None), HumanTask.assignee != actor.username),
                HumanTask.id.in_(union_all(*on_records)),
            ),
            union_all(*on_records),
            tuple(on_records),
        ),
        "completed": _Tab(
            and_(HumanTask.status == "completed", HumanTask.completed_by == actor.username)
        ),
    }


def _counts(session: Session, tabs: dict[str, _Tab]) -> dict[str, int]:
    """Count every tab in one statement (one subquery each); "open" and "customers" by id."""
    counts = [
        select(func.count()).select_from(tab.ids.subquery())
        if tab.ids is not None
        else select(func.count()).select_from(HumanTask).where(tab.condition)
        for tab in tabs.values()
    ]
    row = session.execute(select(*(c.scalar_subquery() for c in counts))).one()
    return {name: count or 0 for name, count in zip(tabs, row, strict=True)}


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


_ORDER: dict[str, tuple[Any, ...]] = {
    # Tasks without a due date come last; said as NULLS LAST, an index on due_at can serve it.
    "due": (HumanTask.due_at.asc().nulls_last(), HumanTask.id),
    "created": (HumanTask.created_at.desc(), HumanTask.id.desc()),
    "title": (HumanTask.title, HumanTask.id),
}


def _page_by_due(ways: Any, filters: list[Any], page: int) -> Any:
    """Select the ids on one page, by due date, of the tasks in the union of `ways`.

    The first `page` pages of each way hold the page of their union.
    """
    due_order = (HumanTask.due_at.asc().nulls_last(), HumanTask.id)
    heads = []
    for way in ways:
        head = (
            way.with_only_columns(HumanTask.id, HumanTask.due_at)
            .where(*filters)
            .order_by(*due_order)
            .limit(page * PAGE_SIZE)
            .subquery()
        )
        heads.append(select(head.c.id, head.c.due_at))
    merged = union(*heads).subquery()
    return (
        select(merged.c.id)
        .order_by(merged.c.due_at.asc().nulls_last(), merged.c.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )


def _choices(tab: _Tab, stage: Any) -> Any:
    """Select the distinct (process, stage) pairs of the tab's tasks."""
    if not tab.ways:
        return select(HumanTask.process_id, stage).where(tab.condition).distinct()
    # Per way, from its index alone (it carries process and properties).
    pairs = union_all(
        *(way.with_only_columns(HumanTask.process_id, stage.label("stage")) for way in tab.ways)
    ).subquery()
    return select(pairs.c.process_id, pairs.c.stage).distinct()


def inbox_page(
    session: Session, user: User, query: InboxQuery, *, now: datetime, tz: tzinfo = UTC
) -> InboxPage:
    """Return one page of the user's inbox with the count of every tab."""
    tabs = _tabs(session, user)
    counts = _counts(session, tabs)
    tab = tabs[query.tab]
    in_tab = tab.condition
    stage = HumanTask.properties["stage"].as_string()
    filters = []
    if query.process_id:
        filters.append(HumanTask.process_id == query.process_id)
    if query.stage:
        filters.append(stage == query.stage)
    if query.customer:
        filters.append(_about_customer(query.customer))
    if query.due:
        filters.append(_due_condition(query.due, now, tz))
    conditions = [in_tab, *filters]
    if not filters:  # the tab's count is the total
        total = counts[query.tab]
    else:
        total = session.scalar(select(func.count()).select_from(HumanTask).where(*conditions)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    query = replace(query, page=min(query.page, pages))
    page_of = select(HumanTask).order_by(*_ORDER[query.sort])
    if tab.ways and query.sort == "due":
        page_of = page_of.where(HumanTask.id.in_(_page_by_due(tab.ways, filters, query.page)))
    else:
        page_of = page_of.where(*conditions).offset((query.page - 1) * PAGE_SIZE)
    tasks = list(session.scalars(page_of.limit(PAGE_SIZE)))
    names = _subject_names(session, tasks)
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
    # The filter's choices: the processes and stages of every task in the tab, in one pass.
    choices = session.execute(_choices(tab, stage)).all()
    process_ids = {process_id for process_id, _ in choices}
    stages = {s for _, s in choices if s}
    return InboxPage(
        query=query,
        rows=rows,
        total=total,
        pages=pages,
        counts=counts,
        processes=process_names(session, process_ids | {t.process_id for t in tasks}),
        stages=sorted(s for s in stages if s),
        people=display_names(
            session, {u for t in tasks for u in (t.assignee, t.candidate_user, t.completed_by)}
        ),
    )


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


def _subject_names(session: Session, tasks: Iterable[HumanTask]) -> dict[tuple[str, int], str]:
    """Name the customer (or lead) each task is about, in one query per kind of record."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for task in tasks:
        if task.subject_type and task.subject_id is not None:
            wanted[task.subject_type].add(task.subject_id)
    queries: dict[str, Any] = {
        "lead": select(Lead.id, func.coalesce(Customer.name, Lead.company, Lead.name))
        .outerjoin(Customer, Customer.id == Lead.customer_id)
        .where(Lead.id.in_(wanted["lead"])),
        "customer": select(Customer.id, Customer.name).where(Customer.id.in_(wanted["customer"])),
    }
    for kind, model in OWNED_WITH_CUSTOMER:
        queries[kind] = (
            select(model.id, Customer.name)
            .join(Customer, Customer.id == model.customer_id)
            .where(model.id.in_(wanted[kind]))
        )
    for kind, model in ORDER_CHILDREN:
        queries[kind] = (
            select(model.id, Customer.name)
            .join(SalesOrder, SalesOrder.id == model.order_id)
            .join(Customer, Customer.id == SalesOrder.customer_id)
            .where(model.id.in_(wanted[kind]))
        )
    found: dict[tuple[str, int], str] = {}
    for kind, query in queries.items():
        if wanted.get(kind):
            found.update(((kind, i), name) for i, name in session.execute(query))
    return found
