"""A quote's approval as it happened: each approval instance with its event log and open tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.directory.models import User
from crm.quotes.services import get_quote
from engine.models import HumanTask, InstanceEvent, ProcessInstance


@dataclass(frozen=True)
class ApprovalStep:
    """One event of the log, with the decision and comment a form gave (if any)."""

    at: datetime
    kind: str
    actor: str | None
    bpmn_id: str | None
    decision: str
    comment: str


@dataclass(frozen=True)
class ApprovalRound:
    instance: ProcessInstance
    steps: list[ApprovalStep]
    open_tasks: list[HumanTask]


def _step(event: InstanceEvent) -> ApprovalStep:
    data: Any = (event.detail or {}).get("data") if event.kind == "task_completed" else None
    data = data if isinstance(data, dict) else {}
    # Each approver's form names its fields after the approver: manager_decision, ...
    decision = next((str(v) for k, v in data.items() if k.endswith("decision") and v), "")
    comment = next((str(v) for k, v in data.items() if k.endswith(("comment", "note")) and v), "")
    return ApprovalStep(event.at, event.kind, event.actor, event.bpmn_id, decision, comment)


def approval_history(session: Session, user: User, quote_id: int) -> list[ApprovalRound]:
    """Return every approval instance of a quote (business key quote:<id>), oldest first."""
    quote = get_quote(session, user, quote_id)
    instances = list(
        session.scalars(
            select(ProcessInstance)
            .where(ProcessInstance.business_key == f"quote:{quote.id}")
            .order_by(ProcessInstance.id)
        )
    )
    ids = [i.id for i in instances]
    steps: dict[int, list[ApprovalStep]] = {i: [] for i in ids}
    tasks: dict[int, list[HumanTask]] = {i: [] for i in ids}
    if ids:
        for event in session.scalars(
            select(InstanceEvent)
            .where(InstanceEvent.instance_id.in_(ids))
            .order_by(InstanceEvent.at, InstanceEvent.id)
        ):
            steps[event.instance_id].append(_step(event))
        for task in session.scalars(
            select(HumanTask)
            .where(HumanTask.instance_id.in_(ids), HumanTask.status == "open")
            .order_by(HumanTask.id)
        ):
            tasks[task.instance_id].append(task)
    return [ApprovalRound(i, steps[i.id], tasks[i.id]) for i in instances]
