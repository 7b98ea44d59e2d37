"""The inbox: tabs, filters and paging; claim, put back and urge; bulk actions for managers.

Every page works as plain HTML forms and links. With htmx, the same routes answer requests
marked `HX-Request` with the inbox panel alone, which then replaces the one on the page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_login import current_user, login_required

from crm.directory.models import User
from crm.errors import Conflict, Forbidden, InvalidInput, NotFound
from crm.inbox.actions import (
    UrgeRefused,
    bulk_claim,
    bulk_complete,
    bulk_reassign,
    reassign_names,
    urge_task,
)
from crm.inbox.queries import InboxQuery, inbox_page, parse_inbox_query
from crm.inbox.taskpage import may_manage_tasks, task_form_schemas
from crm.work import claim_task_as, get_task_as, release_task_as
from engine.db import utcnow
from engine.models import HumanTask
from webapp.extensions import db
from webapp.inbox.rows import build_rows
from webapp.taskforms.fields import RawValues, add_row, build_fields, remove_row
from webapp.taskforms.render import render_fields
from webapp.taskforms.values import FieldErrors, check_form

bp = Blueprint("inbox", __name__)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def local_zone() -> ZoneInfo:
    """The zone that decides what "today" and "this week" mean (setting TIMEZONE, else UTC)."""
    return ZoneInfo(current_app.config.get("TIMEZONE", "UTC"))


def raw_form() -> RawValues:
    """Return the submitted form values, without CSRF token and our own `_` controls."""
    form = request.form
    return {k: form.getlist(k) for k in form if not k.startswith("_") and k != "csrf_token"}


def render_inbox(query: InboxQuery, status: int = 200) -> Response:
    user = current_user.user
    page = inbox_page(db.session, user, query, now=utcnow(), tz=local_zone())
    manage = may_manage_tasks(user)
    context: dict[str, Any] = {
        "page": page,
        "rows": build_rows(page, me=user.username, inbox_path=url_for("inbox.index")),
        "q": page.query,
        "return_to": urlencode(page.query.as_params()),
        "manage": manage,
        "team": reassign_names(db.session, user, visible=page.scope) if manage else [],
        "me": user.username,
        "partial": is_htmx(),
        # The navigation's badge counts the same tasks as these two tabs: no second query.
        "open_task_count": lambda: page.counts["mine"] + page.counts["open"],
    }
    template = "inbox/_panel.html" if is_htmx() else "inbox/index.html"
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response


@bp.get("/inbox")
@login_required
def index() -> Response:
    return render_inbox(parse_inbox_query(request.args))


def back_to_inbox() -> Any:
    """After an action: the task page it came from, the panel for htmx, else the inbox as it was."""
    task_id = request.form.get("back_to_task", type=int)
    if task_id and not is_htmx():
        return redirect(url_for("tasks.show", task_id=task_id), 303)
    query = parse_inbox_query(dict(parse_qsl(request.form.get("_return_to") or "")))
    if is_htmx():
        return render_inbox(query)
    return redirect(url_for("inbox.index", **query.as_params()), 303)


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int) -> Any:
    try:
        task = claim_task_as(db.session, current_user.user, task_id, now=utcnow())
    except Forbidden:
        db.session.rollback()
        flash(_("This task is not offered to you."), "error")
    except (Conflict, NotFound):  # once someone else holds it, the user no longer sees it
        db.session.rollback()
        flash(_("Someone else claimed this task first, or it is no longer open."), "error")
    else:
        flash(_("You claimed “%(title)s”. It is now in your tasks.", title=task.title))
    return back_to_inbox()


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id: int) -> Any:
    try:
        task = release_task_as(db.session, current_user.user, task_id, now=utcnow())
    except (Conflict, Forbidden):
        db.session.rollback()
        flash(_("This task cannot be put back: it has no group queue or is not yours."), "error")
    else:
        flash(_("“%(title)s” is back in the open queue.", title=task.title))
    return back_to_inbox()


@bp.post("/tasks/<int:task_id>/urge")
@login_required
def urge(task_id: int) -> Any:
    user = current_user.user
    try:
        note = urge_task(
            db.session,
            user,
            task_id,
            now=utcnow(),
            link=url_for("tasks.show", task_id=task_id),
        )
    except UrgeRefused as exc:
        db.session.rollback()
        flash(_urge_refusal(exc), "error")
    else:
        holder = db.session.get(User, note.user_id)
        task = get_task_as(db.session, user, task_id)
        name = holder.display_name if holder else task.assignee
        flash(_("%(name)s has been reminded of “%(title)s”.", name=name, title=task.title))
    return back_to_inbox()


def _urge_refusal(exc: UrgeRefused) -> str:
    if exc.reason == "recently":
        retry_at = format_datetime(exc.retry_at, "short") if exc.retry_at else ""
        return _(
            "You already urged this task within the last hour. You can urge again after %(time)s.",
            time=retry_at,
        )
    if exc.reason == "nobody":
        return _("Nobody holds this task yet, so there is nobody to urge.")
    if exc.reason == "yourself":
        return _("You hold this task yourself.")
    return _("This task is no longer open.")


def selected_task_ids(name: str = "task") -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdigit()]


def clean_return_to() -> str:
    """Return the inbox query an action came from, rebuilt from known parameters only."""
    query = parse_inbox_query(dict(parse_qsl(request.form.get("_return_to") or "")))
    return urlencode(query.as_params())


@bp.post("/inbox/bulk")
@login_required
def bulk() -> Any:
    user, ids, action = current_user.user, selected_task_ids(), request.form.get("action")
    if action not in ("claim", "reassign", "complete"):
        abort(400)
    if not ids:
        flash(_("Select at least one task first."), "error")
        return back_to_inbox()
    if action == "complete":
        if not may_manage_tasks(user):
            raise Forbidden("only managers may complete tasks in bulk")
        return bulk_complete_form(ids, None)
    if action == "claim":
        results = bulk_claim(db.session, user, ids, now=utcnow())
    else:
        to_user_id = request.form.get("assignee", type=int)
        if to_user_id is None:
            if not may_manage_tasks(user):
                raise Forbidden("only managers may reassign tasks")
            flash(_("Choose whom to give the selected tasks to."), "error")
            return back_to_inbox()
        results = bulk_reassign(db.session, user, ids, to_user_id, now=utcnow())
    return render_template(
        "inbox/bulk_report.html",
        results=results,
        action=action,
        return_to=clean_return_to(),
    )


def bulk_complete_form(
    ids: list[int], raw: RawValues | None, errors: FieldErrors | None = None, status: int = 200
) -> Any:
    """Show the answer form of the first selected task, for all the selected tasks."""
    tasks: list[HumanTask] = []
    for task_id in ids:
        try:
            tasks.append(get_task_as(db.session, current_user.user, task_id))
        except NotFound:  # a task the user may not see is simply not listed
            continue
    if not tasks:
        abort(404)
    schema, ui = task_form_schemas(db.session, tasks[0])
    fields = build_fields(schema, ui, raw) if schema else []
    if is_htmx() and raw is not None:
        return render_fields(fields, errors, action=url_for("inbox.bulk_complete"))
    return render_template(
        "inbox/bulk_complete.html",
        tasks=tasks,
        mixed=len({t.form for t in tasks}) > 1,
        fields_html=render_fields(fields, errors, action=url_for("inbox.bulk_complete")),
        has_fields=bool(fields),
        errors=errors or {},
        return_to=clean_return_to(),
    ), status


@bp.post("/inbox/bulk/complete", endpoint="bulk_complete")
@login_required
def bulk_complete_submit() -> Any:
    user, ids = current_user.user, selected_task_ids("_task")
    if not may_manage_tasks(user):
        raise Forbidden("only managers may complete tasks in bulk")
    if not ids:
        flash(_("Select at least one task first."), "error")
        return back_to_inbox()
    raw = raw_form()
    if request.form.get("_add_row"):
        return bulk_complete_form(ids, add_row(raw, request.form["_add_row"]))
    if request.form.get("_remove_row"):
        return bulk_complete_form(ids, remove_row(raw, request.form["_remove_row"]))
    first = get_task_as(db.session, user, ids[0])
    schema, ui = task_form_schemas(db.session, first)
    values, errors = check_form(schema, build_fields(schema, ui, raw) if schema else [])
    if errors:
        return bulk_complete_form(ids, raw, errors, 422)
    try:
        results = bulk_complete(db.session, user, ids, values, now=utcnow())
    except InvalidInput as exc:
        flash(exc.message, "error")
        return back_to_inbox()
    return render_template(
        "inbox/bulk_report.html",
        results=results,
        action="complete",
        return_to=clean_return_to(),
    )
