"""What every repair shares: the permission check, the row lock with the version the user saw,
reading a workflow without changing it, and the elements of a process as pages list them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import (
    BoundaryEvent,
    EventBasedGateway,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.errors import Conflict, Forbidden
from engine.models import (
    ProcessDefinition,
    ProcessInstance,
)
from engine.runtime import lock_instance
from engine.specs import load_specs
from engine.state import load_state, remember

LIVE_STATES = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
DONE_STATES = TaskState.COMPLETED | TaskState.CANCELLED
_GATEWAYS = (ExclusiveGateway, InclusiveGateway, ParallelGateway, EventBasedGateway)
T = TypeVar("T")


class StaleInstance(Conflict):
    """The instance changed after the user looked at it."""


def require_repairer(actor: Actor) -> None:
    """Refuse anyone but ops and admins."""
    if not actor.can_repair:
        raise Forbidden("only ops and admins may repair process instances")


def lock_for_repair(
    session: Session, actor: Actor, instance_id: int, expected_version: int | None = None
) -> ProcessInstance:
    """Lock the instance row after checking the actor, and compare its version if given."""
    require_repairer(actor)
    instance = lock_instance(session, instance_id)
    if expected_version is not None and instance.version != expected_version:
        raise StaleInstance(
            f"process instance {instance_id} changed since you looked at it "
            f"(version {expected_version}, now {instance.version}): review it again"
        )
    return instance


def read_workflow(
    session: Session, instance: ProcessInstance, reader: Callable[[BpmnWorkflow], T]
) -> T:
    """Apply `reader` to the instance's workflow, then give the workflow back to the cache."""
    live = load_state(session, instance)
    try:
        return reader(live.workflow)
    finally:
        remember(instance, live)


def every_task(workflow: BpmnWorkflow) -> list[Task]:
    tasks = list(workflow.tasks.values())
    for sp in workflow.subprocesses.values():
        tasks.extend(sp.tasks.values())
    return tasks


def failed_tasks(workflow: BpmnWorkflow) -> list[Task]:
    return [t for t in every_task(workflow) if t.state == TaskState.ERROR]


@dataclass(frozen=True)
class Element:
    """One BPMN element of a process, as a repair page lists it."""

    bpmn_id: str
    name: str
    kind: str


def element_of(spec: Any) -> Element:
    return Element(spec.bpmn_id, spec.bpmn_name or spec.bpmn_id, type(spec).__name__)


def is_target(spec: Any) -> bool:
    if getattr(spec, "bpmn_id", None) is None or isinstance(spec, _GATEWAYS):
        return False
    # A boundary event lives on its activity; a start event has no way in.
    return not isinstance(spec, BoundaryEvent | StartEvent)


def specs_of(definition: ProcessDefinition) -> tuple[Any, dict[str, Any]]:
    return load_specs(definition.spec_hash, lambda: definition.spec_json)


def every_spec(spec: Any, subprocess_specs: Mapping[str, Any]) -> Iterable[Any]:
    yield from spec.task_specs.values()
    for sub in subprocess_specs.values():
        yield from sub.task_specs.values()
