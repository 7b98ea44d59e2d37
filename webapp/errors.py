"""One place that turns domain errors into responses: pages for people, JSON for the API."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError

from engine.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound

STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, InvalidInput: 422}


def _status_of(error: EngineError) -> int:
    for cls, status in STATUS.items():
        if isinstance(error, cls):
            return status
    return 400


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(EngineError)
    def domain_error(error: EngineError) -> Any:
        status = _status_of(error)
        fields = getattr(error, "fields", {}) or {}
        if _wants_json():
            return jsonify({"error": error.message, "fields": fields}), status
        return render_template(
            "errors/error.html", status=status, message=error.message, fields=fields
        ), status

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        message = _(
            "The form expired or did not come from this site. Reload the page and try again."
        )
        if _wants_json():
            return jsonify({"error": message}), 400
        return render_template("errors/error.html", status=400, message=message, fields={}), 400

    for status in (403, 404, 405, 413, 429, 500):
        app.register_error_handler(status, _http_error(status))


def _http_error(status: int) -> Any:
    def handle(error: Exception) -> Any:
        message = getattr(error, "description", None) or _("Something went wrong.")
        if _wants_json():
            return jsonify({"error": message}), status
        return render_template(
            "errors/error.html", status=status, message=message, fields={}
        ), status

    return handle
