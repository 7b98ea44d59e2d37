"""The opportunity board: totals per column, moves that drive the pipeline's stage task, and
the win-rate override on the deal page."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from crm.customers.services import create_customer
from crm.directory.models import User
from crm.directory.services import actor_for
from crm.sales.models import Opportunity
from crm.sales.services import create_opportunity
from engine.instances import start_instance
from tests.conftest import NOW
from tests.webapp.crm_pages.conftest import token_of


def column(page: str, stage: str) -> str:
    match = re.search(rf'<section class="column" data-stage="{stage}".*?</section>', page, re.S)
    assert match, f"no column {stage!r}"
    return match.group(0)


def test_crm_board_totals_equal_hand_computed_sums(world, login_as, in_app):
    def staged(session):
        rep = session.get(User, world.users["north_rep1"])
        other = create_customer(session, rep, "Beta Works", now=NOW, owner=rep)
        acme = session.get(Opportunity, world.deal_id)
        acme.stage, acme.stage_win_rate = "qualification", 10
        beta = create_opportunity(session, rep, other.id, "Beta pilot", "20000.50", now=NOW)
        beta.stage, beta.stage_win_rate, beta.win_rate_override = "qualification", 10, 35
        gamma = create_opportunity(session, rep, other.id, "Gamma", "30000", now=NOW)
        gamma.stage, gamma.stage_win_rate = "proposal", 50
        usd = create_opportunity(
            session, rep, other.id, "Export deal", "1000", now=NOW, currency="USD"
        )
        usd.stage, usd.stage_win_rate = "proposal", 50
        create_opportunity(session, rep, other.id, "Renewal", "999", now=NOW, pipeline="renewal")

    in_app(staged)
    page = login_as("north_rep1").get("/opportunities/board").get_data(as_text=True)
    qualification = column(page, "qualification")
    assert '<span class="badge">2</span>' in qualification
    # 100000 + 20000.50; 100000 × 10 % + 20000.50 × 35 % (the override) = 10000 + 7000.18
    assert "CN¥120,000.50" in qualification
    assert "CN¥17,000.18" in qualification
    proposal = column(page, "proposal")
    assert '<span class="badge">2</span>' in proposal
    assert "CN¥30,000.00" in proposal
    assert "CN¥15,000.00" in proposal
    assert "$1,000.00" in proposal  # other currencies are summed apart
    assert "$500.00" in proposal
    assert '<span class="badge">0</span>' in column(page, "negotiation")
    assert "Renewal" not in qualification + proposal  # another pipeline's board


@pytest.fixture
def running_pipeline(world, test_processes, in_app):
    """Start the test pipeline for Acme's deal: it opens the qualification stage task."""

    def start(session):
        rep = session.get(User, world.users["north_rep1"])
        deal = session.get(Opportunity, world.deal_id)
        start_instance(
            session,
            actor_for(rep),
            "sales_pipeline_new_business",
            now=NOW,
            business_key=f"opportunity:{deal.id}",
            subject=("opportunity", deal.id),
            data={"opportunity_id": deal.id, "customer_id": deal.customer_id},
        )

    in_app(start)
    return world


def _stage(in_app, deal_id: int) -> tuple[str | None, int]:
    return in_app(
        lambda s: (s.get(Opportunity, deal_id).stage, s.get(Opportunity, deal_id).win_rate)
    )


def test_crm_board_move_completes_the_stage_task(running_pipeline, login_as, in_app):
    deal_id = running_pipeline.deal_id
    assert _stage(in_app, deal_id) == ("qualification", 10)
    client = login_as("north_rep1")
    page = client.get("/opportunities/board").get_data(as_text=True)
    assert "Acme rollout" in column(page, "qualification")
    token = token_of(client, "/opportunities/board")
    move = f"/opportunities/{deal_id}/move"

    assert (
        client.post(move, data={"csrf_token": token, "to_stage": "needs_analysis"}).status_code
        == 302
    )
    assert _stage(in_app, deal_id) == ("needs_analysis", 20)
    page = client.get("/opportunities/board").get_data(as_text=True)
    assert "moved to Needs analysis" in page
    assert "Acme rollout" in column(page, "needs_analysis")

    client.post(move, data={"csrf_token": token, "to_stage": "qualification"})
    assert _stage(in_app, deal_id) == ("qualification", 10)

    # Two stages at once is refused, and nothing changes.
    client.post(move, data={"csrf_token": token, "to_stage": "proposal"})
    assert _stage(in_app, deal_id) == ("qualification", 10)
    assert "move one stage at a time" in client.get("/opportunities/board").get_data(as_text=True)


def test_crm_board_move_reports_missing_exit_criteria(running_pipeline, login_as, in_app):
    deal_id = running_pipeline.deal_id
    manager = login_as("north_manager")  # the owner's manager may move the card too
    token = token_of(manager, "/opportunities/board")
    move = f"/opportunities/{deal_id}/move"
    for stage in ("needs_analysis", "proposal"):
        manager.post(move, data={"csrf_token": token, "to_stage": stage})
    assert _stage(in_app, deal_id) == ("proposal", 50)
    # The test pipeline ends at proposal: the board offers "won" next, as the deployed process says.
    manager.post(move, data={"csrf_token": token, "to_stage": "won"})
    assert _stage(in_app, deal_id) == ("proposal", 50)
    page = manager.get("/opportunities/board").get_data(as_text=True)
    assert "stays in Proposal" in page
    assert "an approved quote" in page


def test_crm_board_move_by_others_is_404(running_pipeline, login_as, in_app):
    for username in ("north_rep2", "south_manager", "fiona"):
        client = login_as(username)
        token = token_of(client, "/opportunities/board")
        response = client.post(
            f"/opportunities/{running_pipeline.deal_id}/move",
            data={"csrf_token": token, "to_stage": "needs_analysis"},
        )
        assert response.status_code == 404
    assert _stage(in_app, running_pipeline.deal_id) == ("qualification", 10)


def test_crm_board_move_without_a_process_is_a_conflict(world, login_as):
    client = login_as("north_rep1")
    token = token_of(client, "/opportunities/board")
    response = client.post(
        f"/opportunities/{world.deal_id}/move",
        data={"csrf_token": token, "to_stage": "needs_analysis"},
    )
    assert response.status_code == 409
    assert "no open stage task" in response.get_data(as_text=True)


def test_crm_deal_page_moves_and_shows_the_stage_history(running_pipeline, login_as):
    client = login_as("north_rep1")
    path = f"/opportunities/{running_pipeline.deal_id}"
    page = client.get(path).get_data(as_text=True)
    assert "Open stage task" in page
    token = token_of(client, path)
    response = client.post(
        f"{path}/move", data={"csrf_token": token, "to_stage": "needs_analysis", "back": "deal"}
    )
    assert response.headers["Location"].endswith(path)
    page = client.get(path).get_data(as_text=True)
    assert "Needs analysis" in page
    assert page.count('<td class="num">') >= 2  # two stage changes listed


def test_crm_win_rate_override_and_its_field_error(world, login_as, in_app):
    client = login_as("north_rep1")
    path = f"/opportunities/{world.deal_id}"
    token = token_of(client, path)
    bad = client.post(f"{path}/win-rate", data={"csrf_token": token, "win_rate": "150"})
    assert bad.status_code == 422
    assert "must be a whole number from 0 to 100" in bad.get_data(as_text=True)
    assert 'value="150"' in bad.get_data(as_text=True)
    client.post(f"{path}/win-rate", data={"csrf_token": token, "win_rate": "35"})
    assert in_app(lambda s: s.get(Opportunity, world.deal_id).win_rate_override) == 35
    board = client.get("/opportunities/board").get_data(as_text=True)
    assert "CN¥35,000.00" in board  # 100000 × 35 %
    client.post(f"{path}/win-rate", data={"csrf_token": token, "clear": "1"})
    assert in_app(lambda s: s.get(Opportunity, world.deal_id).win_rate_override) is None


def test_crm_opportunity_export_is_scoped(world, login_as):
    rows = login_as("north_manager").get("/opportunities/export.csv").get_data(as_text=True)
    assert "Acme rollout" in rows
    assert Decimal("100000.00") == Decimal(rows.splitlines()[1].split(",")[7])
    assert "Acme rollout" not in login_as("south_manager").get(
        "/opportunities/export.csv"
    ).get_data(as_text=True)
