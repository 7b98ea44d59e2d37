"""Repairs from the ops console: one instance at a time behind a confirmation page, or in bulk on
a selection or a whole filter, with a per-instance report that can be downloaded as CSV.

Every page first shows what will happen; only a POST with `step=confirm` changes anything, and
it carries the instance version the page showed, so a change made meanwhile is refused.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from crm.directory.models import User
from crm.directory.services import actor_for
from crm.inbox.actions import reassign_choices
from crm.work import reassign_task_as
from engine.actor import Actor
from engine.errors import Conflict, InvalidInput, NotFound
from engine.instance_queries import matching_ids
from engine.instances import get_instance, open_tasks_of
from engine.models import ProcessDefinition, ProcessInstance
from engine.repair import (
    BULK_ACTIONS,
    MAX_BULK,
    check_migration,
    failed_task_data,
    get_repair_log,
    lock_for_repair,
    migration_targets,
    movable_elements,
    parse_task_data,
    preview_bulk,
    require_repairer,
    run_action,
    run_bulk_and_record,
    tokens_of,
)
from webapp.crm_pages.common import crm_user, csv_download, request_now
from webapp.errors import translate, translate_fields
from webapp.extensions import db
from webapp.ops import bp
from webapp.ops.console import filter_from_args

ACTIONS = ("suspend", "resume", "terminate", "retry", "reassign", "move", "migrate")
# Rows shown (and checked in advance) on a bulk confirmation page; the run covers them all.
PREVIEW_ROWS = 200


def _actor() -> Actor:
    actor = actor_for(crm_user())
    require_repairer(actor)
    return actor


def _tr(message: str) -> str:
    """Translate an engine message; reasons joined with '; ' are translated one by one."""
    return "; ".join(translate(part) for part in message.split("; ")) if message else ""


def _version() -> int | None:
    text = request.form.get("version", "")
    return int(text) if text.isdigit() else None


def _retry_params(form: Mapping[str, str]) -> dict[str, Any]:
    return {"data": parse_task_data(form.get("data", "")), "replace": form.get("mode") == "replace"}


def _move_params(form: Mapping[str, str]) -> dict[str, Any]:
    source, _sep, target = (form.get("move") or "").partition("|")
    source = source or form.get("source", "")
    target = target or form.get("target", "")
    if not source or not target:
        raise InvalidInput(_("Choose where the token goes."), {"move": [_("is required")]})
    return {"source": source, "target": target, "reason": form.get("reason", "")[:500]}


def _migrate_params(form: Mapping[str, str]) -> dict[str, Any]:
    text = form.get("definition_id", "")
    if not text.isdigit():
        raise InvalidInput(_("Choose a version."), {"definition_id": [_("is required")]})
    return {"definition_id": int(text)}


def _action_params(action: str, form: Mapping[str, str]) -> dict[str, Any]:
    """Read the parameters of an action from a form; raise InvalidInput naming the field."""
    if action == "retry":
        return _retry_params(form)
    if action == "move":
        return _move_params(form)
    if action == "migrate":
        return _migrate_params(form)
    return {"reason": form.get("reason", "")[:500]}


def _reassign_user(actor_user: User, form: Mapping[str, str]) -> User:
    to_id = form.get("to", "")
    chosen = next((u for u in reassign_choices(db.session, actor_user) if str(u.id) == to_id), None)
    if chosen is None:
        raise InvalidInput(_("Choose whom to give the task to."), {"to": [_("is required")]})
    return chosen


def _context(actor: Actor, instance: ProcessInstance, action: str) -> dict[str, Any]:
    """Return what the action's page shows: its choices and the current state they act on."""
    context: dict[str, Any] = {"instance": instance, "action": action}
    if action == "move":
        context["tokens"] = tokens_of(db.session, actor, instance.id)
    elif action == "migrate":
        context["versions"] = migration_targets(db.session, instance)
    elif action == "retry":
        data = failed_task_data(db.session, actor, instance.id)
        context["failed_data"] = data
        context["data_text"] = json.dumps(data or {}, indent=2, ensure_ascii=False, default=str)
    elif action == "reassign":
        context["tasks"] = open_tasks_of(db.session, instance.id)
        context["users"] = reassign_choices(db.session, crm_user())
    return context


def _render_action(
    context: dict[str, Any],
    *,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    **extra: Any,
) -> Any:
    form = request.form if request.method == "POST" else {}
    return render_template(
        "ops/actions/confirm.html",
        errors=translate_fields(errors),
        form=form,
        **context,
        **extra,
    ), status


def _perform(actor: Actor, instance: ProcessInstance, action: str) -> Any:
    now = request_now()
    if action == "reassign":
        task_id = request.form.get("task", "")
        tasks = {str(t.id): t for t in open_tasks_of(db.session, instance.id)}
        if task_id not in tasks:
            raise InvalidInput(_("Choose a task."), {"task": [_("is required")]})
        to = _reassign_user(crm_user(), request.form)
        lock_for_repair(db.session, actor, instance.id, _version())
        reassign_task_as(
            db.session,
            crm_user(),
            int(task_id),
            to,
            now=now,
            reason=request.form.get("reason", "")[:500],
        )
        return None
    params = _action_params(action, request.form)
    return run_action(
        db.session,
        actor,
        action,
        instance.id,
        now=now,
        params=params,
        expected_version=_version(),
    )


def _done_message(action: str, instance_id: int) -> str:
    messages = {
        "suspend": _("Instance #%(id)s is suspended.", id=instance_id),
        "resume": _("Instance #%(id)s runs again.", id=instance_id),
        "terminate": _("Instance #%(id)s is terminated.", id=instance_id),
        "retry": _("Instance #%(id)s was retried with the data you gave.", id=instance_id),
        "reassign": _("The task of instance #%(id)s was reassigned.", id=instance_id),
        "move": _("The token of instance #%(id)s was moved.", id=instance_id),
        "migrate": _("Instance #%(id)s now runs on the chosen version.", id=instance_id),
    }
    return messages[action]


@bp.route(
    "/instances/<int:instance_id>/actions/<action>",
    methods=["GET", "POST"],
    endpoint="action_confirm",
)
@login_required
def action_confirm(instance_id: int, action: str) -> Any:
    if action not in ACTIONS:
        abort(404)
    actor = _actor()
    instance = get_instance(db.session, instance_id)
    step = request.form.get("step", "") if request.method == "POST" else ""
    if step == "confirm":
        try:
            outcome = _perform(actor, instance, action)
        except InvalidInput as error:
            db.session.rollback()
            instance = get_instance(db.session, instance_id)
            context = _context(actor, instance, action)
            return _render_action(
                context, errors=error.fields or {"form": [error.message]}, status=422
            )
        except Conflict as error:
            db.session.rollback()
            instance = get_instance(db.session, instance_id)
            context = _context(actor, instance, action)
            # Show the instance as it is now: confirming again acts on what the user now sees.
            return _render_action(
                context, errors={"form": [error.message]}, status=409, seen=instance.version
            )
        incident = getattr(outcome, "incident", None)
        if incident is not None:
            message = _(
                "Instance #%(id)s failed again at %(element)s: %(message)s",
                id=instance_id,
                element=incident.bpmn_id or "?",
                message=incident.message,
            )
            flash(message, "error")
        else:
            flash(_done_message(action, instance_id))
        return redirect(url_for("ops.instance", instance_id=instance_id), 303)
    context = _context(actor, instance, action)
    if step == "check":
        return _check_step(actor, instance, action, context)
    return _render_action(context)


def _check_step(
    actor: Actor, instance: ProcessInstance, action: str, context: dict[str, Any]
) -> Any:
    """Show the result of checking the chosen parameters before the user confirms them."""
    try:
        params = _action_params(action, request.form)
    except InvalidInput as error:
        return _render_action(context, errors=error.fields, status=422)
    if action == "migrate":
        check = check_migration(db.session, actor, instance.id, params["definition_id"])
        chosen = db.session.get(ProcessDefinition, params["definition_id"])
        blockers = [translate(b) for b in check.blockers]
        return _render_action(context, check=check, chosen=chosen, blockers=blockers)
    if action == "move":
        token = next((t for t in context["tokens"] if t.element.bpmn_id == params["source"]), None)
        target = next(
            (e for e in (token.targets if token else ()) if e.bpmn_id == params["target"]), None
        )
        if token is None or target is None:
            message = _("There is no token there, or it cannot go to that element.")
            return _render_action(context, errors={"move": [message]}, status=422)
        return _render_action(context, move_plan=(token, target), params=params)
    return _render_action(context, params=params)


# --- bulk ---------------------------------------------------------------------------------------


def _confirmed_targets() -> dict[int, int | None]:
    """Read the "id:version" pairs a bulk confirmation page carries."""
    targets: dict[int, int | None] = {}
    for value in request.form.getlist("target"):
        instance_id, _sep, version = value.partition(":")
        if instance_id.isdigit():
            targets[int(instance_id)] = int(version) if version.isdigit() else None
    return targets


def _selected_ids(actor: Actor) -> list[int]:
    """Return the instances a bulk action was asked for: checked rows or the whole filter."""
    if request.form.get("scope") == "all":
        criteria = filter_from_args(request.form)
        return matching_ids(db.session, criteria, now=request_now(), limit=MAX_BULK + 1)
    return sorted({int(v) for v in request.form.getlist("instance_id") if v.isdigit()})


def _with_versions(ids: list[int]) -> dict[int, int | None]:
    rows = db.session.execute(
        select(ProcessInstance.id, ProcessInstance.version).where(ProcessInstance.id.in_(ids))
    )
    found = {instance_id: version for instance_id, version in rows}
    return {i: found.get(i) for i in ids}


def _bulk_choices(action: str, ids: list[int]) -> dict[str, Any]:
    rows = db.session.execute(
        select(ProcessInstance.process_id, ProcessInstance.definition_id)
        .where(ProcessInstance.id.in_(ids[:MAX_BULK]))
        .distinct()
    ).all()
    choices: dict[str, Any] = {}
    if action == "migrate":
        choices["versions"] = list(
            db.session.scalars(
                select(ProcessDefinition)
                .where(ProcessDefinition.process_id.in_({r.process_id for r in rows}))
                .order_by(ProcessDefinition.process_id, ProcessDefinition.version.desc())
            )
        )
    elif action == "move":
        sources, targets = movable_elements(db.session, _actor(), [r.definition_id for r in rows])
        choices["sources"], choices["move_targets"] = sources, targets
    elif action == "reassign":
        choices["users"] = reassign_choices(db.session, crm_user())
    return choices


def _bulk_params(action: str) -> dict[str, Any]:
    form = request.form
    if action == "reassign":
        to = _reassign_user(crm_user(), form)
        return {
            "to": to.username,
            "bpmn_id": form.get("bpmn_id", "").strip()[:255],
            "reason": form.get("reason", "")[:500],
        }
    if action == "retry" and not form.get("data", "").strip():
        return {"data": {}, "replace": False}
    return _action_params(action, form)


def _render_bulk(
    action: str,
    targets: dict[int, int | None],
    *,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Any:
    actor = _actor()
    ids = list(targets)
    shown = ids[:PREVIEW_ROWS]
    instances = {
        i.id: i
        for i in db.session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(shown)))
    }
    preview = None
    if not errors:
        try:
            params = _bulk_params(action)
        except InvalidInput:
            params = {}
        needed = {"migrate": "definition_id", "move": "source"}.get(action)
        if needed is None or params.get(needed):
            preview = {
                r.instance_id: replace(r, message=_tr(r.message))
                for r in preview_bulk(db.session, actor, action, shown, params)
            }
    return render_template(
        "ops/actions/bulk_confirm.html",
        action=action,
        targets=targets,
        shown=shown,
        instances=instances,
        preview=preview,
        errors=translate_fields(errors),
        form=request.form,
        max_bulk=MAX_BULK,
        **_bulk_choices(action, ids),
    ), status


@bp.post("/bulk", endpoint="bulk_confirm")
@login_required
def bulk_confirm() -> Any:
    actor = _actor()
    action = request.form.get("action", "")
    if action not in BULK_ACTIONS:
        flash(_("Choose an action first."), "error")
        return redirect(url_for("ops.instances"), 303)
    targets = _confirmed_targets()
    if not targets:
        try:
            ids = _selected_ids(actor)
        except InvalidInput as error:
            flash(error.message, "error")
            return redirect(url_for("ops.instances"), 303)
        if len(ids) > MAX_BULK:
            message = _("More than %(n)s instances match: narrow the filter.", n=MAX_BULK)
            flash(message, "error")
            return redirect(url_for("ops.instances", **_filter_params()), 303)
        targets = _with_versions(ids)
    if not targets:
        flash(_("Select at least one instance first."), "error")
        return redirect(url_for("ops.instances", **_filter_params()), 303)
    return _render_bulk(action, targets)


def _filter_params() -> dict[str, str]:
    keep = (
        "process",
        "key",
        "owner",
        "waiting_at",
        "definition",
        "customer",
        "idle_days",
        "status",
        "started_from",
        "started_to",
        "updated_from",
        "updated_to",
        "in_error",
    )
    return {k: v for k, v in request.form.items() if k in keep and v}


@bp.post("/bulk/run", endpoint="bulk_run")
@login_required
def bulk_run() -> Any:
    actor = _actor()
    action = request.form.get("action", "")
    targets = _confirmed_targets()
    if action not in BULK_ACTIONS or not targets:
        abort(400)
    try:
        params = _bulk_params(action)
        entry = run_bulk_and_record(
            db.session, actor, action, targets, now=request_now(), params=params
        )
    except InvalidInput as error:
        db.session.rollback()
        return _render_bulk(
            action, targets, errors=error.fields or {"form": [error.message]}, status=422
        )
    return redirect(url_for("ops.bulk_report", log_id=entry.id), 303)


def _report_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [item["instance_id"] for item in items]
    found = {
        i.id: i
        for i in db.session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(ids)))
    }
    return [{**item, "instance": found.get(item["instance_id"])} for item in items]


def _translated(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "message": _tr(row["message"])} for row in rows]


@bp.get("/bulk/<int:log_id>", endpoint="bulk_report")
@login_required
def bulk_report(log_id: int) -> Any:
    entry = get_repair_log(db.session, _actor(), log_id)
    if not entry.action.startswith("bulk_"):
        raise NotFound(f"repair report {log_id} does not exist")
    return render_template(
        "ops/actions/bulk_report.html",
        entry=entry,
        rows=_translated(_report_rows(entry.results["items"])),
    )


@bp.get("/bulk/<int:log_id>.csv", endpoint="bulk_report_csv")
@login_required
def bulk_report_csv(log_id: int) -> Any:
    entry = get_repair_log(db.session, _actor(), log_id)
    if not entry.action.startswith("bulk_"):
        raise NotFound(f"repair report {log_id} does not exist")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["instance_id", "process_id", "business_key", "outcome", "message"])
    for row in _report_rows(entry.results["items"]):
        instance = row["instance"]
        writer.writerow(
            [
                row["instance_id"],
                instance.process_id if instance else "",
                _csv_safe(instance.business_key or "") if instance else "",
                row["outcome"],
                _csv_safe(row["message"]),
            ]
        )
    return csv_download(out.getvalue(), f"repair-{log_id}.csv")


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ would run as a formula in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
