"""The console's read side: the instance list with its filters, one instance, and the heatmap.

`filter_from_args` is the one reader of the list's filter parameters; the bulk actions parse the
selection they were given with it, so they act on exactly what the list showed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Response, jsonify, render_template, request
from flask_babel import format_timedelta
from flask_babel import gettext as _

from crm.directory.services import actor_for
from crm.ops_lookup import instance_overview, subject_labels
from engine.actor import Actor
from engine.errors import InvalidInput
from engine.instance_elements import element_statistics
from engine.instance_queries import (
    COUNT_LIMIT,
    STATUSES,
    InstanceFilter,
    definition_choices,
    definition_diagram,
    list_instances,
    require_console_access,
)
from webapp.crm_pages.common import crm_user, request_now, require_sign_in
from webapp.extensions import db
from webapp.ops import bp

bp.before_request(require_sign_in)

# GET parameter -> InstanceFilter field, for the plain text and number fields.
_TEXT_PARAMS = {
    "process": "process_id",
    "key": "business_key",
    "owner": "owner",
    "waiting_at": "waiting_at",
}
_NUMBER_PARAMS = {
    "definition": "definition_id",
    "customer": "customer_id",
    "idle_days": "idle_days",
}
# Days (YYYY-MM-DD); each parameter has the name of its InstanceFilter field.
_DAY_PARAMS = ("started_from", "started_to", "updated_from", "updated_to")
FILTER_PARAMS = (*_TEXT_PARAMS, *_NUMBER_PARAMS, "status", *_DAY_PARAMS, "in_error")


def _day_bound(name: str, text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        message = _("'%(value)s' is not a date (YYYY-MM-DD)", value=text[:40])
        raise InvalidInput(message, {name: [message]}) from None
    # A "to" day includes the whole day: the bound is the next midnight (UTC), exclusive.
    if name.endswith("_to"):
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=UTC)


def _read_numbers(args: Mapping[str, str], values: dict[str, Any], errors: dict[str, Any]) -> None:
    for param, name in _NUMBER_PARAMS.items():
        text = (args.get(param) or "").strip()
        if not text:
            continue
        if not text.isdigit() or len(text) > 9:
            errors[param] = [_("'%(value)s' is not a whole number", value=text[:40])]
        else:
            values[name] = int(text)


def _read_days(args: Mapping[str, str], values: dict[str, Any], errors: dict[str, Any]) -> None:
    for param in _DAY_PARAMS:
        text = (args.get(param) or "").strip()
        if not text:
            continue
        try:
            values[param] = _day_bound(param, text)
        except InvalidInput as error:
            errors.update(error.fields)


def filter_from_args(args: Mapping[str, str]) -> InstanceFilter:
    """Read the list's filter from URL or form parameters; raise InvalidInput naming the field."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for param, name in _TEXT_PARAMS.items():
        text = (args.get(param) or "").strip()[:255]
        if text:
            values[name] = text
    _read_numbers(args, values, errors)
    _read_days(args, values, errors)
    status = (args.get("status") or "").strip()
    if status and status not in STATUSES:
        errors["status"] = [
            _(
                "'%(value)s' is not one of %(choices)s",
                value=status[:40],
                choices=", ".join(STATUSES),
            )
        ]
    elif status:
        values["status"] = status
    if (args.get("in_error") or "") in ("1", "on", "true"):
        values["in_error"] = True
    if errors:
        raise InvalidInput(
            _("please correct: %(fields)s", fields=", ".join(sorted(errors))), errors
        )
    return InstanceFilter(**values)


def filter_args(criteria: InstanceFilter) -> dict[str, str]:
    """Write a filter back as the parameters `filter_from_args` reads (for links and forms)."""
    params: dict[str, str] = {}
    for param, name in {**_TEXT_PARAMS, **_NUMBER_PARAMS}.items():
        value = getattr(criteria, name)
        if value is not None:
            params[param] = str(value)
    if criteria.status:
        params["status"] = criteria.status
    for param in _DAY_PARAMS:
        value = getattr(criteria, param)
        if value is not None:
            day = value.date() - timedelta(days=1) if param.endswith("_to") else value.date()
            params[param] = day.isoformat()
    if criteria.in_error:
        params["in_error"] = "1"
    return params


def _actor() -> Actor:
    actor = actor_for(crm_user())
    require_console_access(actor)
    return actor


def _before() -> int | None:
    text = request.args.get("before", "")
    return int(text) if text.isdigit() and len(text) < 12 else None


@bp.get("/instances")
def instances() -> Any:
    actor = _actor()
    errors: dict[str, list[str]] = {}
    try:
        criteria = filter_from_args(request.args)
    except InvalidInput as error:
        criteria, errors = InstanceFilter(), error.fields
    now = request_now()
    choices = definition_choices(db.session, actor)
    if errors:
        page = None
        labels = {}
    else:
        page = list_instances(db.session, actor, criteria, now=now, before=_before())
        labels = subject_labels(
            db.session, [(r.instance.subject_type, r.instance.subject_id) for r in page.rows]
        )
    return render_template(
        "ops/console/list.html",
        criteria=criteria,
        params=filter_args(criteria) if not errors else dict(request.args),
        page=page,
        labels=labels,
        errors=errors,
        statuses=STATUSES,
        count_limit=COUNT_LIMIT,
        processes=sorted({(c.process_id, c.name) for c in choices}),
        definitions=choices,
        now=now,
    ), (422 if errors else 200)


@bp.get("/instances/<int:instance_id>")
def instance(instance_id: int) -> Any:
    actor = _actor()
    view = instance_overview(db.session, actor, instance_id)
    return render_template(
        "ops/console/instance.html", instance=view.instance, view=view, now=request_now()
    )


@bp.get("/definitions/<int:definition_id>/diagram.bpmn")
def diagram(definition_id: int) -> Response:
    xml = definition_diagram(db.session, _actor(), definition_id)
    # Plain text in a sandbox: the viewer reads it with fetch, and a diagram opened directly
    # can never run script that an XML document could carry.
    return Response(
        xml,
        mimetype="text/plain",
        headers={
            "Cache-Control": "private",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _statistics_json(definition_id: int, actor: Actor) -> list[dict[str, Any]]:
    stats = element_statistics(db.session, actor, definition_id, now=request_now())
    return [
        {
            "bpmn_id": s.bpmn_id,
            "waiting": s.waiting,
            "errors": s.errors,
            "average_wait_seconds": int(s.average_wait.total_seconds()),
            "average_wait": format_timedelta(s.average_wait, threshold=1.0) if s.waiting else "",
        }
        for s in stats
    ]


@bp.get("/heatmap/<int:definition_id>.json")
def heatmap_json(definition_id: int) -> Response:
    return jsonify(
        {"definition_id": definition_id, "elements": _statistics_json(definition_id, _actor())}
    )


@bp.get("/heatmap")
def heatmap() -> Any:
    actor = _actor()
    choices = definition_choices(db.session, actor)
    process_id = (request.args.get("process") or "").strip()
    if not process_id and choices:
        process_id = choices[0].process_id
    versions = [c for c in choices if c.process_id == process_id]
    wanted = request.args.get("definition", "")
    chosen = next((c for c in versions if str(c.id) == wanted), versions[0] if versions else None)
    return render_template(
        "ops/console/heatmap.html",
        processes=sorted({(c.process_id, c.name) for c in choices}),
        process_id=process_id,
        versions=versions,
        chosen=chosen,
        elements=_statistics_json(chosen.id, actor) if chosen else [],
    )
