"""Start instances and drive them: messages, timers, suspend, resume, terminate, retry."""

from __future__ import annotations

import uuid
from copy import deepcopy
from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from engine.models import HumanTask, Incident, InstanceTimer, MessageSubscription, ProcessInstance
from engine.runtime import ChangeOutcome, apply_change, lock_instance, log_event
from engine.specs import SERIALIZER_VERSION
from engine.state import new_live_workflow
from engine.stepping import cancel_workflow
from engine.writes import insert_instance_of_newest

# The library fires a timer only when its time is strictly in the past.
_TIMER_EPSILON = timedelta(microseconds=1)


def _require_repair(actor: Actor, what: str) -> None:
    if not actor.can_repair:
        raise Forbidden(f"only ops and admins may {what}")


def start_instance(
    session: Session,
    actor: Actor,
    process_id: str,
    *,
    now: datetime,
    data: dict[str, Any] | None = None,
    business_key: str | None = None,
    subject: tuple[str, int] | None = None,
) -> ChangeOutcome:
    """Start the newest version of a process and run it to its first wait."""
    if data is not None and not isinstance(data, dict):
        raise InvalidInput("start data must be an object", {"data": ["must be a JSON object"]})
    instance = ProcessInstance(
        process_id=process_id,
        business_key=business_key,
        subject_type=subject[0] if subject else None,
        subject_id=subject[1] if subject else None,
        status="running",
        state="{}",
        serializer_version=SERIALIZER_VERSION,
        state_token=uuid.uuid4().hex,
        next_timer_at=None,
        started_by=actor.username,
        started_at=now,
        updated_at=now,
        ended_at=None,
    )
    started = insert_instance_of_newest(session, instance)
    if started is None:
        raise NotFound(f"no deployed process with id '{process_id}'")
    log_event(
        session,
        instance.id,
        now,
        "started",
        actor.username,
        detail={"version": started.version, "data": data or {}},
    )
    live = new_live_workflow(session, started.definition_id, started.spec_hash)

    def begin(workflow: BpmnWorkflow) -> None:
        # The start task is already READY and has inherited the (empty) root data.
        for task in [workflow.task_tree, *workflow.get_tasks(state=TaskState.READY)]:
            task.data.update(deepcopy(data or {}))

    return apply_change(session, instance, actor, now, begin, live=live)


def _require_active(instance: ProcessInstance) -> None:
    if instance.status not in ("running", "waiting"):
        raise Conflict(f"process instance {instance.id} is {instance.status}")


def send_message(
    session: Session,
    actor: Actor,
    message_name: str,
    correlation_key: str,
    payload: dict[str, Any] | None,
    *,
    now: datetime,
) -> list[ChangeOutcome]:
    """Deliver a message to every active instance waiting for it under this correlation key."""
    instance_ids = session.scalars(
        select(MessageSubscription.instance_id)
        .where(
            MessageSubscription.message_name == message_name,
            MessageSubscription.correlation_key == correlation_key,
        )
        .distinct()
    ).all()
    if not instance_ids:
        raise NotFound(
            f"no instance is waiting for message '{message_name}' with key '{correlation_key}'"
        )
    outcomes = []
    for instance_id in sorted(instance_ids):
        instance = lock_instance(session, instance_id)
        _require_active(instance)

        def deliver(workflow: BpmnWorkflow) -> None:
            event = BpmnEvent(MessageEventDefinition(message_name), payload=payload or {})
            workflow.send_event(event)

        log_event(
            session,
            instance.id,
            now,
            "message_received",
            actor.username,
            detail={"message": message_name, "payload": payload or {}},
        )
        outcomes.append(apply_change(session, instance, actor, now, deliver))
    return outcomes


def fire_instance_timers(
    session: Session, instance_id: int, *, now: datetime
) -> ChangeOutcome | None:
    """Fire whatever timers of one instance are due at `now`; None if it is not active."""
    instance = lock_instance(session, instance_id)
    if instance.status not in ("running", "waiting"):
        return None
    due = session.scalars(
        select(InstanceTimer).where(
            InstanceTimer.instance_id == instance.id,
            InstanceTimer.status == "waiting",
            InstanceTimer.fire_at <= now,
        )
    ).all()
    for timer in due:
        log_event(
            session,
            instance.id,
            now,
            "timer_fired",
            None,
            bpmn_id=timer.bpmn_id,
            task_id=timer.task_id,
            detail={"due": timer.fire_at.isoformat()},
        )
    return apply_change(
        session, instance, None, now + _TIMER_EPSILON, lambda wf: wf.refresh_timers()
    )


def due_timer_instances(session: Session, now: datetime, limit: int = 100) -> list[int]:
    """Return ids of active instances with a timer due at `now`, oldest due first."""
    return list(
        session.scalars(
            select(ProcessInstance.id)
            .where(
                ProcessInstance.next_timer_at <= now,
                ProcessInstance.status.in_(("running", "waiting")),
            )
            .order_by(ProcessInstance.next_timer_at)
            .limit(limit)
        )
    )


def suspend_instance(
    session: Session, actor: Actor, instance_id: int, *, now: datetime, reason: str = ""
) -> ProcessInstance:
    """Stop an instance from moving: its tasks cannot be completed and its timers wait."""
    _require_repair(actor, "suspend instances")
    instance = lock_instance(session, instance_id)
    _require_active(instance)
    instance.status, instance.updated_at = "suspended", now
    log_event(session, instance.id, now, "suspended", actor.username, detail={"reason": reason})
    session.flush()
    return instance


def resume_instance(
    session: Session, actor: Actor, instance_id: int, *, now: datetime
) -> ChangeOutcome:
    """Let a suspended instance move again, firing any timer that fell due meanwhile."""
    _require_repair(actor, "resume instances")
    instance = lock_instance(session, instance_id)
    if instance.status != "suspended":
        raise Conflict(f"process instance {instance.id} is {instance.status}, not suspended")
    instance.status = "running"
    log_event(session, instance.id, now, "resumed", actor.username)
    return apply_change(session, instance, actor, now, lambda wf: wf.refresh_timers())


def terminate_instance(
    session: Session, actor: Actor, instance_id: int, *, now: datetime, reason: str = ""
) -> ProcessInstance:
    """End an instance for good; its open tasks are cancelled and its timers dropped."""
    _require_repair(actor, "terminate instances")
    instance = lock_instance(session, instance_id)
    if instance.status in ("completed", "terminated"):
        raise Conflict(f"process instance {instance.id} is already {instance.status}")
    instance.status = "terminated"
    log_event(session, instance.id, now, "terminated", actor.username, detail={"reason": reason})
    outcome = apply_change(session, instance, actor, now, cancel_workflow)
    instance.ended_at = now
    _resolve_incidents(session, instance.id, actor, now)
    return outcome.instance


def _resolve_incidents(session: Session, instance_id: int, actor: Actor, now: datetime) -> None:
    for incident in session.scalars(
        select(Incident).where(Incident.instance_id == instance_id, Incident.status == "open")
    ):
        incident.status, incident.resolved_at, incident.resolved_by = (
            "resolved",
            now,
            actor.username,
        )


def retry_instance(
    session: Session,
    actor: Actor,
    instance_id: int,
    *,
    now: datetime,
    data_patch: dict[str, Any] | None = None,
    replace_data: bool = False,
) -> ChangeOutcome:
    """Run the failed task again, optionally after changing its data; close its incident.

    With `replace_data`, `data_patch` becomes the task's whole data instead of being merged in.
    """
    _require_repair(actor, "retry instances")
    instance = lock_instance(session, instance_id)
    if instance.status != "error":
        raise Conflict(f"process instance {instance.id} is {instance.status}, not in error")
    incident = session.scalar(
        select(Incident)
        .where(Incident.instance_id == instance.id, Incident.status == "open")
        .order_by(Incident.id.desc())
        .limit(1)
    )
    _resolve_incidents(session, instance.id, actor, now)
    instance.status = "running"
    log_event(
        session,
        instance.id,
        now,
        "retried",
        actor.username,
        task_id=incident.task_id if incident else None,
        bpmn_id=incident.bpmn_id if incident else None,
        detail={"data": data_patch or {}, "mode": "replace" if replace_data else "merge"},
    )

    def rerun(workflow: BpmnWorkflow) -> None:
        failed = [t for t in _all_tasks(workflow) if t.state == TaskState.ERROR]
        for task in failed:
            if replace_data:
                task.data = deepcopy(data_patch or {})
            else:
                task.data.update(data_patch or {})
            task._set_state(TaskState.READY)
        if not failed and (data_patch or replace_data):
            raise InvalidInput("there is no failed task to apply the data to")

    return apply_change(session, instance, actor, now, rerun)


def _all_tasks(workflow: BpmnWorkflow) -> list[Any]:
    tasks = list(workflow.tasks.values())
    for sp in workflow.subprocesses.values():
        tasks.extend(sp.tasks.values())
    return tasks


def get_instance(session: Session, instance_id: int) -> ProcessInstance:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"process instance {instance_id} does not exist")
    return instance


def open_tasks_of(session: Session, instance_id: int) -> list[HumanTask]:
    return list(
        session.scalars(
            select(HumanTask)
            .where(HumanTask.instance_id == instance_id, HumanTask.status == "open")
            .order_by(HumanTask.id)
        )
    )
