"""Named operations that service tasks call (`serviceTaskOperator`), with typed parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session


class OperationError(Exception):
    """An operation refused its input or failed; the message is shown to ops."""


@dataclass(frozen=True)
class OperationContext:
    """What an operation may use: the open session, the instance it runs for, and the time."""

    session: Session
    instance_id: int
    business_key: str | None
    actor: str | None
    now: datetime


@dataclass(frozen=True)
class Operation:
    name: str
    func: Callable[..., Any]
    params: dict[str, type]
    optional: frozenset[str] = field(default_factory=frozenset)
    description: str = ""


_registry: dict[str, Operation] = {}


def register_operation(
    name: str,
    params: dict[str, type],
    *,
    optional: frozenset[str] = frozenset(),
    description: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func(ctx, **params)` under `name` (e.g. `crm.assign_owner`)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        _registry[name] = Operation(
            name, func, params, optional, description or (func.__doc__ or "")
        )
        return func

    return decorate


def registered_operations() -> dict[str, Operation]:
    """Return the operations known to this process, by name."""
    return dict(_registry)


def _coerce(name: str, value: Any, wanted: type) -> Any:
    if value is None or isinstance(value, wanted):
        return value
    try:
        if wanted is Decimal:
            return Decimal(str(value))
        if wanted is int and isinstance(value, str | float) and float(value).is_integer():
            return int(float(value))
        if wanted is float and isinstance(value, int | str):
            return float(value)
        if wanted is str and isinstance(value, int | float | Decimal):
            return str(value)
    except (ValueError, InvalidOperation) as exc:
        raise OperationError(f"parameter '{name}': {value!r} is not a {wanted.__name__}") from exc
    raise OperationError(
        f"parameter '{name}': expected {wanted.__name__}, got {type(value).__name__}"
    )


def call_operation(name: str, raw_params: dict[str, Any], ctx: OperationContext) -> Any:
    """Check and coerce the parameters, then run the operation."""
    operation = _registry.get(name)
    if operation is None:
        raise OperationError(f"unknown operation '{name}'")
    unknown = sorted(set(raw_params) - set(operation.params))
    if unknown:
        raise OperationError(f"{name}: unknown parameter(s) {', '.join(unknown)}")
    missing = sorted(set(operation.params) - set(raw_params) - operation.optional)
    if missing:
        raise OperationError(f"{name}: missing parameter(s) {', '.join(missing)}")
    values = {k: _coerce(k, v, operation.params[k]) for k, v in raw_params.items()}
    return operation.func(ctx, **values)
