"""Migrate an instance to another version of its process, after checking that every element
holding a live token (and every one its history passes through) exists there unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select, true
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import (
    HumanTask,
    InstanceTimer,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
)
from engine.repair.common import (
    DONE_STATES,
    LIVE_STATES,
    every_spec,
    lock_for_repair,
    read_workflow,
    require_repairer,
    specs_of,
)
from engine.runtime import ChangeOutcome, apply_change, log_event
from engine.state import load_state


@dataclass(frozen=True)
class Compatibility:
    """Whether one instance can move to a target version, and what blocks it if not."""

    instance_id: int
    from_version: int
    to_version: int
    blockers: tuple[str, ...]
    element_ids: tuple[str, ...]

    @property
    def compatible(self) -> bool:
        return not self.blockers


def migration_targets(session: Session, instance: ProcessInstance) -> list[ProcessDefinition]:
    """Return the other deployed versions of the instance's process, newest first."""
    return list(
        session.scalars(
            select(ProcessDefinition)
            .where(
                ProcessDefinition.process_id == instance.process_id,
                ProcessDefinition.id != instance.definition_id,
            )
            .order_by(ProcessDefinition.version.desc())
        )
    )


def _target_definition(session: Session, instance: ProcessInstance, target_id: int) -> Any:
    target = session.get(ProcessDefinition, target_id)
    if target is None:
        raise NotFound(f"process version {target_id} does not exist")
    if target.process_id != instance.process_id:
        raise InvalidInput(
            f"the chosen version is v{target.version} of '{target.process_id}', "
            f"not of '{instance.process_id}'",
            {"target": ["must be a version of the same process"]},
        )
    return target


def _is_live(task: Task) -> bool:
    if task.has_state(LIVE_STATES):
        return True
    parent = task.parent
    return not task.has_state(DONE_STATES) and (parent is None or parent.has_state(DONE_STATES))


def _label(name: str) -> str:
    return name.split(".", 1)[0]


def _task_blockers(task: Task, new_specs: Any, version: int) -> tuple[str, str] | None:
    """Return (element id, reason) when this task cannot be re-attached to the new spec."""
    old = task.task_spec
    new = new_specs.task_specs.get(old.name)
    live = _is_live(task)
    if new is None:
        if not live and not task.has_state(DONE_STATES):
            return None  # a prediction: it is dropped and predicted again
        label = _label(old.name)
        if old.name.endswith(".BoundaryEventSplit"):
            return label, f"the boundary events on '{label}' differ in version {version}"
        what = "a token waits at" if live else "the history passes through"
        return label, f"{what} '{label}', which version {version} lacks"
    if not live:
        return None
    if type(new) is not type(old) or getattr(new, "bpmn_id", None) != getattr(old, "bpmn_id", None):
        return _label(old.name), (
            f"'{_label(old.name)}' is a {type(old).__name__} here but a "
            f"{type(new).__name__} in version {version}"
        )
    if isinstance(old, SubWorkflowTask) and new.spec != old.spec:
        return _label(
            old.name
        ), f"'{old.name}' calls '{old.spec}' here, '{new.spec}' in version {version}"
    boundary = f"{old.bpmn_id}.BoundaryEventSplit" if old.bpmn_id else None
    if boundary and (boundary in task.workflow.spec.task_specs) != (
        boundary in new_specs.task_specs
    ):
        return old.bpmn_id, f"the boundary events on '{old.bpmn_id}' differ in version {version}"
    return None


def _compatibility(
    session: Session, instance: ProcessInstance, target: ProcessDefinition
) -> Compatibility:
    spec, subprocess_specs = specs_of(target)
    found: dict[str, str] = {}

    def check(workflow: BpmnWorkflow) -> None:
        for wf in [workflow, *workflow.subprocesses.values()]:
            new_specs = spec if wf is workflow else subprocess_specs.get(wf.spec.name)
            if new_specs is None:
                missing = f"version {target.version} does not contain process '{wf.spec.name}'"
                found.setdefault(wf.spec.name, missing)
                continue
            for task in wf.tasks.values():
                blocker = _task_blockers(task, new_specs, target.version)
                if blocker is not None:
                    found.setdefault(*blocker)

    read_workflow(session, instance, check)
    # The derived rows mirror the live tasks; checked too, as the inbox and the timers see them.
    known = {getattr(s, "bpmn_id", None) for s in every_spec(spec, subprocess_specs)}
    for column, where, reason in (
        (HumanTask.bpmn_id, HumanTask.status == "open", "the open task '%s' is not in version %s"),
        (
            InstanceTimer.bpmn_id,
            InstanceTimer.status == "waiting",
            "the timer '%s' is not in version %s",
        ),
        (MessageSubscription.bpmn_id, true(), "the message catch '%s' is not in version %s"),
    ):
        table = column.class_
        for bpmn_id in session.scalars(
            select(column).where(table.instance_id == instance.id, where).distinct()
        ):
            if bpmn_id not in known:
                found.setdefault(bpmn_id, reason % (bpmn_id, target.version))
    return Compatibility(
        instance.id,
        instance.definition.version,
        target.version,
        tuple(found[k] for k in sorted(found)),
        tuple(sorted(found)),
    )


def check_migration(
    session: Session, actor: Actor, instance_id: int, target_definition_id: int
) -> Compatibility:
    """Tell whether an instance can move to another version of its process, and why not."""
    require_repairer(actor)
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"process instance {instance_id} does not exist")
    target = _target_definition(session, instance, target_definition_id)
    if target.id == instance.definition_id:
        return Compatibility(instance.id, target.version, target.version, ("already on it",), ())
    if instance.status in ("completed", "terminated"):
        return Compatibility(
            instance.id,
            instance.definition.version,
            target.version,
            (f"the instance is {instance.status}",),
            (),
        )
    return _compatibility(session, instance, target)


def _reattach(workflow: BpmnWorkflow, spec: Any, subprocess_specs: dict[str, Any]) -> None:
    workflows = [workflow, *workflow.subprocesses.values()]
    live = [t for wf in workflows for t in wf.tasks.values() if _is_live(t)]
    for task in live:  # predictions follow the old diagram: drop them, predict again below
        for child in list(task.children):
            if (
                not child.has_state(DONE_STATES | TaskState.ERROR)
                and child.id in child.workflow.tasks
            ):
                child.workflow._remove_task(child.id)
    workflow.spec, workflow.subprocess_specs = spec, subprocess_specs
    for wf in workflows:
        if wf is not workflow:
            wf.spec = subprocess_specs[wf.spec.name]
        for task in wf.tasks.values():
            task.task_spec = wf.spec.task_specs[task.task_spec.name]
    for task in live:
        state = task._state
        # The library predicts only from unfinished tasks, and counts a failed one as finished.
        task._state = TaskState.READY if state == TaskState.ERROR else state
        task.task_spec._predict(task, mask=TaskState.NOT_FINISHED_MASK)
        task._state = state


def migrate_instance(
    session: Session,
    actor: Actor,
    instance_id: int,
    target_definition_id: int,
    *,
    now: datetime,
    expected_version: int | None = None,
) -> ChangeOutcome:
    """Re-attach an instance to another version of its process after a compatibility check.

    :raises Conflict: naming every element that blocks the move; nothing changes then.
    """
    instance = lock_for_repair(session, actor, instance_id, expected_version)
    target = _target_definition(session, instance, target_definition_id)
    if target.id == instance.definition_id:
        raise Conflict(f"process instance {instance.id} is already on version {target.version}")
    if instance.status in ("completed", "terminated"):
        raise Conflict(f"process instance {instance.id} is {instance.status}")
    check = _compatibility(session, instance, target)
    if not check.compatible:
        raise Conflict(
            f"process instance {instance.id} cannot move to version {target.version}: "
            + "; ".join(check.blockers)
        )
    spec, subprocess_specs = specs_of(target)
    status, from_version = instance.status, instance.definition.version
    log_event(
        session,
        instance.id,
        now,
        "migrated",
        actor.username,
        detail={
            "from_version": from_version,
            "to_version": target.version,
            "from_definition": instance.definition_id,
            "to_definition": target.id,
        },
    )
    live = load_state(session, instance)
    instance.definition_id, instance.definition = target.id, target
    outcome = apply_change(
        session, instance, actor, now, lambda wf: _reattach(wf, spec, subprocess_specs), live=live
    )
    _refresh_open_tasks(session, instance, target)
    if status in ("error", "suspended"):
        instance.status = status  # migrating repairs nothing else
        session.flush()
    return outcome


def _refresh_open_tasks(
    session: Session, instance: ProcessInstance, target: ProcessDefinition
) -> None:
    """Give open inbox rows the new version's title and form for their element."""
    spec, subprocess_specs = specs_of(target)
    every = every_spec(spec, subprocess_specs)
    by_id = {s.bpmn_id: s for s in every if getattr(s, "bpmn_id", None)}
    for row in session.scalars(
        select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == "open")
    ):
        element = by_id.get(row.bpmn_id)
        if element is None:
            continue
        props = dict((getattr(element, "extensions", {}) or {}).get("properties", {}))
        row.title = (element.bpmn_name or element.bpmn_id)[:255]
        row.form = props.get("formJsonSchemaFilename")
        row.ui_form = props.get("formUiSchemaFilename")
        row.properties = props
    session.flush()
