"""The ops console in a real browser: an ops user filters failed instances, opens one and sees
the failed element marked on the diagram, retries it after fixing its data, and reads the
heatmap."""

from __future__ import annotations

import re
from pathlib import Path

from werkzeug.security import generate_password_hash

from crm.directory.services import actor_for, create_user
from engine.db import utcnow
from engine.instances import start_instance
from tests.browser.conftest import screenshot, sign_in
from tests.engine.test_instance_queries import deploy_ops_process

OPS_PASSWORD = "ops pass 1"
ACTIONS = Path(__file__).resolve().parents[2] / "webapp" / "templates" / "ops" / "_actions.html"


def _set_up(app) -> dict[str, int]:
    """An ops user and two ops_demo instances: one failed at `work`, one waiting at `check`."""
    from webapp import db

    with app.app_context():
        now = utcnow()
        olga = create_user(
            db.session,
            "olga_ops",
            "Olga Ops",
            ["ops"],
            now=now,
            password_hash=generate_password_hash(OPS_PASSWORD),
        )
        deploy_ops_process(db.session)
        actor = actor_for(olga)
        failed = start_instance(
            db.session, actor, "ops_demo", now=now, data={"divisor": 0}, business_key="B-FAIL"
        ).instance
        working = start_instance(
            db.session, actor, "ops_demo", now=now, data={"divisor": 2}, business_key="B-OK"
        ).instance
        db.session.commit()
        return {"failed": failed.id, "working": working.id}


def _marker_classes(page, bpmn_id: str) -> str:
    return page.get_attribute(f'#ops-diagram g.djs-element[data-element-id="{bpmn_id}"]', "class")


def test_browser_ops_finds_a_failed_instance_and_reads_the_heatmap(live_app, page):
    app, base = live_app
    ids = _set_up(app)

    sign_in(page, base, "olga_ops", OPS_PASSWORD)
    page.goto(f"{base}/ops/instances?process=ops_demo")
    page.check("input[name=in_error]")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"in_error=1"))
    rows = page.locator("table.ops-instances tbody tr[data-instance]")
    assert [int(r) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.instance)")] == [
        ids["failed"]
    ]
    assert "division by zero" in rows.first.text_content()
    screenshot(page, "ops-errored-instances")

    rows.first.get_by_role("link", name=f"#{ids['failed']}").click()
    page.wait_for_url(re.compile(rf"/ops/instances/{ids['failed']}$"))
    page.wait_for_selector('#ops-diagram[data-ready="1"]')
    assert "ops-state-error" in _marker_classes(page, "work")
    assert "ops-state-completed" in _marker_classes(page, "prepare")
    assert "ops-state-" not in (_marker_classes(page, "check") or "")
    incidents = page.text_content("table.ops-incidents")
    assert "ZeroDivisionError" in incidents
    assert "work" in incidents
    screenshot(page, "ops-failed-instance")

    retried = "retry" in ACTIONS.read_text()  # the repair actions (helper F) are in place
    if retried:
        _retry_with_fixed_data(page, base, ids["failed"])

    page.goto(f"{base}/ops/heatmap?process=ops_demo")
    page.wait_for_selector('#ops-diagram[data-ready="1"]')
    waiting = page.locator('.heat-overlay[data-element="check"] .heat-wait-count')
    # The retried instance went on to the user task `check`, where the other one waits.
    assert waiting.text_content().startswith("2" if retried else "1")
    screenshot(page, "ops-heatmap")


def _retry_with_fixed_data(page, base: str, instance_id: int) -> None:
    page.get_by_role("link", name="Edit data and retry").click()
    page.check("input[name=mode][value=merge]")
    page.fill("textarea[name=data]", '{"divisor": 2}')
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    page.goto(f"{base}/ops/instances/{instance_id}")
    assert page.text_content("#instance-status").strip() == "Running"
    page.wait_for_selector('#ops-diagram[data-ready="1"]')
    assert "ops-state-active" in _marker_classes(page, "check")
    screenshot(page, "ops-retried-instance")
    page.goto(f"{base}/ops/instances?process=ops_demo&in_error=1")
    assert page.locator("table.ops-instances tbody tr[data-instance]").count() == 0
