"""The managers' designer pages: stage editor per pipeline, approval-table editor, owners.

Thin views over `crm.stage_design`: each parses the form, calls one service and renders. The
services decide who may edit what (admins any design, managers the designs their teams own).
Row actions (add, move, remove) re-render the editor without saving; with htmx only the editor
part is swapped. Endpoints are named `stages_*` and `approvals_*`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

import crm.stage_design  # noqa: F401  (registers the design tables until crm/__init__ does)
from crm.designer.workspace import Workspace
from crm.directory.models import Team
from crm.errors import InvalidInput
from crm.stage_design.approval_dmn import ApprovalRow, ApprovalTable
from crm.stage_design.approvals import (
    load_approval_table,
    preview_approval_table,
    save_approval_table,
)
from crm.stage_design.models import APPROVAL_TABLE, PIPELINE
from crm.stage_design.pipelines import (
    describe_change,
    load_pipeline,
    preview_pipeline,
    save_pipeline,
)
from crm.stage_design.services import (
    design_history,
    list_designs,
    may_use_designer,
    require_design_editor,
    set_design_owner,
)
from crm.stage_design.stages import StageSpec, assign_new_keys, criteria_choices
from engine.errors import DeployRejected
from webapp.crm_pages.common import crm_user, field_errors, form_int, request_now, require_sign_in
from webapp.designer import bp
from webapp.extensions import db

MAX_ROWS = 100
ROW_ACTIONS = ("add", "up", "down", "remove")


@bp.app_template_global("stage_designer_allowed")
def stage_designer_allowed() -> bool:
    """Tell the navigation whether to show the stage and approval editors."""
    return bool(current_user.is_authenticated and may_use_designer(db.session, crm_user()))


def _signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        refused = require_sign_in()
        return refused if refused is not None else view(*args, **kwargs)

    return guarded


def _files() -> Workspace:
    return Workspace(
        Path(current_app.config["PROCESSES_DIR"]), Path(current_app.config["FORMS_DIR"])
    )


def _count(name: str) -> int:
    text = request.form.get(name, "0")
    return min(int(text), MAX_ROWS) if text.isdigit() and len(text) < 4 else 0


def _number(field: str, problems: dict[str, list[str]], label: str) -> int:
    try:
        value = form_int(request.form, field)
    except InvalidInput:
        value = None
    if value is None:
        problems[field] = [_("%(what)s must be a whole number", what=label)]
        return -1
    return value


def _posted_stages() -> tuple[list[StageSpec], dict[str, list[str]]]:
    """Read the stage rows; a field that is not a number is reported, not guessed."""
    problems: dict[str, list[str]] = {}
    stages = []
    known = criteria_choices()
    for row in range(1, _count("stage_count") + 1):
        prefix = f"stages-{row}-"
        stages.append(
            StageSpec(
                key=request.form.get(prefix + "key", "").strip()[:40],
                label=request.form.get(prefix + "label", "").strip()[:200],
                win_rate=_number(prefix + "win_rate", problems, _("Stage %(n)s win rate", n=row)),
                max_days=_number(prefix + "max_days", problems, _("Stage %(n)s max days", n=row)),
                criteria=tuple(c for c in known if c in request.form.getlist(prefix + "criteria")),
                guidance=request.form.get(prefix + "guidance", "").strip()[:2000],
            )
        )
    return stages, problems


def _row_action(rows: list[Any], blank: Callable[[], Any]) -> bool:
    """Apply an add/up/down/remove button to the rows; tell whether one was pressed."""
    action, _sep, where = request.form.get("action", "").partition("-")
    if action not in ROW_ACTIONS:
        return False
    index = int(where) - 1 if where.isdigit() else -1
    if action == "add" and len(rows) < MAX_ROWS:
        rows.insert(index + 1 if 0 <= index < len(rows) else len(rows), blank())
    elif action == "remove" and 0 <= index < len(rows):
        rows.pop(index)
    elif action == "up" and 0 < index < len(rows):
        rows[index - 1], rows[index] = rows[index], rows[index - 1]
    elif action == "down" and 0 <= index < len(rows) - 1:
        rows[index + 1], rows[index] = rows[index], rows[index + 1]
    return True


@bp.get("/stages/")
@_signed_in
def stages_index() -> str:
    me = crm_user()
    designs = list_designs(db.session, me)
    teams = []
    if "admin" in me.roles:
        teams = [
            (r.id, r.name)
            for r in db.session.execute(select(Team.id, Team.name).order_by(Team.name))
        ]
    return render_template(
        "designer/stages/index.html",
        designs=designs,
        teams=teams,
        is_admin="admin" in me.roles,
        PIPELINE=PIPELINE,
    )


@bp.post("/stages/owners")
@_signed_in
def stages_set_owner() -> Any:
    kind, key = request.form.get("kind", ""), request.form.get("key", "")
    team_id = form_int(request.form, "team_id")
    set_design_owner(db.session, crm_user(), kind, key, team_id, now=request_now())
    flash(_("Owner of %(key)s saved.", key=key))
    return redirect(url_for(".stages_index"))


def _pipeline_page(
    key: str,
    stages: list[StageSpec],
    *,
    errors: dict[str, list[str]] | None = None,
    preview: Any = None,
    problems: list[Any] | None = None,
    status: int = 200,
) -> Any:
    me = crm_user()
    current, version = load_pipeline(db.session, me, key, files=_files())
    template = (
        "designer/stages/_stage_rows.html"
        if request.headers.get("HX-Request") and preview is None
        else "designer/stages/pipeline.html"
    )
    return render_template(
        template,
        key=key,
        name=current.name,
        version=version,
        stages=stages,
        criteria=criteria_choices(),
        errors=errors or {},
        preview=preview,
        problems=problems or [],
        comment=request.form.get("comment", ""),
        history=design_history(db.session, me, PIPELINE, key),
        describe=describe_change,
    ), status


@bp.route("/stages/<key>", methods=["GET", "POST"])
@_signed_in
def stages_edit(key: str) -> Any:
    me = crm_user()
    require_design_editor(db.session, me, PIPELINE, key)
    if request.method == "GET":
        current, _version = load_pipeline(db.session, me, key, files=_files())
        return _pipeline_page(key, list(current.stages))
    posted, problems = _posted_stages()
    if _row_action(posted, lambda: StageSpec("", "", 0, 14)):
        return _pipeline_page(key, posted)
    if problems:
        return _pipeline_page(key, posted, errors=problems, status=422)
    current, _version = load_pipeline(db.session, me, key, files=_files())
    stages = assign_new_keys(posted, {s.key for s in current.stages})
    try:
        if request.form.get("action") == "save":
            saved = save_pipeline(
                db.session,
                me,
                key,
                stages,
                request.form.get("comment", ""),
                files=_files(),
                now=request_now(),
            )
            flash(
                _(
                    "Saved: %(name)s is now version %(version)s.",
                    name=current.name,
                    version=saved.version,
                )
            )
            return redirect(url_for(".stages_edit", key=key))
        preview = preview_pipeline(db.session, me, key, stages, files=_files())
    except InvalidInput as exc:
        return _pipeline_page(key, stages, errors=field_errors(exc), status=422)
    except DeployRejected as exc:
        return _pipeline_page(key, stages, problems=exc.problems, status=422)
    return _pipeline_page(key, stages, preview=preview)


def _posted_rows(table: ApprovalTable) -> list[ApprovalRow]:
    rows = []
    for row in range(1, _count("row_count") + 1):
        prefix = f"rows-{row}-"
        rows.append(
            ApprovalRow(
                id=request.form.get(prefix + "id", "").strip()[:80] or None,
                description=request.form.get(prefix + "description", "").strip()[:500],
                conditions={
                    c.name: request.form.get(prefix + c.name, "").rstrip()[:500] or "-"
                    for c in table.inputs
                },
                outputs={c.name: bool(request.form.get(prefix + c.name)) for c in table.outputs},
            )
        )
    return rows


def _approvals_page(
    decision_id: str,
    table: ApprovalTable,
    rows: list[ApprovalRow],
    version: int | None,
    *,
    errors: dict[str, list[str]] | None = None,
    preview: Any = None,
    problems: list[Any] | None = None,
    status: int = 200,
) -> Any:
    template = (
        "designer/stages/_approval_rows.html"
        if request.headers.get("HX-Request") and preview is None
        else "designer/stages/approvals.html"
    )
    return render_template(
        template,
        decision_id=decision_id,
        table=table,
        rows=rows,
        version=version,
        errors=errors or {},
        preview=preview,
        problems=problems or [],
        comment=request.form.get("comment", ""),
        history=design_history(db.session, crm_user(), APPROVAL_TABLE, decision_id),
    ), status


@bp.route("/approvals/<decision_id>", methods=["GET", "POST"])
@_signed_in
def approvals_edit(decision_id: str) -> Any:
    me = crm_user()
    require_design_editor(db.session, me, APPROVAL_TABLE, decision_id)
    table, _source, version = load_approval_table(db.session, me, decision_id, files=_files())
    if request.method == "GET":
        return _approvals_page(decision_id, table, list(table.rows), version)
    rows = _posted_rows(table)
    blank = ApprovalRow(None, "", {c.name: "-" for c in table.inputs}, {})
    if _row_action(rows, lambda: blank):
        return _approvals_page(decision_id, table, rows, version)
    try:
        if request.form.get("action") == "save":
            saved = save_approval_table(
                db.session,
                me,
                decision_id,
                rows,
                request.form.get("comment", ""),
                files=_files(),
                now=request_now(),
            )
            flash(
                _(
                    "Saved: the approval table now runs in quote approval version %(version)s.",
                    version=saved.version,
                )
            )
            return redirect(url_for(".approvals_edit", decision_id=decision_id))
        preview = preview_approval_table(
            db.session, me, decision_id, rows, files=_files(), now=request_now()
        )
    except InvalidInput as exc:
        return _approvals_page(
            decision_id, table, rows, version, errors=field_errors(exc), status=422
        )
    except DeployRejected as exc:
        return _approvals_page(decision_id, table, rows, version, problems=exc.problems, status=422)
    return _approvals_page(decision_id, table, rows, version, preview=preview)
