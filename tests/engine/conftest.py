"""Engine test helpers: drive instances and check that stored state restores exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.instances import start_instance
from engine.models import HumanTask, ProcessInstance
from engine.specs import SERIALIZER
from engine.state import LIVE_CACHE, load_state
from tests.conftest import NOW


def _comparable(workflow: Any) -> dict[str, Any]:
    dct = SERIALIZER.to_dict(workflow)
    dct.pop("spec"), dct.pop("subprocess_specs")
    for task in dct["tasks"].values():
        task.pop("last_state_change")
    for sp in dct["subprocesses"].values():
        for task in sp["tasks"].values():
            task.pop("last_state_change")
    return dct


@pytest.fixture
def round_trip(session: Session) -> Callable[[ProcessInstance], None]:
    """Assert that the instance restored from the database equals the one kept in memory."""

    def check(instance: ProcessInstance) -> None:
        session.flush()
        cached = LIVE_CACHE.take(instance.id, instance.state_token)
        assert cached is not None, "the last change did not keep its workflow"
        restored = load_state(session, instance)  # cache entry taken: this reads the rows
        assert _comparable(restored.workflow) == _comparable(cached.workflow)
        LIVE_CACHE.put(instance.id, instance.state_token, cached)

    return check


@pytest.fixture
def open_task(session: Session) -> Callable[[ProcessInstance, str], HumanTask]:
    """Return the open human task of an instance at the given BPMN element."""

    def find(instance: ProcessInstance, bpmn_id: str) -> HumanTask:
        rows = session.scalars(
            select(HumanTask).where(
                HumanTask.instance_id == instance.id,
                HumanTask.status == "open",
                HumanTask.bpmn_id == bpmn_id,
            )
        ).all()
        assert len(rows) == 1, f"expected one open task at {bpmn_id}, found {len(rows)}"
        return rows[0]

    return find


@pytest.fixture
def lead_instance(session: Session, deploy: Callable[..., Any]) -> ProcessInstance:
    """A lead follow-up started by a rep, waiting at its first call task."""
    deploy("lead_followup.bpmn")
    return start_instance(
        session,
        Actor("rita", frozenset({"rep"})),
        "lead_followup",
        now=NOW,
        data={"lead_name": "Acme", "budget": 1},
    ).instance
