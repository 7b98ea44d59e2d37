"""The start page."""

from __future__ import annotations

from flask import Blueprint, render_template_string
from sqlalchemy import func, select

from engine.models import HumanTask, ProcessDefinition, ProcessInstance
from webapp import db

bp = Blueprint("home", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stagecraft</title></head>
<body>
<h1>Stagecraft</h1>
<p>A sales CRM whose working rules are BPMN you can read and change.</p>
<ul>
  <li>{{ definitions }} deployed process versions</li>
  <li>{{ instances }} process instances</li>
  <li>{{ open_tasks }} open tasks</li>
</ul>
</body></html>"""


@bp.get("/")
def index() -> str:
    count = lambda model, *where: db.session.scalar(  # noqa: E731
        select(func.count()).select_from(model).where(*where)
    )
    return render_template_string(
        _PAGE,
        definitions=count(ProcessDefinition),
        instances=count(ProcessInstance),
        open_tasks=count(HumanTask, HumanTask.status == "open"),
    )
