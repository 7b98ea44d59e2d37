"""Plain, JSON-ready views of instances and tasks for pages, the API and the CLI."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import HumanTask, Incident, InstanceEvent, ProcessInstance


def describe_task(task: HumanTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "instance_id": task.instance_id,
        "process_id": task.process_id,
        "bpmn_id": task.bpmn_id,
        "title": task.title,
        "lane": task.lane,
        "candidate_role": task.candidate_role,
        "candidate_team": task.candidate_team,
        "candidate_user": task.candidate_user,
        "assignee": task.assignee,
        "status": task.status,
        "form": task.form,
        "instructions": task.instructions,
        "due_at": task.due_at,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
        "completed_by": task.completed_by,
    }


def describe_instance(
    session: Session, instance: ProcessInstance, *, history: bool = False
) -> dict[str, Any]:
    """Return the instance with its data, open tasks, open incidents and (optionally) history."""
    doc = json.loads(instance.state or "{}")
    open_tasks = session.scalars(
        select(HumanTask)
        .where(HumanTask.instance_id == instance.id, HumanTask.status == "open")
        .order_by(HumanTask.id)
    )
    incidents = session.scalars(
        select(Incident).where(Incident.instance_id == instance.id, Incident.status == "open")
    )
    view: dict[str, Any] = {
        "id": instance.id,
        "process_id": instance.process_id,
        "version": instance.definition.version,
        "status": instance.status,
        "business_key": instance.business_key,
        "started_by": instance.started_by,
        "started_at": instance.started_at,
        "updated_at": instance.updated_at,
        "ended_at": instance.ended_at,
        "next_timer_at": instance.next_timer_at,
        "data": _last_task_data(session, instance, doc),
        "open_tasks": [describe_task(t) for t in open_tasks],
        "incidents": [
            {
                "id": i.id,
                "bpmn_id": i.bpmn_id,
                "line": i.line,
                "error_line": i.error_line,
                "error_type": i.error_type,
                "message": i.message,
                "created_at": i.created_at,
            }
            for i in incidents
        ],
    }
    if history:
        events = session.scalars(
            select(InstanceEvent)
            .where(InstanceEvent.instance_id == instance.id)
            .order_by(InstanceEvent.id)
        )
        view["history"] = [
            {"at": e.at, "kind": e.kind, "actor": e.actor, "bpmn_id": e.bpmn_id, "detail": e.detail}
            for e in events
        ]
    return view


def _last_task_data(session: Session, instance: ProcessInstance, doc: dict[str, Any]) -> Any:
    from engine.state import load_state, remember

    if not doc.get("root"):
        return {}
    live = load_state(session, instance)
    try:
        workflow = live.workflow
        task = workflow.last_task or workflow.task_tree
        return dict(task.data)
    finally:
        remember(instance, live)
