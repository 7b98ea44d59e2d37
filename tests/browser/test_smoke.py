"""A real browser signs in, sees its tasks, and switches to Chinese."""

from __future__ import annotations

from werkzeug.security import generate_password_hash

from crm.directory.services import actor_for, create_user
from engine.db import utcnow
from engine.instances import start_instance
from tests.browser.conftest import screenshot, sign_in


def test_browser_rep_signs_in_and_sees_the_call_task(live_app, page):
    app, base = live_app
    from webapp import db

    with app.app_context():
        rep = create_user(
            db.session,
            "bianca",
            "Bianca <b>B</b>",
            ["rep"],
            now=utcnow(),
            password_hash=generate_password_hash("browser pass 1"),
        )
        start_instance(
            db.session,
            actor_for(rep),
            "lead_followup",
            now=utcnow(),
            data={"lead_name": "Acme", "budget": 20000},
        )
        db.session.commit()
    sign_in(page, base, "bianca", "wrong")
    assert "Wrong username or password." in page.text_content("main")
    sign_in(page, base, "bianca", "browser pass 1")
    page.wait_for_selector("text=My tasks")
    assert page.text_content("header").count("Bianca <b>B</b>") == 1  # shown as text, not markup
    page.click("text=Open for my roles and teams")
    page.wait_for_selector("text=Call the lead")
    screenshot(page, "inbox-en")
    page.click("text=中文")
    page.wait_for_selector("text=我的任务")
    screenshot(page, "inbox-zh")
    assert "退出" in page.text_content("header")
