"""What selects the tasks of each inbox tab, built once per kind of user.

The statements name the user, their roles, teams and visible record owners as bound parameters
(`TabParams`), so one set of statements serves every user of the same kind (`TabShape`): built,
and given its cache key, once per process instead of on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union,
    union_all,
)

from crm.customers.models import Customer
from crm.directory.models import User
from crm.directory.services import actor_for
from crm.leads.models import Lead
from crm.orders.models import Installment, InvoiceRequest, SalesOrder
from crm.quotes.models import Quote
from crm.sales.models import Opportunity
from engine.models import HumanTask

TABS = ("mine", "open", "customers", "completed")
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
# What a row of the list shows of its task: a plain row of these columns, not an ORM object
# (the form, instructions and draft stay in the database, and nothing joins the session).
LISTED_COLUMNS = (
    HumanTask.id,
    HumanTask.title,
    HumanTask.process_id,
    HumanTask.status,
    HumanTask.assignee,
    HumanTask.candidate_user,
    HumanTask.candidate_role,
    HumanTask.candidate_team,
    HumanTask.properties,
    HumanTask.subject_type,
    HumanTask.subject_id,
    HumanTask.due_at,
    HumanTask.created_at,
    HumanTask.completed_at,
    HumanTask.completed_by,
)
DUE_ORDER = (HumanTask.due_at.asc().nulls_last(), HumanTask.id)
ORDERS: dict[str, tuple[Any, ...]] = {
    # Tasks without a due date come last; said as NULLS LAST, an index on due_at can serve it.
    "due": DUE_ORDER,
    "created": (HumanTask.created_at.desc(), HumanTask.id.desc()),
    "title": (HumanTask.title, HumanTask.id),
}


def task_stage() -> ColumnElement[Any]:
    """Return the task's stage (from its properties) as text."""
    return HumanTask.properties["stage"].as_string()


_ME = bindparam("me", type_=String())
_ROLES = bindparam("roles", expanding=True, type_=String())
_TEAMS = bindparam("teams", expanding=True, type_=String())
_OWNERS: BindParameter[int] = bindparam("owners", expanding=True, type_=Integer())
# Paging: the page's size, where it starts, and how many tasks each way contributes to a page by
# due date.
SIZE: BindParameter[int] = bindparam("size", type_=Integer())
HEAD: BindParameter[int] = bindparam("head", type_=Integer())
SKIP: BindParameter[int] = bindparam("skip", type_=Integer())


@dataclass(frozen=True)
class TabShape:
    """What decides the form of a user's statements (their values are parameters)."""

    all_records: bool  # sees every owner's records (directors, admins, ops)
    roles: bool
    teams: bool


def tab_params(user: User, scope: set[int] | None) -> tuple[TabShape, dict[str, Any]]:
    """Return the shape of the user's statements and the values of their parameters.

    `scope` is whose records the user sees (`visible_owner_ids`; None: everyone's).
    """
    actor = actor_for(user)
    shape = TabShape(scope is None, bool(actor.roles), bool(actor.teams))
    params: dict[str, Any] = {"me": actor.username}
    if actor.roles:
        params["roles"] = sorted(actor.roles)
    if actor.teams:
        params["teams"] = sorted(actor.teams)
    if scope is not None:
        params["owners"] = sorted(scope)
    return shape, params


def owned_by(column: Any, scope: set[int] | None) -> ColumnElement[bool]:
    return column.is_not(None) if scope is None else column.in_(sorted(scope))


def _owned(column: Any, shape: TabShape) -> ColumnElement[bool]:
    return column.is_not(None) if shape.all_records else column.in_(_OWNERS)


def _open_tasks_on_visible_records(shape: TabShape) -> list[Any]:
    """Select the ids of open tasks not held by the user whose record's owner the user sees.

    One SELECT per kind of record (kinds do not overlap): each starts from the owners' records
    and finds their tasks through the subject index, where an OR of `IN (subquery)` tests would
    read every open task.
    """

    def tasks_about(kind: str, model: Any) -> Any:
        return select(HumanTask.id).join(
            model, and_(HumanTask.subject_type == kind, HumanTask.subject_id == model.id)
        )

    is_open = and_(
        HumanTask.status == "open",
        or_(HumanTask.assignee.is_(None), HumanTask.assignee != _ME),
    )
    parts = [tasks_about("lead", Lead).where(is_open, _owned(Lead.owner_id, shape))]
    parts += [
        tasks_about(kind, model).where(is_open, _owned(model.owner_id, shape))
        for kind, model in OWNED_WITH_CUSTOMER
    ]
    parts += [
        tasks_about(kind, model)
        .join(SalesOrder, SalesOrder.id == model.order_id)
        .where(is_open, _owned(SalesOrder.owner_id, shape))
        for kind, model in ORDER_CHILDREN
    ]
    parts += [
        tasks_about("customer", Customer).where(is_open, _owned(Customer.owner_id, shape)),
        tasks_about("user", User).where(is_open, _owned(User.id, shape)),
    ]
    return parts


def _offered_ways(shape: TabShape) -> list[ColumnElement[bool]]:
    """The conditions of `engine.tasks.offered_ways`, with the actor as parameters.

    By name, else to one of the roles, else to one of the teams: the ways do not overlap, and
    each matches one partial index.
    """
    unclaimed = and_(HumanTask.status == "open", HumanTask.assignee.is_(None))
    ways = [and_(unclaimed, HumanTask.candidate_user == _ME)]
    not_by_name = HumanTask.candidate_user.is_distinct_from(_ME)
    if shape.roles:
        ways.append(and_(unclaimed, HumanTask.candidate_role.in_(_ROLES), not_by_name))
    if shape.teams:
        not_by_role = (
            or_(HumanTask.candidate_role.is_(None), HumanTask.candidate_role.not_in(_ROLES))
            if shape.roles
            else true()
        )
        ways.append(and_(unclaimed, HumanTask.candidate_team.in_(_TEAMS), not_by_name, not_by_role))
    return ways


@dataclass(frozen=True)
class Tab:
    condition: ColumnElement[bool]
    # The tab's task ids as index-only scans, where counting them is cheaper than the condition.
    ids: Any = None
    # SELECTs of task ids whose union is the tab, each served by an index that carries the
    # due date, process and properties: pages by due date and filter choices come from them.
    ways: tuple[Any, ...] = ()


@dataclass(frozen=True)
class TabStatements:
    tabs: dict[str, Tab]
    counts: Select[Any]  # one row: the count of every tab, in the order of TABS
    choices: dict[str, Select[Any]]  # per tab: its distinct (process, stage) pairs
    # "On my customers" of a team or a rep, in one scan (`records_at_once`): the other tabs'
    # counts (its own is NULL), then its count, choices and page of ids.
    counts_but_records: Select[Any]
    records_at_once: CompoundSelect[Any]


@lru_cache(maxsize=16)
def tab_statements(shape: TabShape) -> TabStatements:
    """Return the statements of every tab for users of this shape."""
    is_open = HumanTask.status == "open"
    offered = [HumanTask.candidate_user == _ME]
    if shape.roles:
        offered.append(HumanTask.candidate_role.in_(_ROLES))
    if shape.teams:
        offered.append(HumanTask.candidate_team.in_(_TEAMS))
    ways = tuple(select(HumanTask.id).where(way) for way in _offered_ways(shape))
    on_records = _open_tasks_on_visible_records(shape)
    tabs = {
        "mine": Tab(and_(is_open, HumanTask.assignee == _ME)),
        "open": Tab(
            and_(is_open, HumanTask.assignee.is_(None), or_(*offered)),
            union_all(*ways),
            ways,
        ),
        "customers": Tab(
            and_(
                is_open,
                or_(HumanTask.assignee.is_(None), HumanTask.assignee != _ME),
                HumanTask.id.in_(union_all(*on_records)),
            ),
            union_all(*on_records),
            tuple(on_records),
        ),
        "completed": Tab(and_(HumanTask.status == "completed", HumanTask.completed_by == _ME)),
    }
    return TabStatements(
        tabs=tabs,
        counts=_counts(tabs),
        choices={name: choices_of(tab) for name, tab in tabs.items()},
        counts_but_records=_counts(tabs, leave_out="customers"),
        records_at_once=_at_once(tabs["customers"]),
    )


def _at_once(tab: Tab) -> CompoundSelect[Any]:
    """Select a tab's count, filter choices and page of ids by due date from one scan.

    Rows ("count", n, NULL, NULL), ("choice", NULL, process, stage) and ("page", id, NULL,
    NULL); the page (parameters `skip` and `size`) is in no particular order. The tab's tasks
    are read once into a common table expression, which the three parts share, where separate
    statements would each scan them.
    """
    stage = task_stage()
    entries = union_all(
        *(
            way.with_only_columns(
                HumanTask.id, HumanTask.due_at, HumanTask.process_id, stage.label("stage")
            )
            for way in tab.ways
        )
    ).cte("tab_entries")
    no_id, no_text = cast(null(), Integer), cast(null(), String)
    count = select(literal("count"), func.count(), no_text, no_text).select_from(entries)
    pairs = select(entries.c.process_id, entries.c.stage).distinct().subquery()
    choices = select(literal("choice"), no_id, pairs.c.process_id, pairs.c.stage)
    page = (
        select(entries.c.id)
        .order_by(entries.c.due_at.asc().nulls_last(), entries.c.id)
        .offset(SKIP)
        .limit(SIZE)
        .subquery()
    )
    ids = select(literal("page"), page.c.id, no_text, no_text)
    return union_all(count, choices, ids)


def _counts(tabs: dict[str, Tab], leave_out: str | None = None) -> Select[Any]:
    """Count every tab in one statement (one subquery each); "open" and "customers" by id."""
    counts = [
        select(func.count()).select_from(tabs[name].ids.subquery())
        if tabs[name].ids is not None
        else select(func.count()).select_from(HumanTask).where(tabs[name].condition)
        for name in TABS
    ]
    return select(
        *(
            cast(null(), Integer) if name == leave_out else c.scalar_subquery()
            for name, c in zip(TABS, counts, strict=True)
        )
    )


def choices_of(tab: Tab) -> Select[Any]:
    """Select the distinct (process, stage) pairs of the tab's tasks."""
    stage = task_stage()
    if not tab.ways:
        return select(HumanTask.process_id, stage).where(tab.condition).distinct()
    # Per way, from its index alone (it carries process and properties).
    pairs = union_all(
        *(way.with_only_columns(HumanTask.process_id, stage.label("stage")) for way in tab.ways)
    ).subquery()
    return select(pairs.c.process_id, pairs.c.stage).distinct()


def page_by_due(ways: Any, filters: list[Any]) -> Select[Any]:
    """Select the ids on one page, by due date, of the tasks in the union of `ways`.

    The first `HEAD` tasks (the pages up to this one) of each way hold the page of their union,
    which starts at `SKIP`.
    """
    heads = []
    for way in ways:
        head = (
            way.with_only_columns(HumanTask.id, HumanTask.due_at)
            .where(*filters)
            .order_by(*DUE_ORDER)
            .limit(HEAD)
            .subquery()
        )
        heads.append(select(head.c.id, head.c.due_at))
    merged = union(*heads).subquery()
    return (
        select(merged.c.id)
        .order_by(merged.c.due_at.asc().nulls_last(), merged.c.id)
        .offset(SKIP)
        .limit(SIZE)
    )


def page_statement(tab: Tab, sort: str, filters: list[Any]) -> Select[Any]:
    """Select the listed columns of one page of the tab (parameters `size`, `skip`, `head`)."""
    statement = select(*LISTED_COLUMNS).order_by(*ORDERS[sort])
    if tab.ways and sort == "due":
        return statement.where(HumanTask.id.in_(page_by_due(tab.ways, filters))).limit(SIZE)
    return statement.where(tab.condition, *filters).offset(SKIP).limit(SIZE)


@lru_cache(maxsize=64)
def unfiltered_page(shape: TabShape, tab: str, sort: str) -> Select[Any]:
    """Return `page_statement` of a tab without filters, built once per shape."""
    return page_statement(tab_statements(shape).tabs[tab], sort, [])


_IDS: BindParameter[int] = bindparam("ids", expanding=True, type_=Integer())


@lru_cache(maxsize=1)
def listed_by_ids() -> Select[Any]:
    """Select the listed columns of the tasks whose ids are `ids`, by due date."""
    return select(*LISTED_COLUMNS).where(HumanTask.id.in_(_IDS)).order_by(*DUE_ORDER)
