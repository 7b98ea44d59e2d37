"""The `crm.*` operations of the `commission_run` process (docs/commission.md)."""

from __future__ import annotations

from typing import Any

from crm.commission.runs import adjust_run, calculate_run, issue_statements, return_run
from engine.operations import OperationContext, register_operation


@register_operation("crm.calculate_commission", {"run_id": int})
def _calculate(ctx: OperationContext, run_id: int) -> dict[str, Any]:
    """Compute every rep's statement for the run's month."""
    return calculate_run(ctx.session, run_id, now=ctx.now)


@register_operation(
    "crm.adjust_commission",
    {"run_id": int, "adjustments": list},
    optional=frozenset({"adjustments"}),
)
def _adjust(ctx: OperationContext, run_id: int, adjustments: list[Any] | None = None) -> Any:
    """Apply the reviewer's adjustments; returns `{problems}` instead of failing on bad ones."""
    return adjust_run(ctx.session, run_id, adjustments or [], by=ctx.actor, now=ctx.now)


@register_operation("crm.return_commission_run", {"run_id": int, "comment": str})
def _return(ctx: OperationContext, run_id: int, comment: str) -> dict[str, Any]:
    """Send a rejected run back to the managers' review."""
    return return_run(ctx.session, run_id, comment)


@register_operation("crm.issue_commission_statements", {"run_id": int})
def _issue(ctx: OperationContext, run_id: int) -> dict[str, Any]:
    """Issue the approved statements and tell each rep."""
    return issue_statements(ctx.session, run_id, by=ctx.actor, now=ctx.now)
