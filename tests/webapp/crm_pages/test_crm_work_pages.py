"""Activity entry, the daily report (one per person per day), and CSV import pages."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from crm.activities.models import Activity, DailyReport
from crm.customers.models import Customer, Pool
from crm.leads.models import Lead
from tests.webapp.crm_pages.conftest import token_of
from webapp.crm_pages import activities


def _count(in_app, model) -> int:
    return in_app(lambda s: s.scalar(select(func.count()).select_from(model)))


def test_crm_activity_entry_needs_a_customer_in_scope(world, login_as, in_app):
    client = login_as("north_rep1")
    token = token_of(client, "/activities")
    missing = client.post(
        "/activities", data={"csrf_token": token, "kind": "call", "subject": "Hello"}
    )
    assert missing.status_code == 422
    assert "choose a customer" in missing.get_data(as_text=True)
    assert 'value="Hello"' in missing.get_data(as_text=True)
    ok = client.post(
        "/activities",
        data={
            "csrf_token": token,
            "customer_id": str(world.customer_id),
            "kind": "email",
            "subject": "Sent the brochure",
        },
    )
    assert ok.status_code == 302
    assert "Sent the brochure" in client.get("/activities").get_data(as_text=True)
    other = login_as("north_rep2")
    assert (
        other.post(
            "/activities",
            data={
                "csrf_token": token_of(other, "/activities"),
                "customer_id": str(world.customer_id),
                "kind": "note",
                "subject": "Sneaky",
            },
        ).status_code
        == 404
    )
    assert _count(in_app, Activity) == 1


def test_crm_daily_report_one_per_day_and_only_today_is_edited(
    world, login_as, in_app, monkeypatch
):
    monkeypatch.setattr(activities, "request_now", lambda: datetime(2026, 11, 2, 9, tzinfo=UTC))
    client = login_as("north_rep1")
    token = token_of(client, "/reports/daily")
    empty = client.post("/reports/daily", data={"csrf_token": token, "summary": " "})
    assert empty.status_code == 422
    client.post("/reports/daily", data={"csrf_token": token, "summary": "Called 5 customers"})
    client.post(
        "/reports/daily",
        data={"csrf_token": token, "summary": "Called 6 customers", "plan": "Visit Acme"},
    )
    assert _count(in_app, DailyReport) == 1
    assert "Called 6 customers" in client.get("/reports/daily").get_data(as_text=True)
    monkeypatch.setattr(activities, "request_now", lambda: datetime(2026, 11, 3, 9, tzinfo=UTC))
    page = client.get("/reports/daily").get_data(as_text=True)
    assert "Called 6 customers" in page  # yesterday's, listed
    assert "saving again replaces it" not in page  # today's is not written yet
    client.post("/reports/daily", data={"csrf_token": token, "summary": "Quotes day"})
    days = in_app(
        lambda s: sorted((r.day.isoformat(), r.summary) for r in s.scalars(select(DailyReport)))
    )
    assert days == [("2026-11-02", "Called 6 customers"), ("2026-11-03", "Quotes day")]
    manager = login_as("north_manager")
    assert "Quotes day" in manager.get("/reports/daily").get_data(as_text=True)
    assert "Quotes day" not in login_as("south_manager").get("/reports/daily").get_data(
        as_text=True
    )


def _upload(client, kind: str, text: str, **extra):
    token = token_of(client, f"/import/{kind}")
    return client.post(
        f"/import/{kind}",
        data={
            "csrf_token": token,
            "file": (__import__("io").BytesIO(text.encode()), "x.csv"),
            **extra,
        },
        content_type="multipart/form-data",
    )


def test_crm_customer_import_with_one_bad_row_imports_nothing(world, login_as, in_app):
    client = login_as("north_rep1")
    before = _count(in_app, Customer)
    text = "name,tier,industry\nNorth Star,A,retail\nSouth Star,Q,retail\nWest Star,B,\n"
    response = _upload(client, "customers", text)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "<td>3</td><td>tier</td>" in page
    assert "nothing was imported" in page
    assert _count(in_app, Customer) == before
    # The confirmation checks again: a tampered file is refused the same way.
    token = token_of(client, "/import/customers")
    confirm = client.post("/import/customers/confirm", data={"csrf_token": token, "csv_text": text})
    assert confirm.status_code == 422
    assert _count(in_app, Customer) == before


def test_crm_customer_import_preview_then_confirm(world, login_as, in_app):
    client = login_as("north_rep1")
    text = "name,tier,email\nNorth Star,A,ns@example.com\nacme trading,B,\n"
    duplicate = _upload(client, "customers", text)
    assert duplicate.status_code == 422
    assert "duplicate of existing customer Acme Trading Ltd" in duplicate.get_data(as_text=True)
    preview = _upload(client, "customers", text, allow_duplicates="1")
    assert preview.status_code == 200
    page = preview.get_data(as_text=True)
    assert "2 rows are ready to import." in page
    token = token_of(client, "/import/customers")
    done = client.post(
        "/import/customers/confirm",
        data={"csrf_token": token, "csv_text": text, "allow_duplicates": "1"},
    )
    assert done.status_code == 302
    names = in_app(lambda s: set(s.scalars(select(Customer.name))))
    assert {"North Star", "acme trading"} <= names


def test_crm_lead_import_into_a_pool(world, login_as, in_app):
    pool_id = in_app(
        lambda s: (lambda p: (s.add(p), s.flush(), p.id)[2])(Pool(name="Inbound", kind="lead"))
    )
    rep = login_as("north_rep1")
    assert _upload(rep, "leads", "name\nA\n", pool_id=str(pool_id)).status_code == 403
    marketer = login_as("mark")
    text = "name,company,email\nLi Lei,Lei Co,li@example.com\nHan Meimei,,not-an-email\n"
    bad = _upload(marketer, "leads", text, pool_id=str(pool_id))
    assert bad.status_code == 422
    assert "<td>3</td><td>email</td>" in bad.get_data(as_text=True)
    good = "name,company\nLi Lei,Lei Co\nHan Meimei,Mei Ltd\n"
    assert _upload(marketer, "leads", good, pool_id=str(pool_id)).status_code == 200
    token = token_of(marketer, "/import/leads")
    done = marketer.post(
        "/import/leads/confirm",
        data={"csrf_token": token, "csv_text": good, "pool_id": str(pool_id)},
    )
    assert done.status_code == 302
    leads = in_app(lambda s: sorted((lead.name, lead.pool_id) for lead in s.scalars(select(Lead))))
    assert leads == [("Han Meimei", pool_id), ("Li Lei", pool_id)]


def test_crm_import_refuses_large_files(world, login_as, in_app):
    client = login_as("north_rep1")
    big = "name\n" + ("x" * 100 + "\n") * 11_000
    response = _upload(client, "customers", big)
    assert response.status_code == 422
    assert "is larger than" in response.get_data(as_text=True)
    assert _count(in_app, Customer) == 1
