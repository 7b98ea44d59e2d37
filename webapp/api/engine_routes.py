"""API routes for processes, instances and tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app, jsonify, request
from werkzeug.utils import secure_filename

from crm.directory.services import actor_for, visible_owner_ids
from crm.errors import Forbidden, InvalidInput, NotFound
from crm.lanes import owner_of_subject
from crm.work import claim_task_as, complete_task_as, get_task_as
from engine.db import utcnow
from engine.deploy import deploy_files, folder_form_loader, latest_definitions
from engine.errors import DeployRejected
from engine.instances import get_instance, start_instance
from engine.tasks import tasks_for
from engine.views import describe_instance, describe_task
from webapp.api import api_user, bp, dump, load
from webapp.api.schemas import DefinitionSchema, InstanceSchema, StartInstanceSchema, TaskSchema
from webapp.extensions import db

START_ROLES = frozenset({"admin", "ops", "manager", "director"})


@bp.get("/processes")
def list_processes() -> Any:
    rows = [
        {
            "process_id": d.process_id,
            "name": d.name,
            "version": d.version,
            "definition_id": d.id,
            "deployed_at": d.created_at,
        }
        for d in latest_definitions(db.session)
    ]
    return dump(DefinitionSchema(many=True), rows)


@bp.post("/processes")
def deploy_processes() -> Any:
    user = api_user()
    if "admin" not in user.roles:
        raise Forbidden("only admins deploy processes")
    files = {
        secure_filename(f.filename or "upload.bpmn"): f.read()
        for f in request.files.getlist("files")
    }
    try:
        result = deploy_files(
            db.session,
            user.username,
            files,
            now=utcnow(),
            comment=request.form.get("comment"),
            load_form=folder_form_loader(Path(current_app.config["FORMS_DIR"])),
        )
    except DeployRejected as exc:
        return jsonify(
            {"error": exc.message, "fields": {}, "problems": [p.as_dict() for p in exc.problems]}
        ), 422
    return jsonify(result.as_dict()), 201 if result.created else 200


@bp.post("/instances")
def start() -> Any:
    user = api_user()
    if not user.roles & START_ROLES:
        raise Forbidden("starting processes by hand is for managers, admins and ops")
    body = load(StartInstanceSchema())
    outcome = start_instance(
        db.session,
        actor_for(user),
        body["process_id"],
        now=utcnow(),
        data=body["data"],
        business_key=body["business_key"],
    )
    return dump(InstanceSchema(), describe_instance(db.session, outcome.instance), 201)


@bp.get("/instances/<int:instance_id>")
def show_instance(instance_id: int) -> Any:
    user = api_user()
    instance = get_instance(db.session, instance_id)
    scope = visible_owner_ids(db.session, user)
    owner = owner_of_subject(db.session, instance.subject_type, instance.subject_id)
    allowed = (
        scope is None
        or instance.started_by == user.username
        or (owner is not None and owner.id in scope)
    )
    if not allowed:
        raise NotFound(f"process instance {instance_id} does not exist")
    return dump(InstanceSchema(), describe_instance(db.session, instance))


@bp.get("/tasks")
def list_tasks() -> Any:
    tasks = tasks_for(
        db.session, actor_for(api_user()), limit=min(int(request.args.get("limit", 50)), 200)
    )
    return dump(TaskSchema(many=True), [describe_task(t) for t in tasks])


@bp.get("/tasks/<int:task_id>")
def show_task(task_id: int) -> Any:
    return dump(TaskSchema(), describe_task(get_task_as(db.session, api_user(), task_id)))


@bp.post("/tasks/<int:task_id>/claim")
def claim(task_id: int) -> Any:
    task = claim_task_as(db.session, api_user(), task_id, now=utcnow())
    return dump(TaskSchema(), describe_task(task))


@bp.post("/tasks/<int:task_id>/complete")
def complete(task_id: int) -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidInput('send {"data": {...}}', {"data": ["expected an object"]})
    outcome = complete_task_as(db.session, api_user(), task_id, body["data"], now=utcnow())
    return dump(InstanceSchema(), describe_instance(db.session, outcome.instance))
