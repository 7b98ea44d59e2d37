"""The ops console: running instances, their diagrams and history, repairs, the scheduler.

One blueprint; `console.py` lists and shows instances (with the heatmap), `actions.py` repairs
them one by one or in bulk, `scheduler.py` shows the rules, their runs and the timers due.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("ops", __name__, url_prefix="/ops")


def register_ops(app: Flask) -> None:
    from webapp.ops import actions, console, scheduler  # noqa: F401  (register routes)

    app.register_blueprint(bp)
