"""Keep the derived tables (human tasks, timers, message subscriptions) in step with a workflow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

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


def _render(template: str | None, data: dict[str, Any]) -> str | None:
    if not template:
        return template
    try:
        return _JINJA.from_string(template).render(**data)
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


def _ready_manual(workflow: BpmnWorkflow) -> dict[str, Any]:
    found = {
        str(t.id): t
        for t in workflow.tasks.values()
        if t.state == TaskState.READY and t.task_spec.manual
    }
    for sp in workflow.subprocesses.values():
        found.update(
            {
                str(t.id): t
                for t in sp.tasks.values()
                if t.state == TaskState.READY and t.task_spec.manual
            }
        )
    return found


def sync_human_tasks(
    session: Session, instance: ProcessInstance, workflow: BpmnWorkflow, now: datetime
) -> list[HumanTask]:
    """Open a row per new READY manual task; close rows whose task is gone; return new rows."""
    ready = _ready_manual(workflow)
    open_rows = session.scalars(
        select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == "open")
    ).all()
    for row in open_rows:
        if row.task_id not in ready:
            task = workflow.get_task_from_id(_uuid(row.task_id))
            row.status = (
                "completed"
                if task is not None and task.state == TaskState.COMPLETED
                else "cancelled"
            )
            row.completed_at = row.completed_at or now
    known = {row.task_id for row in open_rows}
    created = []
    for task_id, task in ready.items():
        if task_id in known:
            continue
        spec = task.task_spec
        ext = getattr(spec, "extensions", {}) or {}
        props = dict(ext.get("properties", {}))
        who = _resolver[0](LaneQuery(spec.lane, instance, task.data))
        row = HumanTask(
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
        )
        session.add(row)
        created.append(row)
    return created


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)


def _waiting(workflow: BpmnWorkflow) -> list[Any]:
    return [t for t in workflow.event_manager.tasks.values() if t.state == TaskState.WAITING]


def sync_waits(session: Session, instance: ProcessInstance, workflow: BpmnWorkflow) -> None:
    """Mirror the workflow's waiting timers and message catches, and set `next_timer_at`."""
    timers: dict[str, tuple[str, datetime]] = {}
    messages: dict[str, tuple[str, str]] = {}
    for task in _waiting(workflow):
        definition = task.task_spec.event_definition
        if isinstance(definition, TimerEventDefinition):
            value = definition.details(task).value
            if value:
                timers[str(task.id)] = (
                    task.task_spec.bpmn_id,
                    TimerEventDefinition.get_datetime(value),
                )
        elif isinstance(definition, MessageEventDefinition):
            messages[str(task.id)] = (task.task_spec.bpmn_id, definition.name)

    rows = session.scalars(
        select(InstanceTimer).where(
            InstanceTimer.instance_id == instance.id, InstanceTimer.status == "waiting"
        )
    ).all()
    for row in rows:
        wanted = timers.pop(row.task_id, None)
        if wanted is None:
            row.status = "done"
        elif wanted[1] != row.fire_at:
            row.fire_at = wanted[1]
    for task_id, (bpmn_id, fire_at) in timers.items():
        session.add(
            InstanceTimer(
                instance_id=instance.id,
                task_id=task_id,
                bpmn_id=bpmn_id,
                fire_at=fire_at,
                status="waiting",
                attempts=0,
            )
        )
    session.flush()
    instance.next_timer_at = min(
        (
            r.fire_at
            for r in session.scalars(
                select(InstanceTimer).where(
                    InstanceTimer.instance_id == instance.id, InstanceTimer.status == "waiting"
                )
            )
        ),
        default=None,
    )

    subs = session.scalars(
        select(MessageSubscription).where(MessageSubscription.instance_id == instance.id)
    ).all()
    for sub in subs:
        if messages.pop(sub.task_id, None) is None:
            session.delete(sub)
    for task_id, (bpmn_id, name) in messages.items():
        session.add(
            MessageSubscription(
                instance_id=instance.id,
                task_id=task_id,
                bpmn_id=bpmn_id,
                message_name=name,
                correlation_key=instance.business_key,
            )
        )
