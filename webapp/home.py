"""The start page: the signed-in user's open tasks."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from flask_babel import get_locale
from flask_login import current_user, login_required

from engine.tasks import count_tasks_for, tasks_for
from webapp.extensions import db

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
def index() -> str:
    return render_template("home.html", tasks=tasks_for(db.session, current_user.actor))
