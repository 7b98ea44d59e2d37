"""The rows one instance change writes besides its own row, gathered while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.db import table_of
from engine.models import HumanTask

# What every change may alter on the instance row; anything else a caller changes is left to
# the ORM, which then checks the version this update wrote.
INSTANCE_FIELDS = (
    "status",
    "state",
    "serializer_version",
    "state_token",
    "next_timer_at",
    "updated_at",
    "ended_at",
)
EVENT_FIELDS = ("instance_id", "at", "kind", "actor", "bpmn_id", "task_id", "detail")
TASK_FIELDS = tuple(c.key for c in table_of(HumanTask).columns if c.key != "id")


@dataclass
class ChangeRows:
    """What one change writes besides the instance row, as plain values.

    Rows of one kind never touch the same row twice (a task is closed or opened, a timer
    ended, moved or new), so the kinds may be written in any order.
    """

    # {task_id, status, completed_at, completed_by}: open task rows to close.
    closed_tasks: list[dict[str, Any]] = field(default_factory=list)
    # New task rows; they get their ids when the change is sent.
    opened_tasks: list[HumanTask] = field(default_factory=list)
    ended_timers: list[str] = field(default_factory=list)
    # {task_id, fire_at}
    moved_timers: list[dict[str, Any]] = field(default_factory=list)
    new_timers: list[dict[str, Any]] = field(default_factory=list)
    # {task_id, message_name}
    dropped_subscriptions: list[dict[str, Any]] = field(default_factory=list)
    new_subscriptions: list[dict[str, Any]] = field(default_factory=list)
    removed_states: list[str] = field(default_factory=list)
    # {task_id, workflow_key, body}: stored library tasks, new or changed.
    states: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
