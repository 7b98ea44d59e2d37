"""Escaping of what people type, and the Chinese interface with locale formats."""

from __future__ import annotations

from sqlalchemy import update

from crm.customers.models import Customer
from crm.sales.models import Opportunity
from tests.webapp.crm_pages.conftest import token_of

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_crm_customer_name_is_escaped_on_every_page_showing_it(world, login_as, in_app):
    def hostile(session):
        session.execute(update(Customer).values(name=XSS))
        deal = session.get(Opportunity, world.deal_id)
        deal.name = XSS
        deal.stage = "qualification"

    in_app(hostile)
    client = login_as("north_rep1")
    pages = [
        "/customers",
        f"/customers?name={XSS}",
        f"/customers/{world.customer_id}",
        "/opportunities/board",
        f"/opportunities/{world.deal_id}",
        f"/opportunities/{world.deal_id}/quotes/new",
        f"/quotes/{world.quote_id}",
        "/orders",
        f"/orders/{world.order_id}",
        "/activities",
    ]
    for path in pages:
        page = client.get(path).get_data(as_text=True)
        assert "&lt;script&gt;alert(" in page, path
        assert '<script>alert("x")' not in page, path
        assert "<img src=x" not in page, path


def test_crm_knowledge_markdown_is_rendered_without_raw_html(world, login_as):
    manager = login_as("north_manager")
    token = token_of(manager, "/knowledge/new")
    response = manager.post(
        "/knowledge/new",
        data={
            "csrf_token": token,
            "title": "Pricing <objections>",
            "tags": "sales, pricing",
            "body": "**Ask** first.\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1))",
        },
    )
    assert response.status_code == 302
    page = manager.get(response.headers["Location"]).get_data(as_text=True)
    assert "<strong>Ask</strong>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript' not in page
    assert "Pricing &lt;objections&gt;" in page
    rep = login_as("north_rep1")
    assert "Pricing &lt;objections&gt;" in rep.get("/knowledge?q=ask").get_data(as_text=True)
    assert "Pricing" not in rep.get("/knowledge?q=nothing+like+it").get_data(as_text=True)
    assert rep.get("/knowledge/new").status_code == 403
    rep_token = token_of(rep, "/knowledge")
    refused = rep.post(
        "/knowledge/new", data={"csrf_token": rep_token, "title": "Mine", "body": "x"}
    )
    assert refused.status_code == 403


def test_crm_knowledge_edit_errors_keep_the_text(world, login_as):
    manager = login_as("north_manager")
    token = token_of(manager, "/knowledge/new")
    response = manager.post(
        "/knowledge/new", data={"csrf_token": token, "title": "", "body": "Some text"}
    )
    assert response.status_code == 422
    assert "Some text" in response.get_data(as_text=True)


def test_crm_pages_in_chinese_with_local_formats(world, login_as):
    client = login_as("north_rep1", lang="zh_CN")
    customers = client.get("/customers").get_data(as_text=True)
    assert "客户" in customers
    assert "导出 CSV" in customers
    profile = client.get(f"/customers/{world.customer_id}").get_data(as_text=True)
    assert "联系人" in profile
    assert "决策者" in profile  # the buying role
    assert "¥100,000.00" in profile
    assert "2099年1月10日" in profile  # an installment's due date
    board = client.get("/opportunities/board").get_data(as_text=True)
    assert "商机看板" in board
    for path in ("/orders", "/activities", "/reports/daily", "/knowledge", "/import/customers"):
        page = client.get(path).get_data(as_text=True)
        assert 'lang="zh-CN"' in page, path
