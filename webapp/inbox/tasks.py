"""The task page: instructions, customer context and the task's form; drafts and completion."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm.errors import Conflict, InvalidInput, NotFound
from crm.inbox.queries import display_names, process_names
from crm.inbox.taskpage import (
    is_closed_task,
    may_act_on,
    save_task_draft,
    task_context,
    task_form_schemas,
    tasks_opened_for,
)
from crm.work import complete_task_as, get_task_as, lock_task_as
from engine.db import utcnow
from engine.models import HumanTask
from webapp.extensions import db
from webapp.inbox.routes import is_htmx, raw_form
from webapp.taskforms.fields import RawValues, add_row, build_fields, raw_from_values, remove_row
from webapp.taskforms.instructions import render_instructions
from webapp.taskforms.render import render_fields
from webapp.taskforms.values import FieldErrors, check_form, coerce, engine_errors

bp = Blueprint("tasks", __name__)


def render_task(
    task: HumanTask,
    raw: RawValues | None = None,
    errors: FieldErrors | None = None,
    *,
    status: int = 200,
    stale: str | None = None,
) -> Any:
    """Show a task; `raw` is what the user typed (None: the saved draft, or a fresh form)."""
    user = current_user.user
    schema, ui = task_form_schemas(db.session, task)
    if raw is None and task.draft and schema:
        raw = raw_from_values(schema, ui, task.draft)
    fields = build_fields(schema, ui, raw) if schema else []
    action = url_for("tasks.submit", task_id=task.id)
    if is_htmx() and request.method == "POST" and stale is None:
        return render_fields(fields, errors, action=action), status
    is_open = task.status == "open" and stale is None
    people = display_names(db.session, [task.assignee, task.completed_by, task.candidate_user])
    return render_template(
        "inbox/task.html",
        task=task,
        process_name=process_names(db.session, [task.process_id]).get(task.process_id),
        people=people,
        instructions=render_instructions(task.instructions),
        context=task_context(db.session, user, task),
        fields_html=render_fields(fields, errors, action=action) if is_open else "",
        has_fields=bool(fields),
        errors=errors or {},
        can_act=is_open and may_act_on(db.session, user, task),
        stale=stale,
        me=user.username,
        now=utcnow(),
    ), status


@bp.get("/tasks/<int:task_id>")
@login_required
def show(task_id: int) -> Any:
    return render_task(get_task_as(db.session, current_user.user, task_id))


@bp.post("/tasks/<int:task_id>")
@login_required
def submit(task_id: int) -> Any:
    user = current_user.user
    raw = raw_form()
    editing_rows = bool(request.form.get("_add_row") or request.form.get("_remove_row"))
    locked = None
    try:
        if editing_rows:
            task = get_task_as(db.session, user, task_id)
        else:
            # A post that may complete the task reads it under the lock it completes it with.
            locked = lock_task_as(db.session, user, task_id)
            task = locked.task
    except NotFound:
        # Someone else finished it and it left the user's view: the form is stale, not wrong.
        if is_closed_task(db.session, task_id):
            return render_template("inbox/stale.html"), 409
        raise
    if request.form.get("_add_row"):
        return render_task(task, add_row(raw, request.form["_add_row"]))
    if request.form.get("_remove_row"):
        return render_task(task, remove_row(raw, request.form["_remove_row"]))
    if task.status != "open":
        return render_task(task, raw, status=409, stale=task.status)
    schema, ui = task_form_schemas(db.session, task, locked.instance if locked else None)
    fields = build_fields(schema, ui, raw) if schema else []
    if request.form.get("_action") == "draft":
        return save_draft(task, raw, fields)
    values, errors = check_form(schema, fields)
    if errors:
        return render_task(task, raw, errors, status=422)
    try:
        outcome = complete_task_as(db.session, user, task_id, values, now=utcnow(), locked=locked)
    except Conflict as exc:
        db.session.rollback()
        return render_task(task, raw, status=409, stale=exc.message)
    except InvalidInput as exc:
        db.session.rollback()
        return render_task(task, raw, engine_errors(exc.fields), status=422)
    next_tasks = tasks_opened_for(user, outcome)
    if next_tasks:
        flash(
            _(
                "“%(title)s” is done. Next for you: “%(next)s”.",
                title=task.title,
                next=next_tasks[0].title,
            )
        )
    else:
        flash(_("“%(title)s” is done.", title=task.title))
    return redirect(url_for("inbox.index"), 303)


def save_draft(task: HumanTask, raw: RawValues, fields: list[Any]) -> Any:
    errors: FieldErrors = {}
    values = coerce(fields, errors)
    save_task_draft(db.session, current_user.user, task.id, values, now=utcnow())
    if errors:
        flash(_("Draft saved, except the fields marked below, which could not be read."))
        return render_task(task, raw, errors)
    flash(_("Draft saved. You can come back to it later."))
    return redirect(url_for("tasks.show", task_id=task.id), 303)
