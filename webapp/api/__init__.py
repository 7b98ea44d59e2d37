"""The JSON API (/api/v1): token authentication, the same services and permissions as the pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import Schema, ValidationError

from crm.directory.models import User
from crm.directory.tokens import user_for_token
from crm.errors import Forbidden, InvalidInput, msg
from engine.db import utcnow
from webapp.errors import translate
from webapp.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Token-authenticated and cookie-free, so cross-site requests cannot ride on a session.
csrf.exempt(bp)


@bp.before_request
def authenticate() -> Any:
    if request.endpoint == "api.openapi":
        return None
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        message = translate("send 'Authorization: Bearer <token>'")
        return jsonify({"error": message, "fields": {}}), 401
    try:
        g.api_user = user_for_token(
            db.session, header.removeprefix("Bearer ").strip(), now=utcnow()
        )
    except Forbidden as exc:
        return jsonify({"error": translate(exc.message), "fields": {}}), 401
    return None


def api_user() -> User:
    return g.api_user  # type: ignore[no-any-return]


def load(schema: Schema) -> dict[str, Any]:
    """Validate the JSON body; a bad body is a 422 naming each field."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput(
            "the request body must be a JSON object", {"body": ["expected an object"]}
        )
    try:
        return schema.load(body)  # type: ignore[no-any-return]
    except ValidationError as exc:
        messages = exc.normalized_messages()
        fields = {k: v if isinstance(v, list) else [str(v)] for k, v in messages.items()}
        names = ", ".join(sorted(fields))
        raise InvalidInput(msg("please correct: %(fields)s", fields=names), fields) from exc


def dump(schema: Schema, obj: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify(schema.dump(obj)), status


from webapp.api import (  # noqa: E402,F401  (register routes)
    analytics_routes,
    commission_routes,
    crm_routes,
    engine_routes,
    openapi,
    pool_routes,
)
