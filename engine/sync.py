"""Keep the derived tables (human tasks, timers, message subscriptions) in step with a workflow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import (
    CompoundSelect,
    String,
    Text,
    bindparam,
    cast,
    inspect,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from engine.change_rows import ChangeRows
from engine.deploy_checks import FORM_PROPERTY, UI_FORM_PROPERTY
from engine.models import HumanTask, InstanceTimer, MessageSubscription, ProcessInstance

_JINJA = SandboxedEnvironment(autoescape=False)


@dataclass(frozen=True)
class Candidates:
    """Who may work on a task: a role, a team and/or one named user."""

    role: str | None = None
    team: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class LaneQuery:
    lane: str | None
    instance: ProcessInstance
    data: dict[str, Any]
    session: Session


TaskOpenedListener = Callable[[Session, ProcessInstance, HumanTask, dict[str, Any]], None]
_listeners: list[TaskOpenedListener] = []


def on_task_opened(listener: TaskOpenedListener) -> TaskOpenedListener:
    """Register a function told about every new human task, with the task's data."""
    _listeners.append(listener)
    return listener


LaneResolver = Callable[[LaneQuery], Candidates]


def default_lane_resolver(query: LaneQuery) -> Candidates:
    """A task without a lane goes to the initiator; a lane names a role."""
    if not query.lane:
        return Candidates(user=query.instance.started_by)
    return Candidates(role=query.lane.strip().lower().replace(" ", "_"))


_resolver: list[LaneResolver] = [default_lane_resolver]


def set_lane_resolver(resolver: LaneResolver) -> None:
    """Install the function that maps a lane to candidates (the CRM knows managers and teams)."""
    _resolver[0] = resolver


@lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    return _JINJA.from_string(source)


def _render(template: str | None, data: dict[str, Any]) -> str | None:
    if not template:
        return template
    try:
        return _template(template).render(**data)
    except Exception:  # a broken template must not stop the process; show it raw
        return template


def _due_at(props: dict[str, str], now: datetime) -> datetime | None:
    if props.get("max_days"):
        try:
            return now + timedelta(days=float(props["max_days"]))
        except ValueError:
            return None
    if props.get("dueIn"):
        parsed = TimerEventDefinition.parse_iso_duration(props["dueIn"])
        return now + TimerEventDefinition.get_timedelta_from_start(parsed, now)
    return None


@dataclass
class DerivedRows:
    """Which derived rows exist for an instance, keyed by library task id.

    Kept with a cached workflow so that a change need not read them back; read from the
    database when the workflow was restored from its rows.
    """

    open_tasks: set[str] = field(default_factory=set)
    timers: dict[str, datetime] = field(default_factory=dict)
    subscriptions: set[str] = field(default_factory=set)

    def add(self, kind: str, task_id: str, message: str | None, fire_at: datetime | None) -> None:
        """Take one row of DERIVED_ROWS."""
        if kind == "task":
            self.open_tasks.add(task_id)
        elif kind == "timer" and fire_at is not None:
            self.timers[task_id] = fire_at
        elif kind == "message":
            self.subscriptions.add(f"{task_id}|{message}")


# Open tasks, waiting timers and subscriptions in one statement, as (kind, task id, message
# name, -, fire time): a change that restored its workflow would otherwise pay three round
# trips. The columns line up with engine.state's task rows, which it is sent with.
DERIVED_SELECTS = (
    select(
        literal("timer"),
        InstanceTimer.task_id,
        cast(null(), String),
        cast(null(), Text),
        InstanceTimer.fire_at,
    ).where(
        InstanceTimer.instance_id == bindparam("instance_id"), InstanceTimer.status == "waiting"
    ),
    select(literal("task"), HumanTask.task_id, null(), null(), null()).where(
        HumanTask.instance_id == bindparam("instance_id"), HumanTask.status == "open"
    ),
    select(
        literal("message"),
        MessageSubscription.task_id,
        MessageSubscription.message_name,
        null(),
        null(),
    ).where(MessageSubscription.instance_id == bindparam("instance_id")),
)
DERIVED_ROWS: CompoundSelect[Any] = union_all(*DERIVED_SELECTS)


def read_derived_rows(session: Session, instance_id: int) -> DerivedRows:
    """Load which open tasks, waiting timers and subscriptions an instance has."""
    found = DerivedRows()
    for kind, task_id, message, _, fire_at in session.execute(
        DERIVED_ROWS, {"instance_id": instance_id}
    ):
        found.add(kind, task_id, message, fire_at)
    return found


def _ready_manual(workflow: BpmnWorkflow) -> dict[str, Any]:
    found = {}
    for wf in [workflow, *workflow.subprocesses.values()]:
        for task in wf.tasks.values():
            if task._state == TaskState.READY and task.task_spec.manual:
                found[str(task.id)] = task
    return found


def sync_human_tasks(
    session: Session,
    instance: ProcessInstance,
    workflow: BpmnWorkflow,
    rows: DerivedRows,
    now: datetime,
    actor: str | None,
    writes: ChangeRows,
) -> list[HumanTask]:
    """Open a row per new READY manual task; close rows whose task is gone; return new rows.

    A closed row records `now`; a completed one also records `actor`, the user whose change
    completed it. Plain values let the session update its copies without reading them back.
    """
    ready = _ready_manual(workflow)
    gone = rows.open_tasks - set(ready)
    if gone:
        done = {t for t in gone if _is_completed(workflow, t)}
        for status, task_ids in (("completed", done), ("cancelled", gone - done)):
            if task_ids:
                values: dict[str, Any] = {"status": status, "completed_at": now}
                if status == "completed" and actor is not None:
                    values["completed_by"] = actor
                _close_rows(session, writes, task_ids, values)
    created = []
    for task_id, task in ready.items():
        if task_id in rows.open_tasks:
            continue
        row = _new_row(session, instance, task_id, task, now)
        created.append(row)
        for listener in _listeners:
            listener(session, instance, row, task.data)
    # They become the session's copies once they have ids, when the change is sent.
    writes.opened_tasks.extend(created)
    rows.open_tasks = set(ready)
    return created


def _close_rows(
    session: Session, writes: ChangeRows, task_ids: set[str], values: dict[str, Any]
) -> None:
    """Close open rows when the change is sent, and give the session's copies the same values."""
    writes.closed_tasks.extend(
        {"task_id": task_id, "completed_by": None, **values} for task_id in task_ids
    )
    for obj in list(session.identity_map.values()):
        loaded = inspect(obj).dict
        if (
            isinstance(obj, HumanTask)
            and loaded.get("task_id") in task_ids
            and loaded.get("status") == "open"
        ):
            for key, value in values.items():
                set_committed_value(obj, key, value)


def _is_completed(workflow: BpmnWorkflow, task_id: str) -> bool:
    task = workflow.get_task_from_id(UUID(task_id))
    return task is not None and task.state == TaskState.COMPLETED


def _new_row(
    session: Session, instance: ProcessInstance, task_id: str, task: Any, now: datetime
) -> HumanTask:
    spec = task.task_spec
    ext = getattr(spec, "extensions", {}) or {}
    props = dict(ext.get("properties", {}))
    who = _resolver[0](LaneQuery(spec.lane, instance, task.data, session))
    return HumanTask(
        instance_id=instance.id,
        task_id=task_id,
        process_id=instance.process_id,
        bpmn_id=spec.bpmn_id,
        title=(spec.bpmn_name or spec.bpmn_id)[:255],
        lane=spec.lane,
        candidate_role=who.role,
        candidate_team=who.team,
        candidate_user=who.user,
        assignee=who.user,
        status="open",
        form=props.get(FORM_PROPERTY),
        ui_form=props.get(UI_FORM_PROPERTY),
        instructions=_render(ext.get("instructionsForEndUser"), task.data),
        properties=props,
        subject_type=instance.subject_type,
        subject_id=instance.subject_id,
        due_at=_due_at(props, now),
        created_at=now,
        completed_at=None,
        completed_by=None,
        draft=None,
    )


def _waits(
    workflow: BpmnWorkflow,
) -> tuple[dict[str, tuple[str, datetime]], dict[str, tuple[str, str]]]:
    timers: dict[str, tuple[str, datetime]] = {}
    messages: dict[str, tuple[str, str]] = {}
    for task in workflow.event_manager.tasks.values():
        if task._state != TaskState.WAITING:
            continue
        definition = task.task_spec.event_definition
        # An event-based gateway waits on several events at once, as one task.
        parts = (
            definition.event_definitions
            if isinstance(definition, MultipleEventDefinition)
            else [definition]
        )
        for part in parts:
            if isinstance(part, TimerEventDefinition):
                value = part.details(task).value
                if value:
                    fire_at = TimerEventDefinition.get_datetime(value)
                    timers[str(task.id)] = (task.task_spec.bpmn_id, fire_at)
            elif isinstance(part, MessageEventDefinition):
                key = f"{task.id}|{part.name}"
                messages[key] = (task.task_spec.bpmn_id, part.name)
    return timers, messages


def sync_waits(
    session: Session,
    instance: ProcessInstance,
    workflow: BpmnWorkflow,
    rows: DerivedRows,
    now: datetime | None,
    writes: ChangeRows,
) -> None:
    """Mirror the workflow's waiting timers and message catches, and set `next_timer_at`."""
    timers, messages = _waits(workflow)
    # Plain SQL, sent with the change's other writes: no session copies of these rows exist.
    ended = set(rows.timers) - set(timers)
    moved = {t for t in set(rows.timers) & set(timers) if timers[t][1] != rows.timers[t]}
    writes.ended_timers.extend(ended)
    writes.moved_timers.extend({"task_id": t, "fire_at": timers[t][1]} for t in moved)
    writes.new_timers.extend(
        {
            "instance_id": instance.id,
            "task_id": task_id,
            "bpmn_id": bpmn_id,
            "fire_at": fire_at,
            "status": "waiting",
            "attempts": 0,
            "last_error": None,
            "created_at": now,
        }
        for task_id, (bpmn_id, fire_at) in timers.items()
        if task_id not in rows.timers
    )
    rows.timers = {task_id: fire_at for task_id, (_, fire_at) in timers.items()}
    instance.next_timer_at = min(rows.timers.values(), default=None)

    writes.dropped_subscriptions.extend(
        dict(zip(("task_id", "message_name"), key.split("|", 1), strict=True))
        for key in rows.subscriptions - set(messages)
    )
    writes.new_subscriptions.extend(
        {
            "instance_id": instance.id,
            "task_id": key.split("|", 1)[0],
            "bpmn_id": bpmn_id,
            "message_name": name,
            "correlation_key": instance.business_key,
            "created_at": now,
        }
        for key, (bpmn_id, name) in messages.items()
        if key not in rows.subscriptions
    )
    rows.subscriptions = set(messages)
