"""Pool pages: claim from a masked list, release, allocate, edit rules and see the preview."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crm.customers.models import Customer, Pool
from crm.directory.models import Territory, User
from crm.pool.models import PoolPolicy, RecycleRule
from engine.db import utcnow
from tests.webapp.conftest import csrf_token


@pytest.fixture
def pool_world(app, web_user) -> dict[str, Any]:
    """A territory pool with a manager, two reps, a pool customer and an idle owned one."""
    from webapp import db

    with app.app_context():
        territory = Territory(code="E", name="East")
        db.session.add(territory)
        db.session.commit()
        territory_id = territory.id
    for username, role in (("mia", "manager"), ("rita", "rep"), ("sam", "rep")):
        web_user(username, role, territory_id=territory_id)
    with app.app_context():
        ids = dict(db.session.execute(select(User.username, User.id)).all())
        manager, rita, sam = (db.session.get(User, ids[n]) for n in ("mia", "rita", "sam"))
        pool = Pool(name="East pool", kind="customer", territory_id=territory_id)
        db.session.add(pool)
        db.session.flush()
        db.session.add(PoolPolicy(pool_id=pool.id, manager_id=manager.id, updated_at=utcnow()))
        waiting = Customer(
            name="Lotus Trading",
            name_key="lotustrading",
            tier="B",
            pool_id=pool.id,
            territory_id=territory_id,
            phone="13812345678",
            email="buyer@lotus.example",
            created_at=utcnow(),
        )
        idle = Customer(
            name="Pine Logistics",
            name_key="pinelogistics",
            tier="C",
            owner_id=sam.id,
            home_pool_id=pool.id,
            territory_id=territory_id,
            owner_since=utcnow() - timedelta(days=45),
            created_at=utcnow() - timedelta(days=50),
        )
        db.session.add_all([waiting, idle])
        db.session.commit()
        return {
            "pool": pool.id,
            "waiting": waiting.id,
            "idle": idle.id,
            "manager": manager.id,
            "rita": rita.id,
            "sam": sam.id,
        }


def _owner(app, customer_id: int) -> int | None:
    from webapp import db

    with app.app_context():
        return db.session.scalar(select(Customer.owner_id).where(Customer.id == customer_id))


def test_pool_page_masks_contacts_and_claim_makes_the_rep_owner(client, sign_in, pool_world, app):
    sign_in("rita")
    page = client.get(f"/pool/{pool_world['pool']}").get_data(as_text=True)
    assert "Lotus Trading" in page
    assert "138****5678" in page
    assert "13812345678" not in page
    assert "b***@lotus.example" in page
    token = csrf_token(client, f"/pool/{pool_world['pool']}")
    response = client.post(
        f"/pool/customers/{pool_world['waiting']}/claim",
        data={"csrf_token": token, "pool_id": str(pool_world["pool"])},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Lotus Trading is now yours." in response.get_data(as_text=True)
    assert _owner(app, pool_world["waiting"]) == pool_world["rita"]
    again = client.post(
        f"/pool/customers/{pool_world['waiting']}/claim",
        data={"csrf_token": token},
    )
    assert again.status_code == 409


def test_pool_release_needs_a_reason(client, sign_in, pool_world, app):
    sign_in("sam")
    token = csrf_token(client, f"/pool/{pool_world['pool']}")
    url = f"/pool/customers/{pool_world['idle']}/release"
    assert client.post(url, data={"csrf_token": token, "reason": ""}).status_code == 422
    response = client.post(url, data={"csrf_token": token, "reason": "budget frozen"})
    assert response.status_code == 302
    assert _owner(app, pool_world["idle"]) is None


def test_pool_manager_allocates_random_even(client, sign_in, pool_world, app):
    sign_in("mia")
    token = csrf_token(client, f"/pool/{pool_world['pool']}")
    response = client.post(
        f"/pool/{pool_world['pool']}/allocate",
        data={"csrf_token": token, "mode": "random", "customer_id": [str(pool_world["waiting"])]},
        follow_redirects=True,
    )
    assert "1 customers allocated, 0 left" in response.get_data(as_text=True)
    assert _owner(app, pool_world["waiting"]) in {pool_world["rita"], pool_world["sam"]}


def test_pool_settings_rule_and_preview_show_who_goes_back_and_why(
    client, sign_in, pool_world, app
):
    sign_in("mia")
    settings_url = f"/pool/{pool_world['pool']}/settings"
    assert "Nothing would be recycled." in client.get(settings_url).get_data(as_text=True)
    token = csrf_token(client, settings_url)
    response = client.post(
        f"{settings_url}/rules",
        data={"csrf_token": token, "trigger": "no_followup", "days_C": "30", "active": "1"},
    )
    assert response.status_code == 302
    page = client.get(settings_url).get_data(as_text=True)
    assert "Pine Logistics" in page
    assert "No follow-up" in page
    assert "<td>45</td><td>30</td>" in page
    chinese = client.get(settings_url + "?lang=zh_CN").get_data(as_text=True)
    assert "未跟进" in chinese
    assert "回收规则" in chinese


def test_pool_settings_are_for_the_pools_manager(client, sign_in, pool_world, app):
    sign_in("rita")
    assert client.get(f"/pool/{pool_world['pool']}/settings").status_code == 403
    assert "Rules and preview" not in client.get("/pool/").get_data(as_text=True)
    token = csrf_token(client, f"/pool/{pool_world['pool']}")
    response = client.post(
        f"/pool/{pool_world['pool']}/settings/rules",
        data={"csrf_token": token, "trigger": "no_followup", "days_C": "1", "active": "1"},
    )
    assert response.status_code == 403
    from webapp import db

    with app.app_context():
        assert db.session.scalars(select(RecycleRule)).all() == []


def test_pool_policy_form_saves_settings(client, sign_in, pool_world, app):
    sign_in("mia")
    settings_url = f"/pool/{pool_world['pool']}/settings"
    token = csrf_token(client, settings_url)
    response = client.post(
        f"{settings_url}/policy",
        data={
            "csrf_token": token,
            "manager_id": str(pool_world["manager"]),
            "warning_days": "5",
            "cooldown_days": "14",
            "daily_claim_cap": "4",
            "weekly_quota": "9",
            "exempt_locked": "1",
            "exempt_win_rate": "",
        },
    )
    assert response.status_code == 302
    from webapp import db

    with app.app_context():
        policy = db.session.get(PoolPolicy, pool_world["pool"])
        assert policy is not None
        assert (policy.warning_days, policy.cooldown_days, policy.weekly_quota) == (5, 14, 9)
        assert (policy.exempt_locked, policy.exempt_open_approval) == (True, False)
        assert policy.exempt_win_rate is None
        assert policy.updated_by == "mia"
