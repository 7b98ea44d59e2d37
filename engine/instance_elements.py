"""Per-element views for the ops console: element states of one instance, statistics per element.

The diagram of an instance colours each element by its state; the heatmap of a version shows how
many of its unfinished instances wait or failed at each element, and since when on average.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.errors import NotFound
from engine.instance_queries import UNFINISHED, require_console_access
from engine.models import (
    HumanTask,
    Incident,
    InstanceTaskState,
    InstanceTimer,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
)
from engine.specs import load_specs

# SpiffWorkflow's TaskState bits, as stored in each task row's body.
_READY_OR_WAITING = 8 | 16 | 32  # WAITING, READY, STARTED
_COMPLETED, _ERROR, _CANCELLED = 64, 128, 256
ELEMENT_STATES = ("error", "active", "completed", "cancelled")  # strongest first


def element_states(session: Session, actor: Actor, instance_id: int) -> dict[str, str]:
    """Map each bpmn id the instance reached to error, active, completed or cancelled."""
    require_console_access(actor)
    states: dict[str, str] = {}
    bodies = session.scalars(
        select(InstanceTaskState.body).where(InstanceTaskState.instance_id == instance_id)
    )
    for body in bodies:
        task = json.loads(body)
        state = _element_state(int(task.get("state", 0)))
        if state is not None:
            _keep_strongest(states, str(task.get("task_spec")), state)
    for bpmn_id in session.scalars(
        select(Incident.bpmn_id).where(
            Incident.instance_id == instance_id, Incident.status == "open"
        )
    ):
        if bpmn_id:
            _keep_strongest(states, bpmn_id, "error")
    return states


def _element_state(state: int) -> str | None:
    if state & _ERROR:
        return "error"
    if state & _READY_OR_WAITING:
        return "active"
    if state & _COMPLETED:
        return "completed"
    if state & _CANCELLED:
        return "cancelled"
    return None  # predicted (FUTURE, LIKELY, MAYBE): not reached


def _keep_strongest(states: dict[str, str], bpmn_id: str, state: str) -> None:
    current = states.get(bpmn_id)
    if current is None or ELEMENT_STATES.index(state) < ELEMENT_STATES.index(current):
        states[bpmn_id] = state


@dataclass
class ElementStatistics:
    """Instances of one definition at one element: how many, and since when on average."""

    bpmn_id: str
    waiting: int = 0
    average_wait: timedelta = field(default_factory=timedelta)
    errors: int = 0


def _epoch(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def element_statistics(
    session: Session, actor: Actor, definition_id: int, *, now: datetime
) -> list[ElementStatistics]:
    """Count the instances of one definition waiting or failed at each element.

    Each open task, waiting timer or message subscription counts once (an instance waits at an
    element once unless the element is a parallel multi-instance task). A human task waits
    since it opened; a timer or message since it was registered (or, for rows written before
    that was recorded, since the instance last changed); a failure since its incident.
    """
    require_console_access(actor)
    elements = _element_ids(session, definition_id)
    # Every live row with its instance and start (None: the instance's last change), then one
    # join with the version's unfinished instances: live rows belong to those only.
    rows = union_all(
        select(
            literal("wait").label("kind"),
            HumanTask.instance_id,
            HumanTask.bpmn_id,
            HumanTask.created_at.label("since"),
        ).where(HumanTask.status == "open", HumanTask.bpmn_id.in_(elements)),
        select(
            literal("wait"),
            InstanceTimer.instance_id,
            InstanceTimer.bpmn_id,
            InstanceTimer.created_at,
        ).where(InstanceTimer.status == "waiting", InstanceTimer.bpmn_id.in_(elements)),
        select(
            literal("wait"),
            MessageSubscription.instance_id,
            MessageSubscription.bpmn_id,
            MessageSubscription.created_at,
        ).where(MessageSubscription.bpmn_id.in_(elements)),
        select(literal("error"), Incident.instance_id, Incident.bpmn_id, Incident.created_at).where(
            Incident.status == "open", Incident.bpmn_id.in_(elements)
        ),
    ).subquery()
    pi = ProcessInstance
    since = _epoch(session, func.coalesce(rows.c.since, pi.updated_at))
    result = session.execute(
        select(rows.c.kind, rows.c.bpmn_id, func.count(), func.avg(since))
        .join(pi, pi.id == rows.c.instance_id)
        .where(pi.definition_id == definition_id, pi.status.in_(UNFINISHED))
        .group_by(rows.c.kind, rows.c.bpmn_id)
    )
    return _combine(result, now)


def _element_ids(session: Session, definition_id: int) -> list[str]:
    """Return the ids of every element of a version and of the processes it calls."""
    definition = session.get(ProcessDefinition, definition_id)
    if definition is None:
        raise NotFound(f"process version {definition_id} does not exist")
    spec, called = load_specs(definition.spec_hash, lambda: definition.spec_json)
    # Only rows at these elements can belong to the version: the index reads no others.
    return sorted({name for each in (spec, *called.values()) for name in each.task_specs})


def _combine(rows: Iterable[Any], now: datetime) -> list[ElementStatistics]:
    stats: dict[str, ElementStatistics] = {}
    for kind, bpmn_id, count, average_since in rows:
        entry = stats.setdefault(bpmn_id, ElementStatistics(bpmn_id))
        if kind == "error":
            entry.errors = int(count)
        else:
            entry.waiting = int(count)
            entry.average_wait = timedelta(seconds=round(now.timestamp() - float(average_since)))
    return sorted(stats.values(), key=lambda s: s.bpmn_id)
