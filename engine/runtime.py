"""The one path every instance change takes: lock, restore, change, step, sync, save."""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.defaults import ScriptTask
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from engine.actor import Actor
from engine.change_rows import ChangeRows
from engine.clock import frozen_at
from engine.driver import DriverStatement, adopt_row, columns_of, driver_errors
from engine.errors import Conflict, EngineError, NotFound
from engine.models import HumanTask, Incident, InstanceEvent, ProcessDefinition, ProcessInstance
from engine.operations import OperationContext
from engine.scripting import StagecraftScriptEngine
from engine.state import LiveWorkflow, load_state, remember, save_state
from engine.stepping import run_automatic_tasks
from engine.sync import read_derived_rows, sync_human_tasks, sync_waits
from engine.writes import send_change

ACTIVE_STATUSES = ("running", "waiting")
Change = Callable[[BpmnWorkflow], None]


@dataclass
class ChangeOutcome:
    instance: ProcessInstance
    new_tasks: list[HumanTask] = field(default_factory=list)
    incident: Incident | None = None


_INSTANCE_COLUMNS = columns_of(ProcessInstance)
_DEFINITION_COLUMNS = columns_of(ProcessDefinition)


def locked_instance_select(*also: dict[str, Any]) -> Select[Any]:
    """Select an instance's columns, then those of `also`, then its definition's, locking the
    instance row (PostgreSQL); join and filter the `also` tables onto it."""
    return (
        select(
            *_INSTANCE_COLUMNS.values(),
            *(column for columns in also for column in columns.values()),
            *_DEFINITION_COLUMNS.values(),
        )
        .join_from(
            ProcessInstance,
            ProcessDefinition,
            ProcessDefinition.id == ProcessInstance.definition_id,
        )
        .with_for_update(of=ProcessInstance)
    )


def adopt_locked(
    session: Session,
    statement: DriverStatement,
    params: dict[str, Any],
    missing: str,
    *also: tuple[type[Any], dict[str, Any]],
) -> tuple[ProcessInstance, list[Any]]:
    """Run a `locked_instance_select` on the driver and adopt its row into the session.

    The ORM's loading costs more than the read; a copy the session already holds is refreshed,
    as with `populate_existing`. The definition comes along, so a change that restores its
    workflow need not read it again. Raises NotFound with `missing` when no row matches.
    """
    connection = session.connection()
    with driver_errors(connection):
        rows = statement.fetch(connection, params)
    if not rows:
        raise NotFound(missing)
    instance, *others, definition = adopt_row(
        session,
        rows[0],
        ((ProcessInstance, _INSTANCE_COLUMNS), *also, (ProcessDefinition, _DEFINITION_COLUMNS)),
    )
    set_committed_value(instance, "definition", definition)
    return instance, others


_LOCK_INSTANCE = DriverStatement(
    locked_instance_select().where(ProcessInstance.id == bindparam("instance_id"))
)


def lock_instance(session: Session, instance_id: int) -> ProcessInstance:
    """Load an instance row for update (a row lock on PostgreSQL), refreshing any stale copy."""
    instance, _ = adopt_locked(
        session,
        _LOCK_INSTANCE,
        {"instance_id": instance_id},
        f"process instance {instance_id} does not exist",
    )
    return instance


def log_event(
    session: Session,
    instance_id: int,
    now: datetime,
    kind: str,
    actor: str | None,
    *,
    bpmn_id: str | None = None,
    task_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to an instance's history."""
    session.add(
        InstanceEvent(
            instance_id=instance_id,
            at=now,
            kind=kind,
            actor=actor,
            bpmn_id=bpmn_id,
            task_id=task_id,
            detail=detail or {},
        )
    )


def _failure_details(exc: Exception) -> tuple[Any, int | None, str | None, str, str]:
    task = getattr(exc, "task", None)
    line = getattr(exc, "line_number", None)
    error_line = getattr(exc, "error_line", None) or None
    error_type = getattr(exc, "error_type", None)
    if not error_type or error_type == "unknown":
        error_type = type(exc).__name__
    message = str(exc.args[0]) if exc.args else error_type
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in message:
        message = f"{message}: {cause}"
    return (
        task,
        (line if isinstance(line, int) and line > 0 else None),
        error_line,
        error_type,
        message,
    )


def _record_failure(
    session: Session, instance: ProcessInstance, exc: Exception, now: datetime
) -> Incident:
    task, line, error_line, error_type, message = _failure_details(exc)
    if task is not None and isinstance(task.task_spec, ScriptTask) and task.parent is not None:
        # A script that failed half-way must not leave half its assignments behind for a retry.
        task.data = deepcopy(task.parent.data)
    if task is not None and task.state != TaskState.ERROR:
        task._set_state(TaskState.ERROR)
    incident = Incident(
        instance_id=instance.id,
        task_id=str(task.id) if task is not None else None,
        bpmn_id=task.task_spec.bpmn_id if task is not None else None,
        element_name=(task.task_spec.bpmn_name if task is not None else None),
        line=line,
        error_line=error_line,
        error_type=error_type[:80],
        message=message,
        status="open",
        created_at=now,
    )
    session.add(incident)
    log_event(
        session,
        instance.id,
        now,
        "errored",
        None,
        bpmn_id=incident.bpmn_id,
        task_id=incident.task_id,
        detail={"message": message, "line": line, "error_type": error_type},
    )
    return incident


def _drain_unhandled_events(
    session: Session, instance: ProcessInstance, workflow: BpmnWorkflow, now: datetime
) -> None:
    # Events thrown that nothing in the instance caught would otherwise pile up in its state.
    for event in workflow.get_events():
        log_event(
            session,
            instance.id,
            now,
            "event_unhandled",
            None,
            detail={"event": getattr(event.event_definition, "name", "?")},
        )


def _status_of(workflow: BpmnWorkflow, has_human_tasks: bool) -> str:
    # Not `is_completed()`: its task iterator stops at depth 1000 and then reports a long
    # instance as finished. `completed` is set when the End task runs.
    if workflow.completed:
        return "completed"
    return "running" if has_human_tasks else "waiting"


def apply_change(
    session: Session,
    instance: ProcessInstance,
    actor: Actor | None,
    now: datetime,
    change: Change,
    *,
    live: LiveWorkflow | None = None,
) -> ChangeOutcome:
    """Apply `change` to the instance's workflow, run automatic tasks, then persist everything.

    A task that fails leaves the instance in `error` with an incident; the work done before
    it is kept. An EngineError raised by `change` itself propagates and nothing is saved.
    All writes go out at the end, so the instance row is updated once.
    """
    with session.no_autoflush:
        # Reading the instance's own rows needs nothing flushed first; a history entry the
        # caller added then goes out with the change's other writes.
        live = live or load_state(session, instance, with_derived=True)
        if live.derived is None:
            live.derived = read_derived_rows(session, instance.id)
    workflow = live.workflow
    workflow.script_engine = StagecraftScriptEngine(
        OperationContext(
            session, instance.id, instance.business_key, actor.username if actor else None, now
        )
    )
    incident = None
    with session.no_autoflush:
        with frozen_at(now):
            try:
                change(workflow)
                run_automatic_tasks(workflow)
                _drain_unhandled_events(session, instance, workflow, now)
            except EngineError:
                raise
            except Exception as exc:  # any task failure becomes an incident, never a crash
                incident = _record_failure(session, instance, exc, now)
        writes = ChangeRows()
        new_tasks = sync_human_tasks(
            session,
            instance,
            workflow,
            live.derived,
            now,
            actor.username if actor else None,
            writes,
        )
        sync_waits(session, instance, workflow, live.derived, now, writes)
        if incident is not None:
            instance.status = "error"
        elif instance.status not in ("suspended", "terminated"):
            instance.status = _status_of(workflow, bool(live.derived.open_tasks))
        if instance.status == "completed" and instance.ended_at is None:
            instance.ended_at = now
            log_event(session, instance.id, now, "completed", None)
        instance.updated_at = now
        save_state(session, instance, live, writes)
    try:
        send_change(session, instance, writes)
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            f"process instance {instance.id} was changed by someone else; reload"
        ) from exc
    remember(instance, live)
    return ChangeOutcome(instance, new_tasks, incident)
