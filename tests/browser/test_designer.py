"""The admin designer in a real browser: open lead_to_cash in the modeler, add a script task with
a script that does not compile, save and see the error on that task, fix it, deploy.

The app here has its own SQLite file and works on a temporary copy of a few process files and of
forms/, so the test never writes into the repository's processes/.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from tests.browser.conftest import ROOT, screenshot, sign_in

PASSWORD = "admin pass 1"
SET = (
    "lead_to_cash.bpmn",
    "sales_pipeline_new_business.bpmn",
    "sales_pipeline_renewal.bpmn",
)
# Drop a new script task onto the first sequence flow of lead_to_cash, as a user drags one there.
ADD_TASK = """() => {
  const modeler = window.stagecraftModeler;
  const flow = modeler.get('elementRegistry').get('flow_prepare_lead_qualify_lead');
  const [a, b] = [flow.waypoints[0], flow.waypoints[flow.waypoints.length - 1]];
  const shape = modeler.get('elementFactory').createShape({ type: 'bpmn:ScriptTask' });
  const modeling = modeler.get('modeling');
  modeling.createShape(shape, { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }, flow);
  modeling.updateProperties(shape, {
    id: 'score_deal', name: 'Score the deal', scriptFormat: 'python', script: 'score = ('
  });
  return shape.id;
}"""


@pytest.fixture
def designer_app(tmp_path: Path) -> Iterator[tuple[Any, str, Path]]:
    from flask_migrate import upgrade

    from crm.directory.services import create_user
    from engine.db import utcnow
    from engine.deploy import collect_files, deploy_files, folder_form_loader
    from webapp import create_app, db

    processes, forms = tmp_path / "processes", tmp_path / "forms"
    processes.mkdir()
    for name in SET:
        shutil.copy(ROOT / "processes" / name, processes / name)
    shutil.copytree(ROOT / "forms", forms)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'designer.db'}",
            "SECRET_KEY": "browser-tests",
            "PROCESSES_DIR": str(processes),
            "FORMS_DIR": str(forms),
        }
    )
    with app.app_context():
        upgrade()
        now = utcnow()
        deploy_files(
            db.session,
            "admin",
            collect_files([processes]),
            load_form=folder_form_loader(forms),
            now=now,
            comment="first version",
        )
        create_user(
            db.session,
            "ada",
            "Ada Admin",
            ["admin"],
            now=now,
            password_hash=generate_password_hash(PASSWORD),
        )
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}", processes
    server.shutdown()
    with app.app_context():
        db.engine.dispose()


def test_browser_admin_fixes_a_script_task_and_deploys(designer_app, page):
    app, base, processes = designer_app
    sign_in(page, base, "ada", PASSWORD)
    page.get_by_role("link", name="Designer").click()
    page.get_by_role("link", name="lead_to_cash.bpmn").click()
    page.wait_for_selector("body[data-modeler-ready='1']")
    assert page.locator("g.djs-element[data-element-id='qualify_lead']").is_visible()
    screenshot(page, "designer_opened")

    # The admin adds a script task whose script does not compile, and saves.
    assert page.evaluate(ADD_TASK) == "score_deal"
    page.get_by_role("button", name="Save", exact=True).click()
    status = page.locator("#dz-status")
    status.filter(has_text="nothing was saved or deployed").wait_for()
    assert status.text_content().startswith("1 error(s)")
    task = page.locator("g.djs-element.dz-has-error[data-element-id='score_deal']")
    assert task.is_visible()
    assert page.locator(".dz-badge[data-element-id='score_deal']").is_visible()
    problem = page.locator("#dz-problems li.dz-error")
    assert problem.count() == 1
    assert "Score the deal (score_deal)" in problem.text_content()
    assert "script" in problem.text_content()
    assert "score_deal" not in (processes / "lead_to_cash.bpmn").read_text("utf-8")
    screenshot(page, "designer_error_on_element")

    # Clicking the problem selects the task; the admin fixes its script in the element panel.
    problem.get_by_role("button").click()
    assert page.locator("#dz-element-id").text_content() == "score_deal"
    page.fill("#dz-element-script", "score = 1")
    page.get_by_role("button", name="Apply to the diagram").click()
    page.get_by_role("button", name="Check").click()
    status.filter(has_text="No problems").wait_for()
    assert page.locator("g.djs-element.dz-has-error").count() == 0

    # Deploy needs a comment; with one, a new version is stored.
    page.get_by_role("button", name="Deploy as a new version").click()
    status.filter(has_text="Write a comment").wait_for()
    page.fill("#dz-comment", "score deals before qualifying")
    page.get_by_role("button", name="Deploy as a new version").click()
    status.filter(has_text="Deployed:").wait_for()
    assert "lead_to_cash v2" in status.text_content()
    screenshot(page, "designer_deployed")
    saved = (processes / "lead_to_cash.bpmn").read_text("utf-8")
    assert 'id="score_deal"' in saved
    assert "score = 1" in saved

    page.goto(f"{base}/designer/admin/processes/lead_to_cash")
    newest = page.locator("#versions tbody tr").first
    assert re.search(r"v2\s+ada\s+.*score deals before qualifying", newest.inner_text(), re.S)

    # The diff of v1 and v2 marks the new task green on the diagram.
    page.get_by_role("button", name="Compare").click()
    page.wait_for_selector("body[data-viewer-ready='1']")
    assert page.locator("g.djs-element.dz-added[data-element-id='score_deal']").is_visible()
    assert "score_deal" in page.locator("#diff-added").text_content()
    screenshot(page, "designer_diff")


def test_browser_admin_previews_a_form_while_editing(designer_app, page):
    _app, base, _processes = designer_app
    sign_in(page, base, "ada", PASSWORD)
    page.goto(f"{base}/designer/admin/forms/")
    page.get_by_role("link", name="lead_to_cash/qualify_lead.schema.json").click()
    preview = page.locator("#form-preview")
    preview.locator("label").first.wait_for()
    labels = preview.locator("label").count()

    text = page.input_value("#form-content")
    page.fill(
        "#form-content",
        text.replace(
            '"properties": {',
            '"properties": {"budget_note": {"type": "string", "title": "Budget note"}, ',
            1,
        ),
    )
    preview.get_by_text("Budget note").wait_for()
    assert preview.locator("label").count() == labels + 1

    page.fill("#form-content", '{"type": "object", "properties": {"x": {"type": "money"}}}')
    error = page.locator("#form-preview-error")
    error.wait_for()
    assert "not a valid JSON Schema at properties/x/type" in error.text_content()
    screenshot(page, "designer_form_error")
