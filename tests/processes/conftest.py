"""Process test helpers: stub CRM operations, the whole processes/ folder deployed, actors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

import engine.operations
from engine.actor import Actor
from engine.models import HumanTask, InstanceTimer, ProcessInstance
from engine.operations import Operation, OperationContext
from engine.state import load_state, remember
from engine.tasks import complete_task
from engine.views import describe_instance
from tests.conftest import NOW
from tests.engine.conftest import open_task, round_trip  # noqa: F401

REP = Actor("rita", frozenset({"rep"}))
MANAGER = Actor("mona", frozenset({"manager"}))
DIRECTOR = Actor("dora", frozenset({"director"}))
FINANCE = Actor("fiona", frozenset({"finance"}))
SYSTEM = Actor("crm", frozenset({"system"}))

# The documented parameters of every CRM operation the processes call (docs/processes.md).
PARAMS: dict[str, dict[str, type]] = {
    "crm.convert_lead": {
        "lead_id": int,
        "customer_name": str,
        "contact_name": str,
        "contact_title": str,
        "contact_buying_role": str,
        "opportunity_name": str,
        "amount": Decimal,
        "currency": str,
        "expected_close": str,
        "pipeline": str,
    },
    "crm.disqualify_lead": {"lead_id": int, "reason": str},
    "crm.return_lead_to_pool": {"lead_id": int, "reason": str},
    "crm.check_stage_exit": {"opportunity_id": int, "stage": str, "criteria": list},
    "crm.notify_stale_deal": {"opportunity_id": int, "stage": str},
    "crm.close_opportunity": {"opportunity_id": int, "outcome": str, "reason": str},
    "crm.create_order": {"opportunity_id": int, "signed_on": str, "installments": list},
    "crm.mark_order_paid": {"order_id": int},
    "crm.set_quote_status": {"quote_id": int, "status": str, "comment": str},
    "crm.escalate_approval": {"quote_id": int, "level": str},
    "crm.decide_invoice_request": {"invoice_request_id": int, "decision": str, "comment": str},
    "crm.execute_handover": {"leaving_user": str, "receiver": str, "reason": str},
}

# Parameters a process may leave out (the stage editor's processes pass exit criteria).
OPTIONAL = {"crm.check_stage_exit": frozenset({"criteria"})}


@dataclass
class Call:
    operation: str
    params: dict[str, Any]
    business_key: str | None
    instance_id: int


@dataclass
class CrmStub:
    """Stand-ins for the CRM operations: documented result shapes, every call recorded."""

    calls: list[Call] = field(default_factory=list)
    # Stage key -> missing exit criteria returned by the next check of that stage (then ok).
    missing_once: dict[str, list[str]] = field(default_factory=dict)
    next_id: int = 100

    def of(self, operation: str) -> list[dict[str, Any]]:
        """Return the parameters of every call to `operation`, oldest first."""
        return [c.params for c in self.calls if c.operation == operation]

    def names(self) -> list[str]:
        return [c.operation for c in self.calls]

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def result(self, operation: str, params: dict[str, Any]) -> Any:
        if operation == "crm.convert_lead":
            return {
                "customer_id": self._new_id(),
                "contact_id": self._new_id(),
                "opportunity_id": self._new_id(),
            }
        if operation == "crm.check_stage_exit":
            missing = self.missing_once.pop(params["stage"], [])
            return {"ok": not missing, "missing": missing}
        if operation == "crm.notify_stale_deal":
            return {"notified": ["rita", "mona"]}
        if operation == "crm.create_order":
            return {
                "order_id": self._new_id(),
                "installments": [
                    {"id": self._new_id(), "due_date": item["due_date"], "amount": item["amount"]}
                    for item in params["installments"]
                ],
            }
        if operation == "crm.escalate_approval":
            return {"escalated_to": "boss"}
        if operation == "crm.execute_handover":
            return {"customers": 3, "opportunities": 2, "tasks": 5}
        return {}


@pytest.fixture
def crm(monkeypatch: pytest.MonkeyPatch) -> CrmStub:
    """Register stub CRM operations for this test only; the global registry is restored after."""
    stub = CrmStub()

    def operation(name: str) -> Callable[..., Any]:
        def run(ctx: OperationContext, **params: Any) -> Any:
            stub.calls.append(Call(name, params, ctx.business_key, ctx.instance_id))
            return stub.result(name, params)

        return run

    for name, params in PARAMS.items():
        monkeypatch.setitem(
            engine.operations._registry,
            name,
            Operation(name, operation(name), params, optional=OPTIONAL.get(name, frozenset())),
        )
    return stub


@pytest.fixture
def deployed(crm: CrmStub, deploy: Callable[..., Any]) -> Any:
    """Deploy all of processes/ (with forms/) while the stub operations are registered."""
    result = deploy()
    assert not [w for w in result.warnings if "no lane" in w.message or "no form" in w.message]
    return result


@pytest.fixture
def data(session: Session) -> Callable[[ProcessInstance], dict[str, Any]]:
    """Return the data of an instance as the ops view shows it (the last task's data)."""
    return lambda instance: describe_instance(session, instance)["data"]


@pytest.fixture
def finish(
    session: Session,
    open_task: Callable[[ProcessInstance, str], HumanTask],  # noqa: F811
    round_trip: Callable[[ProcessInstance], None],  # noqa: F811
) -> Callable[..., HumanTask]:
    """Complete the open task at `bpmn_id` as `actor`, then check the stored state round-trips."""

    def run(
        instance: ProcessInstance,
        bpmn_id: str,
        actor: Actor,
        form: dict[str, Any] | None = None,
        now: Any = NOW,
    ) -> HumanTask:
        task = open_task(instance, bpmn_id)
        complete_task(session, actor, task.id, form or {}, now=now)
        round_trip(instance)
        return task

    return run


@pytest.fixture
def open_ids(session: Session) -> Callable[[ProcessInstance], list[str]]:
    """Return the BPMN ids of the instance's open human tasks, sorted."""

    def find(instance: ProcessInstance) -> list[str]:
        return sorted(
            session.scalars(
                select(HumanTask.bpmn_id).where(
                    HumanTask.instance_id == instance.id, HumanTask.status == "open"
                )
            )
        )

    return find


@pytest.fixture
def waiting_timers(session: Session) -> Callable[[ProcessInstance], list[tuple[str, Any]]]:
    """Return (bpmn id, fire time) of the instance's waiting timers, soonest first."""

    def find(instance: ProcessInstance) -> list[tuple[str, Any]]:
        rows = session.execute(
            select(InstanceTimer.bpmn_id, InstanceTimer.fire_at)
            .where(InstanceTimer.instance_id == instance.id, InstanceTimer.status == "waiting")
            .order_by(InstanceTimer.fire_at, InstanceTimer.bpmn_id)
        )
        return [(bpmn_id, _aware(fire_at)) for bpmn_id, fire_at in rows]

    return find


@pytest.fixture
def reached(session: Session) -> Callable[[ProcessInstance], set[str]]:
    """Return the BPMN ids of every element the instance has completed (any depth)."""

    def find(instance: ProcessInstance) -> set[str]:
        live = load_state(session, instance)
        try:
            workflow = live.workflow
            done = set()
            for wf in [workflow, *workflow.subprocesses.values()]:
                for task in wf.tasks.values():
                    if task.state == TaskState.COMPLETED:
                        done.add(task.task_spec.bpmn_id)
            return {bpmn_id for bpmn_id in done if bpmn_id}
        finally:
            remember(instance, live)

    return find


def _aware(value: Any) -> Any:
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
