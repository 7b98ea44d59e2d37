"""The designer: admins edit and deploy BPMN, DMN and forms; managers edit stages and approvals.

One blueprint; `admin.py` holds the admins' modeler pages and `stages.py` the managers' stage and
approval-chain editors.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("designer", __name__, url_prefix="/designer")


def register_designer(app: Flask) -> None:
    from webapp.designer import admin, stages  # noqa: F401  (register routes)

    app.register_blueprint(bp)
