"""The start page: the signed-in user's inbox."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from flask_babel import get_locale
from flask_login import current_user, login_required

from engine.tasks import count_tasks_for
from webapp.extensions import db
from webapp.inbox.routes import index as inbox_index

bp = Blueprint("home", __name__)


@bp.app_context_processor
def navigation() -> dict[str, Any]:
    def open_task_count() -> int:
        return (
            count_tasks_for(db.session, current_user.actor) if current_user.is_authenticated else 0
        )

    return {"open_task_count": open_task_count, "get_locale": get_locale}


@bp.get("/")
@login_required
def index() -> Response:
    """The start page is the inbox (its "My tasks" tab)."""
    return inbox_index()
