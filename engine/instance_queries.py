"""Finding instances for the ops console: filters, status counts and the instance list.

The console's list page, its bulk actions and the heatmap all select instances through
`InstanceFilter`, so a bulk action touches exactly the instances the list shows.

The engine does not know customers or owners: the CRM installs a `SubjectLookup` that turns a
customer id or an owner's username into the (subject type, subject ids) pairs instances carry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, defer

from engine.actor import Actor
from engine.errors import Forbidden, InvalidInput, NotFound
from engine.models import (
    HumanTask,
    Incident,
    InstanceTimer,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
)

STATUSES = ("running", "waiting", "suspended", "error", "completed", "terminated")
UNFINISHED = ("running", "waiting", "suspended", "error")
PAGE_SIZE = 50
# Counts per status stop at this figure, so a count never scans a million rows.
COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class InstanceFilter:
    """Every field is optional; set fields are combined with AND."""

    process_id: str | None = None
    definition_id: int | None = None  # one deployed version
    status: str | None = None  # running, waiting, suspended, error, completed, terminated
    business_key: str | None = None  # exact, or prefix when it ends with '*'
    customer_id: int | None = None
    owner: str | None = None  # username owning the CRM record the instance serves
    started_from: datetime | None = None  # inclusive
    started_to: datetime | None = None  # exclusive
    updated_from: datetime | None = None  # inclusive
    updated_to: datetime | None = None  # exclusive
    waiting_at: str | None = None  # bpmn id of an element with a live (READY/WAITING) task
    in_error: bool = False  # has an open incident
    idle_days: int | None = None  # unfinished and not updated for longer than this many days
    instance_ids: tuple[int, ...] = ()  # an explicit selection (checked rows)


# (subject type, ids): the ids are a list or a SELECT of one id column.
SubjectChoice = tuple[str, Any]
SubjectLookup = Callable[[Session, str, int | str], list[SubjectChoice]]
_lookup: list[SubjectLookup | None] = [None]


def set_subject_lookup(lookup: SubjectLookup) -> None:
    """Install the function that resolves ('customer', id) and ('owner', username) to subjects."""
    _lookup[0] = lookup


def require_console_access(actor: Actor) -> None:
    """Let only ops and admins see process instances across the company."""
    if not actor.can_repair:
        raise Forbidden("only ops and admins may see the ops console")


def _subjects_in(session: Session, kind: str, key: int | str) -> ColumnElement[bool]:
    lookup = _lookup[0]
    if lookup is None:
        raise InvalidInput(f"the {kind} filter needs the CRM", {kind: ["not available"]})
    clauses = []
    for subject_type, ids in lookup(session, kind, key):
        # Resolved to plain ids first: the planner then reads the subject index per kind
        # instead of scanning instances against nine subqueries.
        found = sorted(set(ids if isinstance(ids, list) else session.scalars(ids)))
        if found:
            clauses.append(
                and_(
                    ProcessInstance.subject_type == subject_type,
                    ProcessInstance.subject_id.in_(found),
                )
            )
    return or_(*clauses) if clauses else false()


def _waiting_exists(bpmn_id: str) -> ColumnElement[bool]:
    """The same condition per instance: cheap for a page of the newest, which stops early."""
    pi = ProcessInstance
    return or_(
        select(HumanTask.id)
        .where(
            HumanTask.instance_id == pi.id, HumanTask.bpmn_id == bpmn_id, HumanTask.status == "open"
        )
        .exists(),
        select(InstanceTimer.id)
        .where(
            InstanceTimer.instance_id == pi.id,
            InstanceTimer.bpmn_id == bpmn_id,
            InstanceTimer.status == "waiting",
        )
        .exists(),
        select(MessageSubscription.id)
        .where(MessageSubscription.instance_id == pi.id, MessageSubscription.bpmn_id == bpmn_id)
        .exists(),
    )


def _waiting_at(bpmn_id: str) -> Any:
    return union_all(
        select(HumanTask.instance_id).where(
            HumanTask.bpmn_id == bpmn_id, HumanTask.status == "open"
        ),
        select(InstanceTimer.instance_id).where(
            InstanceTimer.bpmn_id == bpmn_id, InstanceTimer.status == "waiting"
        ),
        select(MessageSubscription.instance_id).where(MessageSubscription.bpmn_id == bpmn_id),
    )


def _conditions(
    session: Session, criteria: InstanceFilter, now: datetime, *, with_status: bool = True
) -> list[ColumnElement[bool]]:
    pi, c = ProcessInstance, criteria
    found: list[ColumnElement[bool]] = []
    if c.process_id:
        found.append(pi.process_id == c.process_id)
    if c.definition_id is not None:
        found.append(pi.definition_id == c.definition_id)
    if with_status and c.status:
        found.append(pi.status == c.status)
    if c.business_key:
        if c.business_key.endswith("*"):
            found.append(pi.business_key.startswith(c.business_key[:-1], autoescape=True))
        else:
            found.append(pi.business_key == c.business_key)
    if c.customer_id is not None:
        found.append(_subjects_in(session, "customer", c.customer_id))
    if c.owner:
        found.append(_subjects_in(session, "owner", c.owner))
    return found + _progress_conditions(criteria, now)


def _progress_conditions(criteria: InstanceFilter, now: datetime) -> list[ColumnElement[bool]]:
    """Conditions on when an instance started or changed, where it waits and whether it failed."""
    pi, c = ProcessInstance, criteria
    found: list[ColumnElement[bool]] = []
    for column, low, high in (
        (pi.started_at, c.started_from, c.started_to),
        (pi.updated_at, c.updated_from, c.updated_to),
    ):
        if low is not None:
            found.append(column >= low)
        if high is not None:
            found.append(column < high)
    if c.waiting_at:
        found.append(pi.id.in_(_waiting_at(c.waiting_at)))
    if c.in_error:
        found.append(pi.id.in_(select(Incident.instance_id).where(Incident.status == "open")))
    if c.idle_days is not None:
        found.append(pi.updated_at < now - timedelta(days=c.idle_days))
        found.append(pi.status.in_(UNFINISHED))
    if c.instance_ids:
        found.append(pi.id.in_(sorted(set(c.instance_ids))))
    return found


@dataclass(frozen=True)
class DefinitionChoice:
    """One deployed version, as the console's process and version pickers show it."""

    id: int
    process_id: str
    name: str
    version: int


def definition_choices(session: Session, actor: Actor) -> list[DefinitionChoice]:
    """Return every deployed version, by process id and newest version first."""
    require_console_access(actor)
    d = ProcessDefinition
    rows = session.execute(
        select(d.id, d.process_id, d.name, d.version).order_by(d.process_id, d.version.desc())
    )
    return [DefinitionChoice(*row) for row in rows]


def definition_diagram(session: Session, actor: Actor, definition_id: int) -> str:
    """Return the BPMN XML a version was deployed from."""
    require_console_access(actor)
    definition = session.get(ProcessDefinition, definition_id)
    if definition is None:
        raise NotFound(f"process version {definition_id} does not exist")
    source = definition.deployment.sources.get(definition.source_file)
    if not isinstance(source, str):
        raise NotFound(f"the diagram of process version {definition_id} was not kept")
    return source


def _newest_first(criteria: InstanceFilter) -> Any:
    """Order by id, descending; with a date range, so that the planner does not walk the
    primary key backwards hoping to meet rows of that range soon (it meets them late)."""
    c = criteria
    if any(v is not None for v in (c.started_from, c.started_to, c.updated_from, c.updated_to)):
        return (ProcessInstance.id + 0).desc()
    return ProcessInstance.id.desc()


def matching_ids(
    session: Session, criteria: InstanceFilter, *, now: datetime, limit: int = 10_000
) -> list[int]:
    """Ids of the instances matching `criteria`, newest first, at most `limit`."""
    query = (
        select(ProcessInstance.id)
        .where(*_conditions(session, criteria, now))
        .order_by(_newest_first(criteria))
        .limit(limit)
    )
    return list(session.scalars(query))


def _is_selective(criteria: InstanceFilter) -> bool:
    """Tell whether the filter starts from a small set: chosen ids, waits, failures, records."""
    c = criteria
    return bool(
        c.instance_ids
        or c.waiting_at
        or c.in_error
        or c.customer_id is not None
        or c.owner
        or (c.business_key and not c.business_key.endswith("*"))
    )


def status_counts(
    session: Session, criteria: InstanceFilter, *, now: datetime, cap: int = COUNT_LIMIT
) -> dict[str, int | None]:
    """Count the matching instances of each status, ignoring the filter's own status.

    A count above `cap` is reported as `cap + 1` (shown as "more than cap"). A filter that
    starts from a small set is counted in one pass over at most `cap + 1` matches; when more
    match, every status is None (unknown). A broad filter is counted per status, each count
    stopping after `cap + 1` rows, so that no count reads a million rows.
    """
    return _counts(session, criteria, _conditions(session, criteria, now, with_status=False), cap)


def _counts(
    session: Session, criteria: InstanceFilter, conditions: list[ColumnElement[bool]], cap: int
) -> dict[str, int | None]:
    counts: dict[str, int | None] = dict.fromkeys(STATUSES, 0)
    if _is_selective(criteria):
        # Read at most cap + 1 of the matches. When more match (tens of thousands waiting at one
        # busy element), counting each status exactly would visit every one of them, so the
        # counts are unknown (None) and the page says "more than cap" in all.
        sample = select(ProcessInstance.status).where(*conditions).limit(cap + 1).subquery()
        rows = session.execute(
            select(sample.c.status, func.count()).group_by(sample.c.status)
        ).all()
        if sum(int(count) for _, count in rows) > cap:
            return dict.fromkeys(STATUSES, None)
        for status, count in rows:
            if status in counts:
                counts[status] = int(count)
        return counts
    for status in STATUSES:
        capped = (
            select(literal(1))
            .select_from(ProcessInstance)
            .where(ProcessInstance.status == status, *conditions)
            .limit(cap + 1)
            .subquery()
        )
        counts[status] = session.scalar(select(func.count()).select_from(capped)) or 0
    return counts


@dataclass(frozen=True)
class InstanceRow:
    """One line of the instance list."""

    instance: ProcessInstance
    process_name: str
    version: int
    waiting_at: list[str]  # bpmn ids with a live task
    incident: str | None  # message of the newest open incident


@dataclass(frozen=True)
class InstancePage:
    rows: list[InstanceRow]
    counts: dict[str, int | None]  # None: more than COUNT_LIMIT match, not counted per status
    next_before: int | None  # pass as `before` for the next page; None on the last page


def list_instances(
    session: Session,
    actor: Actor,
    criteria: InstanceFilter,
    *,
    now: datetime,
    before: int | None = None,
    page_size: int = PAGE_SIZE,
) -> InstancePage:
    """Return one page of matching instances, newest first, below id `before` (keyset paging)."""
    require_console_access(actor)
    base = _conditions(session, criteria, now, with_status=False)  # resolved once for both
    conditions = list(base)
    if criteria.waiting_at:
        # The page wants the newest few: test each instance (stops after a page) instead of
        # collecting every instance that waits there first, as the counts must.
        waiting = _conditions(session, replace(criteria, waiting_at=None), now, with_status=False)
        conditions = [*waiting, _waiting_exists(criteria.waiting_at)]
    if criteria.status:
        conditions.append(ProcessInstance.status == criteria.status)
    if before is not None:
        conditions.append(ProcessInstance.id < before)
    result = session.execute(
        select(ProcessInstance, ProcessDefinition.name, ProcessDefinition.version)
        .options(defer(ProcessInstance.state))  # the stored workflow: not shown in a list
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .where(*conditions)
        .order_by(_newest_first(criteria))
        .limit(page_size + 1)
    ).all()
    more = len(result) > page_size
    result = result[:page_size]
    ids = [row[0].id for row in result]
    waits = _live_elements(session, ids)
    incidents = _open_incident_messages(session, ids)
    rows = [
        InstanceRow(instance, name, version, waits.get(instance.id, []), incidents.get(instance.id))
        for instance, name, version in result
    ]
    return InstancePage(
        rows=rows,
        counts=_counts(session, criteria, base, COUNT_LIMIT),
        next_before=ids[-1] if more and ids else None,
    )


def _live_elements(session: Session, ids: Sequence[int]) -> dict[int, list[str]]:
    if not ids:
        return {}
    found: dict[int, set[str]] = {}
    rows = session.execute(
        union_all(
            select(HumanTask.instance_id, HumanTask.bpmn_id).where(
                HumanTask.instance_id.in_(ids), HumanTask.status == "open"
            ),
            select(InstanceTimer.instance_id, InstanceTimer.bpmn_id).where(
                InstanceTimer.instance_id.in_(ids), InstanceTimer.status == "waiting"
            ),
            select(MessageSubscription.instance_id, MessageSubscription.bpmn_id).where(
                MessageSubscription.instance_id.in_(ids)
            ),
        )
    )
    for instance_id, bpmn_id in rows:
        found.setdefault(instance_id, set()).add(bpmn_id)
    return {k: sorted(v) for k, v in found.items()}


def _open_incident_messages(session: Session, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(Incident.instance_id, Incident.message)
        .where(Incident.instance_id.in_(ids), Incident.status == "open")
        .order_by(Incident.id)
    )
    return {instance_id: message for instance_id, message in rows}
