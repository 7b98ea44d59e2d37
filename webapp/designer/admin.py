"""The admins' designer pages: modeler, checks, save, deploy, history, diff, rollback, forms.

Thin views over `crm.designer`: each parses the request, calls one service and renders or
serializes. Every route lets only admins in (the services check it; `_admin_only` sends
anonymous visitors to sign in first).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import (
    Response,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from crm.designer.access import may_design, require_designer
from crm.designer.forms import list_forms, preview_form, read_form, save_form
from crm.designer.history import diff_versions, process_versions, recent_changes, version_source
from crm.designer.processes import (
    check_process_edit,
    deploy_process_edit,
    list_process_files,
    read_process_file,
    rollback_process,
    save_process_file,
)
from crm.designer.workspace import Workspace
from crm.errors import InvalidInput, NotFound, msg
from engine.deploy_checks import Problem
from engine.errors import DeployRejected
from webapp.crm_pages.common import crm_user, form_text, request_now, require_sign_in
from webapp.designer import bp
from webapp.errors import translate
from webapp.extensions import db
from webapp.taskforms.fields import build_fields
from webapp.taskforms.render import render_fields

ACTION_LABELS = {
    "save_process": _l("Saved a process file"),
    "deploy": _l("Deployed"),
    "rollback": _l("Rolled back"),
    "save_form": _l("Saved a form"),
}


@bp.app_template_global("design_action_label")
def design_action_label(action: str) -> str:
    return str(ACTION_LABELS.get(action, action))


@bp.app_template_global("designer_admin_allowed")
def designer_admin_allowed() -> bool:
    """Tell the navigation whether to show the designer link."""
    return bool(current_user.is_authenticated and may_design(crm_user()))


def _admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        refused = require_sign_in()
        if refused is not None:
            return refused
        require_designer(crm_user())
        return view(*args, **kwargs)

    return guarded


def _workspace() -> Workspace:
    return Workspace(
        Path(current_app.config["PROCESSES_DIR"]), Path(current_app.config["FORMS_DIR"])
    )


def _posted_xml() -> bytes:
    text = request.form.get("xml", "")
    if not text.strip():
        raise InvalidInput(_("no diagram was sent"), {"xml": [_("the diagram is empty")]})
    # No cut here: the deploy checks refuse an oversize file with its size and the limit.
    return text.encode("utf-8")


def _problems_payload(problems: list[Problem], **extra: Any) -> dict[str, Any]:
    errors = sum(p.severity == "error" for p in problems)
    return {
        "ok": errors == 0,
        "errors": errors,
        "problems": [p.as_dict() for p in problems],
    } | extra


@bp.get("/admin/")
@_admin_only
def admin_index() -> str:
    me, workspace = crm_user(), _workspace()
    return render_template(
        "designer/admin/index.html",
        files=list_process_files(db.session, me, workspace),
        forms=list_forms(me, workspace),
        changes=recent_changes(db.session, me),
    )


def _modeler(name: str, xml: str, version: Any = None) -> str:
    return render_template(
        "designer/admin/modeler.html",
        name=name,
        version=version,
        data={
            "file": name,
            "xml": xml,
            "checkUrl": url_for("designer.admin_check", name=name),
            "saveUrl": url_for("designer.admin_save", name=name),
            "deployUrl": url_for("designer.admin_deploy", name=name),
        },
    )


@bp.get("/admin/files/<path:name>")
@_admin_only
def admin_file(name: str) -> str:
    return _modeler(name, read_process_file(crm_user(), _workspace(), name))


@bp.get("/admin/versions/<int:definition_id>/edit")
@_admin_only
def admin_edit_version(definition_id: int) -> str:
    version, source = version_source(db.session, crm_user(), definition_id)
    return _modeler(version.source_file, source, version)


@bp.post("/admin/files/<path:name>/check")
@_admin_only
def admin_check(name: str) -> Any:
    return _problems_payload(check_process_edit(crm_user(), _workspace(), name, _posted_xml()))


@bp.post("/admin/files/<path:name>/save")
@_admin_only
def admin_save(name: str) -> Any:
    try:
        warnings = save_process_file(
            db.session, crm_user(), _workspace(), name, _posted_xml(), request_now()
        )
    except DeployRejected as exc:
        return jsonify(_problems_payload(exc.problems)), 422
    return _problems_payload(warnings, message=_("Saved %(file)s to processes/.", file=name))


@bp.post("/admin/files/<path:name>/deploy")
@_admin_only
def admin_deploy(name: str) -> Any:
    try:
        result = deploy_process_edit(
            db.session,
            crm_user(),
            _workspace(),
            name,
            _posted_xml(),
            request.form.get("comment", ""),
            request_now(),
        )
    except DeployRejected as exc:
        return jsonify(_problems_payload(exc.problems)), 422
    versions = ", ".join(f"{p.process_id} v{p.version}" for p in result.processes if p.new)
    return _problems_payload(
        result.warnings,
        deployment_id=result.deployment_id,
        message=_("Deployed: %(versions)s.", versions=versions or _("no process changed")),
    )


@bp.get("/admin/processes/<process_id>")
@_admin_only
def admin_history(process_id: str) -> str:
    versions = process_versions(db.session, crm_user(), process_id)
    return render_template("designer/admin/history.html", process_id=process_id, versions=versions)


@bp.get("/admin/versions/<int:definition_id>")
@_admin_only
def admin_version(definition_id: int) -> str:
    version, source = version_source(db.session, crm_user(), definition_id)
    return render_template("designer/admin/version.html", version=version, xml=source)


def _download(text: str, filename: str) -> Response:
    return Response(
        text.encode("utf-8"),
        mimetype="application/xml",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/admin/versions/<int:definition_id>/export")
@_admin_only
def admin_export_version(definition_id: int) -> Response:
    version, source = version_source(db.session, crm_user(), definition_id)
    return _download(source, f"{version.process_id}_v{version.version}.bpmn")


@bp.get("/admin/files/<path:name>/export")
@_admin_only
def admin_export_file(name: str) -> Response:
    return _download(read_process_file(crm_user(), _workspace(), name), Path(name).name)


@bp.get("/admin/processes/<process_id>/diff")
@_admin_only
def admin_diff(process_id: str) -> Any:
    old_id, new_id = request.args.get("old", ""), request.args.get("new", "")
    if not (old_id.isdigit() and new_id.isdigit()):
        raise InvalidInput(_("choose two versions to compare"), {"old": [_("choose a version")]})
    old, new, diff = diff_versions(db.session, crm_user(), int(old_id), int(new_id))
    if old.process_id != process_id:
        raise NotFound(
            msg(
                "v%(version)s is not a version of '%(process)s'",
                version=old.version,
                process=process_id,
            )
        )
    _new, source = version_source(db.session, crm_user(), new.definition_id)
    return render_template("designer/admin/diff.html", old=old, new=new, diff=diff, xml=source)


@bp.post("/admin/versions/<int:definition_id>/rollback")
@_admin_only
def admin_rollback(definition_id: int) -> Any:
    me = crm_user()
    version, _source = version_source(db.session, me, definition_id)
    try:
        result = rollback_process(
            db.session, me, _workspace(), definition_id, form_text("comment"), request_now()
        )
    except DeployRejected as exc:
        return render_template(
            "designer/admin/history.html",
            process_id=version.process_id,
            versions=process_versions(db.session, me, version.process_id),
            problems=exc.problems,
        ), 422
    newest = next(p for p in result.processes if p.process_id == version.process_id)
    flash(
        _(
            "Rolled back: %(process)s v%(new)s has the content of v%(old)s.",
            process=version.process_id,
            new=newest.version,
            old=version.version,
        )
    )
    return redirect(url_for("designer.admin_history", process_id=version.process_id))


@bp.get("/admin/forms/")
@_admin_only
def admin_forms() -> str:
    return render_template("designer/admin/forms.html", forms=list_forms(crm_user(), _workspace()))


@bp.get("/admin/forms/<path:name>")
@_admin_only
def admin_form(name: str) -> str:
    text = read_form(crm_user(), _workspace(), name)
    return render_template("designer/admin/form.html", name=name, text=text, error=None)


@bp.post("/admin/forms/<path:name>/preview")
@_admin_only
def admin_form_preview(name: str) -> Any:
    try:
        pair = preview_form(crm_user(), _workspace(), name, request.form.get("content", ""))
    except InvalidInput as exc:
        return render_template(
            "designer/admin/_form_preview.html", error=translate(exc.message)
        ), 422
    fields = build_fields(pair.schema, pair.ui, None) if pair.schema else []
    return render_template(
        "designer/admin/_form_preview.html", error=None, fields_html=render_fields(fields)
    )


@bp.post("/admin/forms/<path:name>")
@_admin_only
def admin_form_save(name: str) -> Any:
    text = request.form.get("content", "")
    try:
        save_form(db.session, crm_user(), _workspace(), name, text, request_now())
    except InvalidInput as exc:
        return render_template(
            "designer/admin/form.html", name=name, text=text, error=translate(exc.message)
        ), 422
    flash(_("Saved %(file)s to forms/.", file=name))
    return redirect(url_for("designer.admin_form", name=name))
