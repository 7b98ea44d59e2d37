"""Fix a failed task's data and retry it; reassign an instance's open tasks."""

from __future__ import annotations

import json
import keyword
from copy import deepcopy
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.errors import Conflict, InvalidInput, NotFound
from engine.instances import (
    retry_instance,
)
from engine.models import (
    HumanTask,
    ProcessInstance,
)
from engine.repair.common import failed_tasks, lock_for_repair, read_workflow, require_repairer
from engine.runtime import ChangeOutcome
from engine.tasks import MAX_TASK_DATA_KEYS, reassign_task

MAX_DATA_CHARS = 200_000


def parse_task_data(text: str) -> dict[str, Any]:
    """Read task data typed by a person: a JSON object whose keys are variable names.

    :raises InvalidInput: naming the line and column of a syntax error, or the bad key.
    """
    if len(text) > MAX_DATA_CHARS:
        too_long = f"more than {MAX_DATA_CHARS} characters"
        raise InvalidInput("the data is too long", {"data": [too_long]})
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        message = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise InvalidInput(f"the data is not valid JSON ({message})", {"data": [message]}) from None
    if not isinstance(data, dict):
        raise InvalidInput("the data must be a JSON object", {"data": ["must be an object {…}"]})
    if len(data) > MAX_TASK_DATA_KEYS:
        raise InvalidInput("too many fields", {"data": [f"more than {MAX_TASK_DATA_KEYS} keys"]})
    bad = [k for k in data if not k.isidentifier() or keyword.iskeyword(k) or k.startswith("_")]
    if bad:
        names = ", ".join(sorted(bad))
        raise InvalidInput(
            f"not a variable name: {names}", {"data": [f"not a variable name: {names}"]}
        )
    return data


def failed_task_data(session: Session, actor: Actor, instance_id: int) -> dict[str, Any] | None:
    """Return the data of the instance's failed task, or None when no task failed."""
    require_repairer(actor)
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"process instance {instance_id} does not exist")
    if instance.status != "error":
        return None

    def first_failed(workflow: BpmnWorkflow) -> dict[str, Any] | None:
        failed = failed_tasks(workflow)
        return deepcopy(dict(failed[0].data)) if failed else None

    return read_workflow(session, instance, first_failed)


def edit_data_and_retry(
    session: Session,
    actor: Actor,
    instance_id: int,
    data: dict[str, Any],
    *,
    now: datetime,
    replace: bool = False,
    expected_version: int | None = None,
) -> ChangeOutcome:
    """Merge `data` into (or, with `replace`, substitute it for) the failed task's data; retry."""
    lock_for_repair(session, actor, instance_id, expected_version)
    return retry_instance(
        session, actor, instance_id, now=now, data_patch=data, replace_data=replace
    )


def reassign_open_tasks(
    session: Session,
    actor: Actor,
    instance_id: int,
    to_username: str,
    *,
    now: datetime,
    bpmn_id: str | None = None,
    reason: str = "",
) -> list[HumanTask]:
    """Give the instance's open tasks (those at `bpmn_id`, if given) to one user."""
    require_repairer(actor)
    query = select(HumanTask.id).where(
        HumanTask.instance_id == instance_id, HumanTask.status == "open"
    )
    if bpmn_id:
        query = query.where(HumanTask.bpmn_id == bpmn_id)
    task_ids = list(session.scalars(query.order_by(HumanTask.id)))
    if not task_ids:
        if bpmn_id:
            raise Conflict(f"process instance {instance_id} has no open task at '{bpmn_id}'")
        raise Conflict(f"process instance {instance_id} has no open task")
    return [
        reassign_task(session, actor, task_id, to_username, now=now, reason=reason)
        for task_id in task_ids
    ]
