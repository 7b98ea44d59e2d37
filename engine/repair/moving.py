"""Move a token: cancel the live task(s) at one element and continue at another element of the
same (sub)process, then run the automatic steps after it."""

from __future__ import annotations

from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import (
    BoundaryEvent,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import (
    Incident,
    ProcessDefinition,
    ProcessInstance,
)
from engine.repair.common import (
    LIVE_STATES,
    Element,
    element_of,
    every_spec,
    every_task,
    failed_tasks,
    is_target,
    lock_for_repair,
    read_workflow,
    require_repairer,
    specs_of,
)
from engine.runtime import ChangeOutcome, apply_change, log_event
from engine.state import load_state


@dataclass(frozen=True)
class Token:
    """Where an instance is: an element with a live task, and what may be moved there."""

    element: Element
    state: str
    targets: tuple[Element, ...]


def _is_source(task: Task) -> bool:
    spec = task.task_spec
    if getattr(spec, "bpmn_id", None) is None or not task.has_state(LIVE_STATES):
        return False
    if isinstance(spec, SubWorkflowTask | BoundaryEvent):
        return False  # move the tokens inside the subprocess, or the activity itself
    return not (task.parent is not None and task.parent.task_spec.bpmn_id == spec.bpmn_id)


def _targets_in(wf_spec: Any) -> tuple[Element, ...]:
    found = [element_of(s) for s in wf_spec.task_specs.values() if is_target(s)]
    return tuple(sorted(found, key=lambda e: (e.name.lower(), e.bpmn_id)))


def _sources(workflow: BpmnWorkflow) -> list[Task]:
    return [t for t in every_task(workflow) if _is_source(t)]


def tokens_of(session: Session, actor: Actor, instance_id: int) -> list[Token]:
    """List the elements an instance waits at, each with the elements its token may move to."""
    require_repairer(actor)
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"process instance {instance_id} does not exist")
    if instance.status in ("completed", "terminated"):
        return []

    def collect(workflow: BpmnWorkflow) -> list[Token]:
        tokens: dict[str, Token] = {}
        for task in _sources(workflow):
            element = element_of(task.task_spec)
            targets = _targets_in(task.workflow.spec)
            others = tuple(t for t in targets if t.bpmn_id != element.bpmn_id)
            state = TaskState.get_name(task.state)
            tokens.setdefault(element.bpmn_id, Token(element, state, others))
        return sorted(tokens.values(), key=lambda t: t.element.bpmn_id)

    return read_workflow(session, instance, collect)


def _cancel(task: Task) -> None:
    if task.state == TaskState.ERROR:  # the library counts a failed task as finished
        task._set_state(TaskState.CANCELLED)
        task._drop_children(force=True)
        task.task_spec._on_cancel(task)
    else:
        task.cancel()


def _entry_spec(wf_spec: Any, bpmn_id: str) -> Any:
    """Return the spec a token enters an element by (its boundary-event split if it has one)."""
    return wf_spec.task_specs.get(f"{bpmn_id}.BoundaryEventSplit") or wf_spec.task_specs[bpmn_id]


def _move(workflow: BpmnWorkflow, source_id: str, target_id: str) -> Task:
    """Move the token; return the finished task the new one hangs under."""
    at_source = [t for t in _sources(workflow) if t.task_spec.bpmn_id == source_id]
    if not at_source:
        raise InvalidInput(
            f"there is no live token at '{source_id}'", {"source": [f"no token at '{source_id}'"]}
        )
    owner = at_source[0].workflow
    target_spec = next(
        (s for s in owner.spec.task_specs.values() if getattr(s, "bpmn_id", None) == target_id),
        None,
    )
    if target_spec is None or not is_target(target_spec):
        reason = (
            f"'{target_id}' is not a task or event of the same process as '{source_id}'"
            if target_spec is None
            else f"'{target_id}' is a {type(target_spec).__name__}: a token can only move to a "
            "task or an intermediate or end event"
        )
        raise InvalidInput(reason, {"target": [reason]})
    data = deepcopy(at_source[0].data)
    anchor = at_source[0].parent
    for task in at_source:
        if task.workflow is not owner:
            continue
        if isinstance(task.parent.task_spec, BoundaryEventSplit):
            anchor = task.parent.parent  # leave the activity with its boundary events
            for sibling in task.parent.children:
                _cancel(sibling)
        else:
            _cancel(task)
    entered = Task(owner, _entry_spec(owner.spec, target_id), anchor, state=TaskState.FUTURE)
    entered.data = data
    entered.task_spec._predict(entered, mask=TaskState.PREDICTED_MASK | TaskState.FUTURE)
    entered.task_spec._update(entered)
    return anchor


def move_token(
    session: Session,
    actor: Actor,
    instance_id: int,
    source: str,
    target: str,
    *,
    now: datetime,
    reason: str = "",
    expected_version: int | None = None,
) -> ChangeOutcome:
    """Cancel the live task(s) at `source` and continue the instance at `target`."""
    instance = lock_for_repair(session, actor, instance_id, expected_version)
    if instance.status not in ("running", "waiting", "error"):
        raise Conflict(f"process instance {instance.id} is {instance.status}: resume it first")
    was_error = instance.status == "error"
    live = load_state(session, instance)

    def change(workflow: BpmnWorkflow) -> None:
        # The task the new one hangs under did not change state, but its list of children did.
        live.touched.add(_move(workflow, source, target).id)

    outcome = apply_change(session, instance, actor, now, change, live=live)
    log_event(
        session,
        instance.id,
        now,
        "moved",
        actor.username,
        bpmn_id=target,
        detail={"from": source, "to": target, "reason": reason},
    )
    session.flush()
    if was_error:
        _settle_error_status(session, actor, instance, now)
    return outcome


def _settle_error_status(
    session: Session, actor: Actor, instance: ProcessInstance, now: datetime
) -> None:
    """Keep an instance in error while a failed task remains; close incidents otherwise."""
    failed = {str(t.id) for t in read_workflow(session, instance, failed_tasks)}
    for incident in session.scalars(
        select(Incident).where(Incident.instance_id == instance.id, Incident.status == "open")
    ):
        if incident.task_id is not None and incident.task_id not in failed:
            incident.status, incident.resolved_at = "resolved", now
            incident.resolved_by = actor.username
    if failed and instance.status not in ("suspended", "terminated", "completed"):
        instance.status = "error"
    session.flush()


def movable_elements(
    session: Session, actor: Actor, definition_ids: Iterable[int]
) -> tuple[list[Element], list[Element]]:
    """Return the elements tokens may be moved from and to, over the given versions."""
    require_repairer(actor)
    sources: dict[str, Element] = {}
    targets: dict[str, Element] = {}
    for definition in session.scalars(
        select(ProcessDefinition).where(ProcessDefinition.id.in_(sorted(set(definition_ids))))
    ):
        spec, subprocess_specs = specs_of(definition)
        for task_spec in every_spec(spec, subprocess_specs):
            if getattr(task_spec, "bpmn_id", None) is None:
                continue
            if not isinstance(task_spec, SubWorkflowTask | BoundaryEvent | StartEvent):
                sources.setdefault(task_spec.bpmn_id, element_of(task_spec))
            if is_target(task_spec):
                targets.setdefault(task_spec.bpmn_id, element_of(task_spec))

    def ordered(found: dict[str, Element]) -> list[Element]:
        return sorted(found.values(), key=lambda e: (e.name.lower(), e.bpmn_id))

    return ordered(sources), ordered(targets)
