"""The approval-table editor's services: read the table, preview a change against the pending
quotes, save it as a new DMN version (with the quote approval process that runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import product
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.designer.workspace import Workspace
from crm.directory.models import User
from crm.directory.services import can_see_owner
from crm.errors import fields_error
from crm.quotes.models import Quote
from crm.stage_design.approval_dmn import (
    ApprovalRow,
    ApprovalTable,
    approvers_for,
    check_rows,
    matching_rows,
    read_approval_table,
    write_approval_table,
)
from crm.stage_design.models import APPROVAL_TABLE
from crm.stage_design.services import (
    APPROVAL_TABLES,
    check_comment,
    collect_problems,
    deploy_design,
    deployed_source,
    record_change,
    require_design_editor,
)
from engine.deploy import DeployResult

MAX_LISTED = 50
# Values around the usual thresholds; the coverage check looks for gaps and overlaps among them.
PROBES: dict[str, tuple[float, ...]] = {
    "discount": (0, 5, 5.5, 10, 15, 15.5, 30),
    "amount": (0, 10_000, 100_000, 1_000_000),
    "payment_days": (0, 30, 60, 61, 90, 180),
    "delivery_days": (0, 6, 7, 30, 365),
}


def load_approval_table(
    session: Session, user: User, decision_id: str, *, files: Workspace
) -> tuple[ApprovalTable, bytes, int | None]:
    """Return the table as the newest quote approval version runs it, its DMN, and that version."""
    require_design_editor(session, user, APPROVAL_TABLE, decision_id)
    filename, process_id = APPROVAL_TABLES[decision_id]
    source, version = deployed_source(session, process_id, filename, files)
    return read_approval_table(source), source, version


def quote_inputs(quote: Quote, today: Any) -> dict[str, Any]:
    """Return the decision inputs of a quote, as submitting it computes them."""
    delivery_days = (quote.delivery_date - today).days if quote.delivery_date else 365
    return {
        "discount": float(quote.discount_pct),
        "amount": float(quote.total),
        "payment_days": quote.payment_days,
        "delivery_days": delivery_days,
    }


@dataclass
class QuoteChange:
    id: int
    number: str
    inputs: dict[str, Any]
    old: list[str] | None
    new: list[str] | None


@dataclass
class CoverageProblem:
    inputs: dict[str, Any]
    rows: list[int]  # empty: no row matches; several: rows overlap


@dataclass
class ApprovalPreview:
    version: int | None
    pending_total: int
    changed: list[QuoteChange] = field(default_factory=list)
    changed_total: int = 0
    gaps: list[CoverageProblem] = field(default_factory=list)
    overlaps: list[CoverageProblem] = field(default_factory=list)


def preview_approval_table(
    session: Session,
    user: User,
    decision_id: str,
    rows: list[ApprovalRow],
    *,
    files: Workspace,
    now: datetime,
) -> ApprovalPreview:
    """Evaluate the new rows against every pending quote and a grid of probe values.

    A pending quote keeps the chain it was given; the new chain applies to quotes submitted
    after the save. Only quotes the user may see are listed; the totals count all of them.
    :raises InvalidInput: naming the row and column of every bad entry.
    """
    table, _, version = load_approval_table(session, user, decision_id, files=files)
    check_rows(table, rows)
    preview = ApprovalPreview(version=version, pending_total=0)
    pending = session.scalars(select(Quote).where(Quote.status == "pending").order_by(Quote.id))
    for quote in pending:
        preview.pending_total += 1
        inputs = quote_inputs(quote, now.date())
        old = approvers_for(table, table.rows, inputs)
        new = approvers_for(table, rows, inputs)
        if old == new:
            continue
        preview.changed_total += 1
        if len(preview.changed) < MAX_LISTED and can_see_owner(session, user, quote.owner_id):
            preview.changed.append(QuoteChange(quote.id, quote.number, inputs, old, new))
    names = [c.name for c in table.inputs]
    for values in product(*(PROBES.get(name, (0,)) for name in names)):
        inputs = dict(zip(names, values, strict=True))
        matched = matching_rows(table, rows, inputs)
        if not matched and len(preview.gaps) < MAX_LISTED:
            preview.gaps.append(CoverageProblem(inputs, matched))
        elif len(matched) > 1 and len(preview.overlaps) < MAX_LISTED:
            preview.overlaps.append(CoverageProblem(inputs, matched))
    return preview


@dataclass(frozen=True)
class SavedTable:
    version: int | None
    result: DeployResult
    changes: list[dict[str, Any]]


def row_changes(old: tuple[ApprovalRow, ...], new: list[ApprovalRow]) -> list[dict[str, Any]]:
    """List added, removed, changed and moved rows (by rule id) as {"kind": ...} items."""
    before = {r.id: r for r in old}
    after_ids = {r.id for r in new if r.id}
    changes: list[dict[str, Any]] = [
        {"kind": "removed", "row": r.description or r.id} for r in old if r.id not in after_ids
    ]
    for number, row in enumerate(new, start=1):
        was = before.get(row.id) if row.id else None
        if was is None:
            changes.append({"kind": "added", "row": row.description or f"row {number}"})
        elif was != row:
            changes.append({"kind": "changed", "row": row.description or f"row {number}"})
    if [r.id for r in old if r.id in after_ids] != [r.id for r in new if r.id in before]:
        changes.append({"kind": "reordered", "row": ""})
    return changes


def save_approval_table(
    session: Session,
    user: User,
    decision_id: str,
    rows: list[ApprovalRow],
    comment: str,
    *,
    files: Workspace,
    now: datetime,
) -> SavedTable:
    """Write the rows into the DMN (ids kept) and deploy it with the process that runs it.

    :raises InvalidInput: bad entries, no comment, or nothing changed; nothing is deployed.
    :raises DeployRejected: the processes folder does not deploy; nothing is deployed.
    """
    table, source, _ = load_approval_table(session, user, decision_id, files=files)
    reason = collect_problems(lambda: check_rows(table, rows), lambda: check_comment(comment))
    changes = row_changes(table.rows, rows)
    if not changes:
        raise fields_error(rows="nothing changed: the rows are the same as the newest version")
    filename, process_id = APPROVAL_TABLES[decision_id]
    summary = "; ".join(f"{c['kind']} {c['row']}".strip() for c in changes)
    result = deploy_design(
        session,
        user,
        filename,
        write_approval_table(source, table, rows),
        files=files,
        comment=f"Approval table {decision_id}, by {user.username}: {summary}. Why: {reason}",
        now=now,
    )
    change = record_change(
        session,
        user,
        APPROVAL_TABLE,
        decision_id,
        result,
        process_id,
        comment=reason,
        changes=changes,
        now=now,
    )
    return SavedTable(change.process_version, result, changes)
