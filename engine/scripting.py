"""The script engine every instance runs with: sandboxed Python plus named operations."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from engine.operations import OperationContext, OperationError, call_operation
from engine.sandbox import SandboxEnvironment

# One environment for the whole process: it holds only a compiled-code cache.
SANDBOX = SandboxEnvironment()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class StagecraftScriptEngine(PythonScriptEngine):
    """Run scripts in the sandbox and service tasks through the operation registry."""

    def __init__(self, context: OperationContext | None = None) -> None:
        super().__init__(environment=SANDBOX)
        self.context = context

    def call_service(self, task: Any, **kwargs: Any) -> str:
        # Replaces the 3.2.0 method, whose error branch refers to an undefined `script`.
        name = kwargs["operation_name"]
        params = {key: spec["value"] for key, spec in kwargs["operation_params"].items()}
        if self.context is None:
            raise WorkflowTaskException(
                f"operation '{name}' cannot run without a context", task=task
            )
        try:
            # A savepoint, so that an operation failing half-way leaves none of its writes.
            with self.context.session.begin_nested():
                result = call_operation(name, params, self.context)
        except OperationError as exc:
            raise WorkflowTaskException(str(exc), task=task, exception=exc) from exc
        return json.dumps(result, default=_json_default)
