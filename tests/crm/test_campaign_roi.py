"""Campaign ROI on a fixed data set: leads, lead -> customer -> won, revenue, cash and ROI per
campaign and per channel, the period and channel filters, and who may see what."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from crm.campaigns.roi import campaign_report
from crm.errors import Forbidden
from crm.leads.models import Campaign, Lead
from crm.orders.models import Receipt
from tests.conftest import NOW
from tests.crm.test_commission import _customer, _deal, _order, build_commission_world

D = Decimal


def build_campaign_world(session: Session, world: dict[str, Any]) -> dict[str, Campaign]:
    """Four campaigns in October 2026 (one Search ads lead came in September).

    Expo 2026 (event, cost 10,000): 4 leads, 2 customers, 1 won 30,000 (12,000 received) and
      one lost -> ROI (30,000 - 10,000) / 10,000 = 200.00 %.
    Search ads Q4 (online, 4,000): 3 leads (one in September), 1 customer, won 3,000 -> -25.00 %.
    Newsletter (online, 1,000): 2 leads, none converted -> -100.00 %.
    Referral (referral, cost 0): 1 lead, converted and won 5,000 -> no ROI.
    """
    users = world["users"]
    rep_n, rep_s = users["north_rep1"], users["south_rep1"]
    campaigns = {}
    for name, channel, cost in (
        ("Expo 2026", "event", "10000"),
        ("Search ads Q4", "online", "4000"),
        ("Newsletter", "online", "1000"),
        ("Referral", "referral", "0"),
    ):
        campaigns[name] = Campaign(name=name, channel=channel, cost=D(cost))
        session.add(campaigns[name])
    session.flush()

    def lead(
        campaign: str,
        owner,
        day: int = 10,
        month: int = 10,
        outcome: str | None = None,
        amount: str = "0",
        cash: str | None = None,
    ) -> Lead:
        row = Lead(
            name=f"{campaign} lead",
            campaign_id=campaigns[campaign].id,
            owner_id=owner.id,
            source=campaigns[campaign].channel,
            status="working",
            created_at=datetime(2026, month, day, 9, tzinfo=UTC),
        )
        session.add(row)
        session.flush()
        if outcome is not None:
            customer = _customer(session, owner, f"{campaign} customer {row.id}")
            row.customer_id, row.status = customer.id, "converted"
            closed = datetime(2026, 10, 28, 9, tzinfo=UTC)
            deal = _deal(
                session, owner, f"{campaign} deal {row.id}", amount, outcome, closed, lead_id=row.id
            )
            if cash is not None:
                order = _order(session, owner, f"SO-lead-{row.id}", amount, deal)
                session.add(
                    Receipt(
                        order_id=order.id,
                        amount=D(cash),
                        received_on=date(2026, 10, 30),
                        registered_by="fiona",
                        created_at=NOW,
                    )
                )
        return row

    lead("Expo 2026", rep_n, outcome="won", amount="30000", cash="12000")
    lead("Expo 2026", rep_n)
    lead("Expo 2026", rep_s, outcome="lost", amount="8000")
    lead("Expo 2026", rep_s)
    lead("Search ads Q4", rep_s, outcome="won", amount="3000")
    lead("Search ads Q4", rep_s)
    lead("Search ads Q4", rep_s, day=15, month=9)
    lead("Newsletter", rep_s)
    lead("Newsletter", rep_n)
    lead("Referral", rep_s, outcome="won", amount="5000")
    session.flush()
    return campaigns


@pytest.fixture
def world(session):
    world = build_commission_world(session)
    build_campaign_world(session, world)
    return world


def _row(f) -> tuple[Any, ...]:
    return (
        f.key,
        f.cost,
        f.leads,
        f.customers,
        f.won,
        f.revenue,
        f.cash,
        f.customer_rate,
        f.win_rate,
        f.lead_to_won_rate,
        f.roi_pct,
    )


def test_campaign_roi_per_campaign(session, world):
    report = campaign_report(session, world["users"]["mark"])
    assert [_row(c) for c in report.campaigns] == [
        (
            "Expo 2026",
            D("10000.00"),
            4,
            2,
            1,
            D("30000.00"),
            D("12000.00"),
            D("50.00"),
            D("50.00"),
            D("25.00"),
            D("200.00"),
        ),
        (
            "Newsletter",
            D("1000.00"),
            2,
            0,
            0,
            D("0"),
            D("0"),
            D("0.00"),
            None,
            D("0.00"),
            D("-100.00"),
        ),
        (
            "Referral",
            D("0.00"),
            1,
            1,
            1,
            D("5000.00"),
            D("0"),
            D("100.00"),
            D("100.00"),
            D("100.00"),
            None,
        ),
        (
            "Search ads Q4",
            D("4000.00"),
            3,
            1,
            1,
            D("3000.00"),
            D("0"),
            D("33.33"),
            D("100.00"),
            D("33.33"),
            D("-25.00"),
        ),
    ]
    assert not report.team_scoped


def test_campaign_roi_per_channel_and_total(session, world):
    report = campaign_report(session, world["users"]["dora"])
    assert [_row(c) for c in report.channels] == [
        (
            "event",
            D("10000.00"),
            4,
            2,
            1,
            D("30000.00"),
            D("12000.00"),
            D("50.00"),
            D("50.00"),
            D("25.00"),
            D("200.00"),
        ),
        # Search ads + Newsletter: (3,000 - 5,000) / 5,000
        (
            "online",
            D("5000.00"),
            5,
            1,
            1,
            D("3000.00"),
            D("0"),
            D("20.00"),
            D("100.00"),
            D("20.00"),
            D("-40.00"),
        ),
        (
            "referral",
            D("0.00"),
            1,
            1,
            1,
            D("5000.00"),
            D("0"),
            D("100.00"),
            D("100.00"),
            D("100.00"),
            None,
        ),
    ]
    # (38,000 - 15,000) / 15,000 = 153.333.. -> 153.33
    assert _row(report.total)[1:] == (
        D("15000.00"),
        10,
        4,
        3,
        D("38000.00"),
        D("12000.00"),
        D("40.00"),
        D("75.00"),
        D("30.00"),
        D("153.33"),
    )


def test_campaign_roi_period_and_channel_filters(session, world):
    report = campaign_report(
        session,
        world["users"]["mark"],
        start=date(2026, 10, 1),
        end=date(2026, 11, 1),
        channel="online",
    )
    assert [_row(c) for c in report.campaigns] == [
        (
            "Newsletter",
            D("1000.00"),
            2,
            0,
            0,
            D("0"),
            D("0"),
            D("0.00"),
            None,
            D("0.00"),
            D("-100.00"),
        ),
        (
            "Search ads Q4",
            D("4000.00"),
            2,
            1,
            1,
            D("3000.00"),
            D("0"),
            D("50.00"),
            D("100.00"),
            D("50.00"),
            D("-25.00"),
        ),
    ]
    assert [c.key for c in report.channels] == ["online"]


def test_campaign_roi_scopes(session, world):
    users = world["users"]
    report = campaign_report(session, users["north_manager"])
    assert report.team_scoped
    expo = report.campaigns[0]
    # Only the North team's two Expo leads (one won); cost and ROI are not shown to a team.
    assert _row(expo) == (
        "Expo 2026",
        None,
        2,
        1,
        1,
        D("30000.00"),
        D("12000.00"),
        D("50.00"),
        D("100.00"),
        D("50.00"),
        None,
    )
    assert report.total.leads == 3  # + one Newsletter lead
    for name in ("north_rep1", "fiona"):
        with pytest.raises(Forbidden):
            campaign_report(session, users[name])
