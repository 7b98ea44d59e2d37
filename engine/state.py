"""Store and restore instance state: a small workflow document plus one row per library task.

Saving rewrites only tasks that changed since the last save (or are unfinished), so the cost
of a step does not grow with the instance's history. The spec is never stored here: it comes
from the definition version, restored once and cached.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import (
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from engine.change_rows import ChangeRows
from engine.db import UTCDateTime, table_of
from engine.driver import DriverStatement
from engine.models import InstanceTaskState, ProcessDefinition, ProcessInstance
from engine.specs import REGISTRY, SERIALIZER_VERSION, load_specs
from engine.sync import DERIVED_SELECTS, DerivedRows

# Definite, unfinished states: such tasks may change data without changing state.
_LIVE = TaskState.FUTURE | TaskState.WAITING | TaskState.READY | TaskState.STARTED | TaskState.ERROR


@dataclass
class LiveWorkflow:
    """A restored workflow and what its last save wrote, for the next incremental save."""

    workflow: BpmnWorkflow
    saved_at: float
    stored_tasks: set[UUID] = field(default_factory=set)
    # Tasks whose data was edited outside a state change (ops data fixes).
    touched: set[UUID] = field(default_factory=set)
    # The derived rows as of the last save; None when they must be read from the database.
    derived: DerivedRows | None = None


class _LiveCache:
    """Recently saved workflows by (instance id, state token), taken out while in use.

    A token is random per save, so a rolled-back save can never be mistaken for stored state.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.items: OrderedDict[tuple[int, str], LiveWorkflow] = OrderedDict()
        self.lock = threading.Lock()

    def take(self, instance_id: int, token: str) -> LiveWorkflow | None:
        with self.lock:
            return self.items.pop((instance_id, token), None)

    def put(self, instance_id: int, token: str, live: LiveWorkflow) -> None:
        with self.lock:
            self.items[(instance_id, token)] = live
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


LIVE_CACHE = _LiveCache()


def _workflow_fields(wf: Any) -> dict[str, Any]:
    return {
        "data": REGISTRY.convert(REGISTRY.clean(wf.data)),
        "correlations": wf.correlations,
        "last_task": str(wf.last_task.id) if wf.last_task is not None else None,
        "success": wf.success,
        "completed": wf.completed,
        "root": str(wf.task_tree.id),
    }


def _document(workflow: BpmnWorkflow) -> str:
    doc = _workflow_fields(workflow)
    doc["bpmn_events"] = REGISTRY.convert(workflow.bpmn_events)
    doc["subprocesses"] = {
        str(task_id): {**_workflow_fields(sp), "spec": sp.spec.name}
        for task_id, sp in workflow.subprocesses.items()
    }
    return json.dumps(doc, separators=(",", ":"))


def _workflows(workflow: BpmnWorkflow) -> list[tuple[str, Any]]:
    return [("", workflow), *((str(k), sp) for k, sp in workflow.subprocesses.items())]


def _changed_tasks(live: LiveWorkflow) -> dict[UUID, tuple[str, Any]]:
    """Return the tasks a save must write: changed since the last save, or live and definite.

    Finished tasks do not change unless their state does; predicted ones (MAYBE/LIKELY) carry
    no data until they become definite, which is a state change. A task is also rewritten when
    its parent is, because its data is stored as a delta against the parent's.
    """
    saved_at, stored, touched = live.saved_at, live.stored_tasks, live.touched
    changed: dict[UUID, tuple[str, Any]] = {}
    for key, wf in _workflows(live.workflow):
        for task_id, task in wf.tasks.items():
            if (
                task.last_state_change >= saved_at
                or task._state & _LIVE
                or task_id not in stored
                or task_id in touched
                or (task._parent is not None and task._parent in changed)
            ):
                changed[task_id] = (key, task)
    return changed


_TASK_ROWS = table_of(InstanceTaskState)


def _loads(text: str) -> Any:
    """Parse stored JSON quickly; rows the strict parser refuses (NaN, Infinity) still load."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def save_state(
    session: Session, instance: ProcessInstance, live: LiveWorkflow, writes: ChangeRows
) -> None:
    """Write the workflow document and every task row that changed since the last save."""
    changed = _changed_tasks(live)
    current: set[UUID] = set(live.workflow.tasks)
    for sp in live.workflow.subprocesses.values():
        current.update(sp.tasks)
    live.saved_at = time.time()
    removed = live.stored_tasks - current
    # Plain values, sent with the change's other rows: the ORM's machinery costs more than they.
    writes.removed_states.extend(str(t) for t in removed)
    writes.states.extend(
        {
            "task_id": str(task_id),
            "workflow_key": key,
            "body": json.dumps(REGISTRY.convert(task), separators=(",", ":")),
        }
        for task_id, (key, task) in changed.items()
    )
    live.stored_tasks = current
    live.touched.clear()
    instance.state = _document(live.workflow)
    instance.serializer_version = SERIALIZER_VERSION
    instance.state_token = uuid.uuid4().hex


def _as_stored(value: Any) -> Any:
    return value


# Stored JSON that names no registered type: the registry's walk would only copy it.
_PLAIN = "_plain"


def _restore_task(wf: Any, body: dict[str, Any], task_id: UUID, ids: dict[str, UUID]) -> Task:
    """Rebuild one task the way the library's TaskConverter does, reusing parsed ids.

    A restore of a long instance rebuilds hundreds of tasks; parsing every id once instead of
    up to four times, and skipping the registry's generic walk for plain values, halves the
    cost. The stored body is the converter's own format (`REGISTRY.convert(task)`); `_PLAIN`
    is set on bodies whose text holds no registered type, whose values are then used as read.
    """
    restore = _as_stored if body.get(_PLAIN) else REGISTRY.restore
    spec = wf.spec.task_specs.get(body["task_spec"])
    task = Task(wf, spec, state=body["state"], id=task_id)
    parent_id = body["parent"]
    task._parent = ids[parent_id] if parent_id is not None else None
    children = []
    for child in body["children"]:
        child_id = ids.get(child)
        if child_id is None:
            child_id = ids[child] = UUID(child)
        children.append(child_id)
    task._children = children
    task.last_state_change = body["last_state_change"]
    task.triggered = body["triggered"]
    internal = body["internal_data"]
    task.internal_data = restore(internal) if internal else {}
    if isinstance(spec, CatchingEvent) and task._state & TaskState.WAITING:
        wf.top_workflow.event_manager.add_task(task)
    delta = body.get("delta")
    parent = task.parent
    if delta and parent is not None:
        data = DeepMerge.merge({}, parent.data)
        updates = delta.get("updates")
        if updates:
            data.update(restore(updates))
        for key in delta.get("deletions") or ():
            data.pop(key, None)
    else:
        data = restore(body["data"])
    task.data = data
    return task


def _restore_tasks(wf: Any, bodies: dict[str, dict[str, Any]], root_id: str) -> None:
    # Parents first: a task's data is a delta against its parent's data.
    wf.tasks = {}
    ids = {root_id: UUID(root_id)}
    queue = deque([root_id])
    while queue:
        tid = queue.popleft()
        body = bodies[tid]
        _restore_task(wf, body, ids[tid], ids)
        queue.extend(body["children"])
    wf.task_tree = wf.tasks[ids[root_id]]


def _restore_fields(wf: Any, doc: dict[str, Any]) -> None:
    wf.success = doc["success"]
    wf.completed = doc.get("completed", False)
    wf.correlations = doc.get("correlations", {})
    if doc["last_task"]:
        wf.last_task = wf.tasks.get(UUID(doc["last_task"]))
    wf.data = REGISTRY.restore(doc.get("data", {}))


_STATE_ROWS = select(
    literal("state"),
    _TASK_ROWS.c.task_id,
    _TASK_ROWS.c.workflow_key,
    _TASK_ROWS.c.body,
    cast(null(), UTCDateTime()),
).where(_TASK_ROWS.c.instance_id == bindparam("instance_id"))
# Read on the driver's cursor: a long instance has hundreds of rows.
_ROWS = DriverStatement(_STATE_ROWS)
# With the derived rows (see sync.DERIVED_SELECTS) in the same statement: a change that restores
# its workflow needs both, and this saves it a round trip.
_ROWS_AND_DERIVED = DriverStatement(union_all(_STATE_ROWS, *DERIVED_SELECTS))


def load_state(
    session: Session, instance: ProcessInstance, *, with_derived: bool = False
) -> LiveWorkflow:
    """Return the instance's workflow: from the cache when it is current, else from the rows.

    `with_derived` also reads which open tasks, timers and subscriptions the instance has,
    when they are not remembered with a cached workflow.
    """
    cached = LIVE_CACHE.take(instance.id, instance.state_token)
    if cached is not None:
        return cached
    if instance.serializer_version != SERIALIZER_VERSION:
        raise RuntimeError(
            f"instance {instance.id} was stored with serializer {instance.serializer_version}; "
            f"this engine reads {SERIALIZER_VERSION}: migrate it first"
        )
    definition = instance.definition
    spec, subprocess_specs = load_specs(definition.spec_hash, lambda: definition.spec_json)
    loaded_at = time.time()
    doc = _loads(instance.state)
    bodies: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    derived = DerivedRows() if with_derived else None
    statement = _ROWS_AND_DERIVED if with_derived else _ROWS
    for kind, task_id, key, body, fire_at in statement.fetch(
        session.connection(), {"instance_id": instance.id}
    ):
        if kind == "state":
            parsed = bodies[key][task_id] = _loads(body)
            if '"typename"' not in body:
                parsed[_PLAIN] = True
        elif derived is not None:
            derived.add(kind, task_id, key, fire_at)
    workflow = BpmnWorkflow(spec, subprocess_specs, deserializing=True)
    _restore_tasks(workflow, bodies[""], doc["root"])
    _restore_fields(workflow, doc)
    _restore_subprocesses(workflow, workflow, doc["subprocesses"], bodies)
    workflow.bpmn_events = REGISTRY.restore(doc.get("bpmn_events", []))
    stored = set(workflow.tasks)
    for sp in workflow.subprocesses.values():
        stored.update(sp.tasks)
    if len(stored) != sum(len(per_wf) for per_wf in bodies.values()):
        # Rows no task refers to any more: remember them so that the next save deletes them.
        stored.update(UUID(tid) for per_wf in bodies.values() for tid in per_wf)
    return LiveWorkflow(workflow, loaded_at, stored, derived=derived)


def _restore_subprocesses(
    top: BpmnWorkflow, parent: Any, docs: dict[str, Any], bodies: dict[str, dict[str, Any]]
) -> None:
    for task in list(parent.tasks.values()):
        key = str(task.id)
        if not isinstance(task.task_spec, SubWorkflowTask) or key not in docs:
            continue
        sub_doc = docs[key]
        sp = BpmnSubWorkflow(
            top.subprocess_specs[task.task_spec.spec], task.id, top, deserializing=True
        )
        _restore_tasks(sp, bodies[key], sub_doc["root"])
        _restore_fields(sp, sub_doc)
        top.subprocesses[task.id] = sp
        sp.completed_event.connect(task.task_spec._on_subworkflow_completed, task)
        _restore_subprocesses(top, sp, docs, bodies)


def new_live_workflow(session: Session, definition_id: int, spec_hash: str) -> LiveWorkflow:
    """Create the workflow for a new instance of a definition version, from its cached spec."""

    def read_json() -> str:
        return (
            session.scalar(
                select(ProcessDefinition.spec_json).where(ProcessDefinition.id == definition_id)
            )
            or ""
        )

    spec, subprocess_specs = load_specs(spec_hash, read_json)
    return LiveWorkflow(
        BpmnWorkflow(spec, subprocess_specs), time.time(), set(), derived=DerivedRows()
    )


def remember(instance: ProcessInstance, live: LiveWorkflow) -> None:
    """Keep a just-saved workflow for the next change of the same instance."""
    LIVE_CACHE.put(instance.id, instance.state_token, live)
