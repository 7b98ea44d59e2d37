"""Human tasks: complete with validated data, claim, release and reassign."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from jsonschema import Draft202012Validator, ValidationError, validators
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import and_, bindparam, func, or_, select, true, union_all
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.driver import DriverStatement, columns_of
from engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from engine.models import HumanTask, ProcessInstance
from engine.runtime import (
    ChangeOutcome,
    adopt_locked,
    apply_change,
    locked_instance_select,
    log_event,
)

MAX_TASK_DATA_KEYS = 200


def _multiple_of(validator: Any, step: Any, instance: Any, schema: Any) -> Any:
    # Decimal arithmetic: with floats, 19.99 is "not a multiple of 0.01".
    if not validator.is_type(instance, "number"):
        return
    if Decimal(str(instance)) % Decimal(str(step)) != 0:
        yield ValidationError(f"{instance} is not a multiple of {step}")


_FormValidator = validators.extend(Draft202012Validator, {"multipleOf": _multiple_of})


def get_task(session: Session, human_task_id: int) -> HumanTask:
    task = session.get(HumanTask, human_task_id)
    if task is None:
        raise NotFound(f"task {human_task_id} does not exist")
    return task


def may_work_on(actor: Actor, task: HumanTask) -> bool:
    """Tell whether the actor holds the task or is one of its candidates while it is unclaimed."""
    if actor.can_repair or task.assignee == actor.username:
        return True
    if task.assignee is not None:
        return False
    return (
        task.candidate_user == actor.username
        or (task.candidate_role is not None and task.candidate_role in actor.roles)
        or (task.candidate_team is not None and task.candidate_team in actor.teams)
    )


_TASK_COLUMNS = columns_of(HumanTask)
# Every task change goes through its instance's row lock; the task is read under that lock.
_LOCK_OPEN_TASK = DriverStatement(
    locked_instance_select(_TASK_COLUMNS)
    .join(HumanTask, HumanTask.instance_id == ProcessInstance.id)
    .where(HumanTask.id == bindparam("task_id"))
)


def lock_task(session: Session, human_task_id: int) -> tuple[HumanTask, ProcessInstance]:
    """Read a task and its instance under the instance's row lock, refreshing stale copies.

    For callers that check more before acting (the CRM's permissions): they lock first and
    hand the pair to `complete_locked_task`, so the task is read once.
    """
    instance, [task] = adopt_locked(
        session,
        _LOCK_OPEN_TASK,
        {"task_id": human_task_id},
        f"task {human_task_id} does not exist",
        (HumanTask, _TASK_COLUMNS),
    )
    return task, instance


def _lock_open_task(session: Session, human_task_id: int) -> tuple[HumanTask, ProcessInstance]:
    task, instance = lock_task(session, human_task_id)
    _require_open(task, instance)
    return task, instance


def _require_open(task: HumanTask, instance: ProcessInstance) -> None:
    if task.status != "open":
        raise Conflict(f"task '{task.title}' was already {task.status}")
    if instance.status not in ("running", "waiting"):
        raise Conflict(f"its process instance is {instance.status}")


def validate_form_data(schema: dict[str, Any] | None, data: dict[str, Any]) -> None:
    """Check task data against the task's JSON Schema; raise InvalidInput naming each field."""
    if not isinstance(data, dict):
        raise InvalidInput("task data must be an object", {"data": ["must be a JSON object"]})
    if len(data) > MAX_TASK_DATA_KEYS:
        raise InvalidInput(f"too many fields (more than {MAX_TASK_DATA_KEYS})")
    if schema is None:
        return
    fields: dict[str, list[str]] = {}
    for error in _FormValidator(schema).iter_errors(data):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required" and not path:
            missing = error.message.split("'")[1] if "'" in error.message else ""
            fields.setdefault(missing or "data", []).append("is required")
        else:
            fields.setdefault(path or "data", []).append(error.message)
    if fields:
        names = ", ".join(sorted(fields))
        raise InvalidInput(f"please correct: {names}", fields)


def complete_task(
    session: Session, actor: Actor, human_task_id: int, data: dict[str, Any], *, now: datetime
) -> ChangeOutcome:
    """Complete a human task with form data and run the process on to its next wait."""
    task, instance = lock_task(session, human_task_id)
    return complete_locked_task(session, actor, task, instance, data, now=now)


def complete_locked_task(
    session: Session,
    actor: Actor,
    task: HumanTask,
    instance: ProcessInstance,
    data: dict[str, Any],
    *,
    now: datetime,
) -> ChangeOutcome:
    """Complete a task that `lock_task` just read in this transaction (see complete_task)."""
    _require_open(task, instance)
    if not may_work_on(actor, task):
        raise Forbidden(f"task '{task.title}' is not yours to complete")
    schema = instance.definition.forms.get(task.form) if task.form else None
    validate_form_data(schema, data)

    def complete(workflow: BpmnWorkflow) -> None:
        spiff_task = workflow.get_task_from_id(UUID(task.task_id))
        if spiff_task is None or spiff_task.state != TaskState.READY:
            raise Conflict(f"task '{task.title}' is no longer waiting for input")
        spiff_task.set_data(**data)
        spiff_task.run()

    log_event(
        session,
        task.instance_id,
        now,
        "task_completed",
        actor.username,
        bpmn_id=task.bpmn_id,
        task_id=task.task_id,
        detail={"data": data},
    )
    return apply_change(session, instance, actor, now, complete)


def claim_task(session: Session, actor: Actor, human_task_id: int, *, now: datetime) -> HumanTask:
    """Take an unclaimed task from the group queue into the actor's own list."""
    task, _ = _lock_open_task(session, human_task_id)
    if task.assignee == actor.username:
        return task
    if task.assignee is not None:
        raise Conflict(f"task '{task.title}' is already claimed by {task.assignee}")
    if not may_work_on(actor, task):
        raise Forbidden(f"task '{task.title}' is not offered to you")
    task.assignee = actor.username
    log_event(
        session,
        task.instance_id,
        now,
        "task_claimed",
        actor.username,
        bpmn_id=task.bpmn_id,
        task_id=task.task_id,
    )
    session.flush()
    return task


def unclaim_task(session: Session, actor: Actor, human_task_id: int, *, now: datetime) -> HumanTask:
    """Put a claimed task back in its group queue."""
    task, _ = _lock_open_task(session, human_task_id)
    if task.assignee != actor.username and not actor.can_repair:
        raise Forbidden(f"task '{task.title}' is not claimed by you")
    if task.candidate_role is None and task.candidate_team is None:
        raise Conflict(f"task '{task.title}' has no group to return to")
    task.assignee = None
    log_event(
        session,
        task.instance_id,
        now,
        "task_released",
        actor.username,
        bpmn_id=task.bpmn_id,
        task_id=task.task_id,
    )
    session.flush()
    return task


def reassign_task(
    session: Session,
    actor: Actor,
    human_task_id: int,
    to_username: str,
    *,
    now: datetime,
    reason: str = "",
) -> HumanTask:
    """Give a task to another user (ops and admins; the CRM adds managers for their teams)."""
    task, _ = _lock_open_task(session, human_task_id)
    if not actor.can_repair:
        raise Forbidden("only ops and admins may reassign tasks here")
    previous = task.assignee
    task.assignee = to_username
    log_event(
        session,
        task.instance_id,
        now,
        "task_reassigned",
        actor.username,
        bpmn_id=task.bpmn_id,
        task_id=task.task_id,
        detail={"from": previous, "to": to_username, "reason": reason},
    )
    session.flush()
    return task


def list_tasks(
    session: Session, *, instance_id: int | None = None, status: str = "open", limit: int = 200
) -> list[HumanTask]:
    """Return tasks, newest first, optionally of one instance."""
    query = select(HumanTask).where(HumanTask.status == status)
    if instance_id is not None:
        query = query.where(HumanTask.instance_id == instance_id)
    return list(session.scalars(query.order_by(HumanTask.id.desc()).limit(limit)))


def _offered_to(actor: Actor) -> Any:
    offered = [HumanTask.candidate_user == actor.username]
    if actor.roles:
        offered.append(HumanTask.candidate_role.in_(sorted(actor.roles)))
    if actor.teams:
        offered.append(HumanTask.candidate_team.in_(sorted(actor.teams)))
    return or_(
        HumanTask.assignee == actor.username, and_(HumanTask.assignee.is_(None), or_(*offered))
    )


def offered_ways(actor: Actor) -> list[Any]:
    """Return one condition per way an unclaimed open task is offered to the actor.

    By name, else to one of the actor's roles, else to one of their teams: the ways do not
    overlap, and each matches one partial index, so a query per way is an index scan in due-date
    order where one OR across three columns must read every matching row.
    """
    unclaimed = and_(HumanTask.status == "open", HumanTask.assignee.is_(None))
    ways = [and_(unclaimed, HumanTask.candidate_user == actor.username)]
    not_by_name = HumanTask.candidate_user.is_distinct_from(actor.username)
    roles = sorted(actor.roles)
    if roles:
        ways.append(and_(unclaimed, HumanTask.candidate_role.in_(roles), not_by_name))
    if actor.teams:
        not_by_role = (
            or_(HumanTask.candidate_role.is_(None), HumanTask.candidate_role.not_in(roles))
            if roles
            else true()
        )
        ways.append(
            and_(
                unclaimed,
                HumanTask.candidate_team.in_(sorted(actor.teams)),
                not_by_name,
                not_by_role,
            )
        )
    return ways


def offered_task_ids(actor: Actor) -> Any:
    """Return the ids of the unclaimed open tasks offered to the actor, as a UNION query."""
    return union_all(*(select(HumanTask.id).where(way) for way in offered_ways(actor)))


def tasks_for(session: Session, actor: Actor, *, limit: int = 50) -> list[HumanTask]:
    """Return the open tasks the actor holds or may claim, most urgent first."""
    return list(
        session.scalars(
            select(HumanTask)
            .where(HumanTask.status == "open", _offered_to(actor))
            .order_by(HumanTask.due_at.asc().nulls_last(), HumanTask.id)
            .limit(limit)
        )
    )


def count_tasks_for(session: Session, actor: Actor) -> int:
    """Count the open tasks the actor holds or may claim."""
    held = select(func.count()).where(
        HumanTask.status == "open", HumanTask.assignee == actor.username
    )
    offered = select(func.count()).select_from(offered_task_ids(actor).subquery())
    return (session.scalar(held) or 0) + (session.scalar(offered) or 0)
