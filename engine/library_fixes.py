"""Corrections to SpiffWorkflow 3.2.0 that the engine depends on, applied once on import.

`Workflow.update_waiting_tasks` runs after every task completion and walks the whole task tree
with an iterator that stops at depth 1000. That makes a long instance quadratic and, past about
333 loop rounds, leaves deep waiting tasks (joins, event catches) never updated. The
replacement visits the workflow's flat task table instead: linear, and blind to depth.
"""

from __future__ import annotations

from SpiffWorkflow.util.task import TaskState
from SpiffWorkflow.workflow import Workflow

_WAITING = TaskState.WAITING


def _update_waiting_tasks(self: Workflow) -> None:
    """Update every WAITING task of this workflow, at any depth."""
    for task in [t for t in self.tasks.values() if t._state == _WAITING]:
        if task._state == _WAITING:  # an earlier update in this pass may have moved it on
            task.task_spec._update(task)


Workflow.update_waiting_tasks = _update_waiting_tasks
