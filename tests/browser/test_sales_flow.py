"""The sales flow in a real browser: claim from the pool, qualify a lead (with one mistake first),
move the deal on the board, quote it with a discount, have the manager approve, then see Chinese."""

from __future__ import annotations

import re

from werkzeug.security import generate_password_hash

from crm.customers.services import create_customer, create_pool
from crm.directory.models import Team
from crm.directory.services import create_user
from crm.leads.services import assign_lead, create_lead
from engine.db import utcnow
from tests.browser.conftest import screenshot, sign_in

REP_PASSWORD = "rep pass 1"
MANAGER_PASSWORD = "manager pass 1"


def _set_up(app):
    """A manager with a team, a rep in it, a pool customer and a lead assigned to the rep."""
    from webapp import db

    with app.app_context():
        now = utcnow()
        manager = create_user(
            db.session,
            "mona",
            "Mona Manager",
            ["manager"],
            now=now,
            password_hash=generate_password_hash(MANAGER_PASSWORD),
        )
        team = Team(name="Browser East", manager_id=manager.id)
        db.session.add(team)
        db.session.flush()
        manager.team_id = team.id
        rep = create_user(
            db.session,
            "rafael",
            "Rafael Rep",
            ["rep"],
            now=now,
            team_id=team.id,
            password_hash=generate_password_hash(REP_PASSWORD),
        )
        pool = create_pool(db.session, "Browser pool", "customer")
        create_customer(db.session, manager, "Harbor Tools", now=now, owner=None, pool_id=pool.id)
        lead = create_lead(db.session, manager, "Lin Wei", now=now, company="Lotus Freight")
        assign_lead(db.session, manager, lead.id, rep, now=now)
        db.session.commit()
        return pool.id


def _column(page, stage: str):
    return page.locator(f"#board section.column[data-stage={stage}]")


def test_browser_rep_sells_and_manager_approves(live_app, page, browser):
    app, base = live_app
    pool_id = _set_up(app)

    # The rep signs in and claims the pool customer.
    sign_in(page, base, "rafael", REP_PASSWORD)
    page.wait_for_selector("text=My tasks")
    page.goto(f"{base}/pool/{pool_id}")
    assert "Contact details stay hidden until you claim a customer." in page.text_content("main")
    page.locator("tr", has_text="Harbor Tools").get_by_role("button", name="Claim").click()
    page.wait_for_selector("text=Harbor Tools is now yours.")
    mine = page.locator(".card", has=page.get_by_role("heading", name="My customers"))
    assert "Harbor Tools" in mine.text_content()
    assert "No customers are waiting in this pool." in page.text_content("main")

    # The inbox holds the qualification task.
    page.goto(f"{base}/inbox")
    page.get_by_role("link", name="Qualify the lead").wait_for()
    screenshot(page, "inbox")
    page.get_by_role("link", name="Qualify the lead").click()
    page.wait_for_url(re.compile(r"/tasks/\d+$"))
    task_url = page.url
    assert page.get_by_role("heading", name="Qualify the lead", level=1).is_visible()
    assert "Qualify Lin Wei (Lotus Freight)" in page.text_content(".instructions")

    # First try: letters in the amount.
    page.check("input[name=qualification][value=convert]")
    page.get_by_label("Customer name").fill("Lotus Freight Ltd")
    page.get_by_label("Main contact").fill("Lin Wei")
    page.get_by_label("Contact's job title").fill("Head of logistics")
    page.get_by_label("Contact's buying role").select_option("decision_maker")
    page.get_by_label("Opportunity name").fill("Lotus Freight - 40 seats")
    page.get_by_label("Expected amount").fill("a lot")
    page.get_by_label("Currency").fill("EUR")
    page.get_by_label("Expected close date").fill("2027-03-31")
    page.check("input[name=pipeline][value=new_business]")
    screenshot(page, "task-form")
    page.click(".form-buttons button.primary")
    problems = page.locator(".form-problems")
    problems.wait_for()
    assert "Please correct the fields marked below." in problems.text_content()
    amount_field = page.locator(".tf-field.tf-invalid")
    assert amount_field.count() == 1
    assert "Expected amount" in amount_field.text_content()
    assert amount_field.locator(".tf-error").text_content().strip() == "“a lot” is not a number."
    # What was typed survives the round trip.
    assert page.get_by_label("Customer name").input_value() == "Lotus Freight Ltd"
    assert page.get_by_label("Contact's buying role").input_value() == "decision_maker"
    screenshot(page, "task-form-error")

    # Second try: a real amount.
    page.get_by_label("Expected amount").fill("120000")
    page.click(".form-buttons button.primary")
    page.wait_for_url(lambda url: url != task_url)
    page.goto(task_url)
    assert "Completed by Rafael Rep" in page.text_content("main")

    # The board shows the new deal in qualification; the rep advances it.
    page.goto(f"{base}/opportunities/board")
    card = _column(page, "qualification").locator(
        "article.deal", has_text="Lotus Freight - 40 seats"
    )
    card.wait_for()
    assert "Lotus Freight Ltd" in card.text_content()
    screenshot(page, "board")
    card.locator("form:has(input[name=to_stage][value=needs_analysis]) button").click()
    page.wait_for_selector("text=Lotus Freight - 40 seats moved to")
    moved = _column(page, "needs_analysis").locator(
        "article.deal", has_text="Lotus Freight - 40 seats"
    )
    moved.wait_for()
    assert _column(page, "qualification").locator("article.deal").count() == 0
    screenshot(page, "board-moved")

    # The customer 360 from the deal page: the contact and the deal are there.
    moved.get_by_role("link", name="Lotus Freight - 40 seats").click()
    page.wait_for_url(re.compile(r"/opportunities/\d+$"))
    deal_url = page.url
    page.get_by_role("link", name="Lotus Freight Ltd").click()
    page.wait_for_url(re.compile(r"/customers/\d+$"))
    customer_url = page.url
    profile = page.text_content("main")
    assert "Lin Wei" in profile
    assert "Head of logistics" in profile
    assert "Decision maker" in page.locator("tr", has_text="Lin Wei").text_content()
    assert "Harbor Tools" not in profile  # the claimed pool customer is a different record
    assert "Lotus Freight - 40 seats" in profile
    screenshot(page, "customer-360")

    # A quote with a 10 % discount, saved and submitted.
    page.goto(deal_url)
    page.get_by_role("link", name="New quote").click()
    page.wait_for_url(re.compile(r"/quotes/new$"))
    page.get_by_label("Description 1", exact=True).fill("Stagecraft seats")
    page.get_by_label("Quantity 1", exact=True).fill("40")
    page.get_by_label("Unit price 1", exact=True).fill("3000")
    page.fill("#q-discount", "10")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(r"/quotes/\d+$"))
    quote_url = page.url
    assert "saved as a draft" in page.text_content("main")
    totals = page.text_content("tfoot")
    assert "10 %" in totals
    assert "108,000" in totals
    page.get_by_role("button", name="Submit for approval").click()
    page.wait_for_selector("text=sent for approval")
    assert "Approve the quote (manager)" in page.text_content("main")
    assert page.get_by_role("button", name="Submit for approval").count() == 0

    # The manager approves from the inbox.
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    try:
        boss = context.new_page()
        boss.set_default_timeout(15_000)
        sign_in(boss, base, "mona", MANAGER_PASSWORD)
        boss.wait_for_selector("text=My tasks")
        boss.goto(f"{base}/inbox")
        # The Manager lane resolves to the rep's team manager: the task is hers already.
        boss.get_by_role("link", name="Approve the quote (manager)").click()
        boss.wait_for_url(re.compile(r"/tasks/\d+$"))
        assert "Held by Mona Manager" in boss.text_content(".task-meta")
        instructions = boss.text_content(".instructions")
        assert "discount 10.0 %" in instructions
        assert "amount 108000.0" in instructions
        boss.check("input[name=manager_decision][value=approve]")
        boss.click(".form-buttons button.primary")
        boss.wait_for_url(lambda url: "/tasks/" not in url)
        boss.goto(quote_url)
        status = boss.locator("h1 .pill")
        assert status.get_attribute("class") == "pill approved"
        assert "Customer accepted" in boss.text_content("main")
    finally:
        context.close()

    # The rep sees the approval too.
    page.goto(quote_url)
    assert page.locator("h1 .pill").get_attribute("class") == "pill approved"

    # The same screens in Chinese.
    page.goto(f"{base}/inbox")
    page.click("text=中文")
    page.wait_for_selector("text=我的任务")
    assert page.text_content("h1.inbox-title").strip() == "待办"
    screenshot(page, "zh-inbox")
    # Task titles (from the process) are translated too.
    page.get_by_role("link", name="需求分析").click()
    page.wait_for_url(re.compile(r"/tasks/\d+$"))
    assert "返回待办" in page.text_content("main")
    assert "阶段" in page.text_content(".task-meta")
    assert page.locator(".form-buttons button.primary").text_content().strip() == "完成"
    screenshot(page, "zh-task-form")
    page.goto(customer_url)
    assert page.get_by_role("heading", name="联系人").is_visible()
    assert page.get_by_role("heading", name="商机").is_visible()
    assert "决策者" in page.locator("tr", has_text="Lin Wei").text_content()
    screenshot(page, "zh-customer-360")
    page.goto(f"{base}/opportunities/board")
    assert "商机看板" in page.text_content("h1")
    _column(page, "needs_analysis").locator("article.deal", has_text="Lotus Freight").wait_for()
    screenshot(page, "zh-board")
