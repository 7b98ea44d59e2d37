"""Run an instance's automatic tasks without rescanning the whole task tree for every step.

The library's `do_engine_steps` searches the whole tree after every task it runs, so a chain
of n automatic tasks costs n² visits. Here a full scan happens only when the work found near
the last completed task runs out; each task run looks only at its own children next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

MAX_STEPS = 10_000


class StepLimitExceeded(RuntimeError):
    """An instance ran more automatic steps in one go than any real process needs."""


def _is_runnable(task: Any) -> bool:
    return task.state == TaskState.READY and not task.task_spec.manual


def _all_runnable(workflow: BpmnWorkflow) -> list[Any]:
    found = [t for t in workflow.tasks.values() if _is_runnable(t)]
    for sp in workflow.subprocesses.values():
        if not sp.completed:
            found.extend(t for t in sp.tasks.values() if _is_runnable(t))
    return found


def _after_run(workflow: BpmnWorkflow, task: Any) -> list[Any]:
    """Return the tasks that running `task` may have made runnable, nearest first."""
    nearby = [c for c in task.children if _is_runnable(c)]
    started = workflow.subprocesses.get(task.id)
    if started is not None:
        nearby.extend(t for t in started.tasks.values() if _is_runnable(t))
    owner = task.workflow
    if owner is not workflow and owner.parent_task_id is not None:
        # The library only moves a call activity on when it is told its subprocess changed.
        parent = workflow.get_task_from_id(owner.parent_task_id)
        parent.task_spec._update(parent)
        if _is_runnable(parent):
            nearby.append(parent)
    return nearby


def run_automatic_tasks(
    workflow: BpmnWorkflow, on_task_run: Callable[[Any], None] | None = None
) -> int:
    """Run READY automatic tasks until only manual or waiting ones are left; return the count."""
    count = 0
    pending = _all_runnable(workflow)
    while pending:
        stack = list(reversed(pending))
        while stack:
            task = stack.pop()
            if not _is_runnable(task):
                continue  # cancelled or already run through another path
            task.run()
            count += 1
            if count > MAX_STEPS:
                raise StepLimitExceeded(
                    f"more than {MAX_STEPS} automatic steps without waiting: is there a loop "
                    "without a user task or timer?"
                )
            if on_task_run is not None:
                on_task_run(task)
            stack.extend(reversed(_after_run(workflow, task)))
        pending = _all_runnable(workflow)
    workflow.refresh_timers()
    if _all_runnable(workflow):
        # A timer that was already due fired during the refresh.
        return count + run_automatic_tasks(workflow, on_task_run)
    return count


def cancel_workflow(workflow: BpmnWorkflow) -> None:
    """Cancel every unfinished task, at any depth (the library's cancel stops at depth 1000)."""
    workflow.cancel()
    for wf in [workflow, *workflow.subprocesses.values()]:
        for task in list(wf.tasks.values()):
            if not task.has_state(TaskState.FINISHED_MASK):
                task._set_state(TaskState.CANCELLED)
