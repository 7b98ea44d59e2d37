"""The funnel on a fixed data set whose every figure is computed by hand in the comments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from crm.analytics.funnel import build_funnel
from crm.analytics.scope import DealFilter
from crm.customers.services import create_customer
from crm.directory.models import Team, Territory, User
from crm.directory.services import create_user
from crm.errors import Forbidden
from crm.quotes.models import Product, Quote, QuoteLine
from crm.sales.services import close_opportunity, create_opportunity, enter_stage

OCT_1 = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 1, tzinfo=UTC)  # day 31 of the period
OCTOBER = {"period_start": date(2026, 10, 1), "period_end": date(2026, 11, 1)}
RATES = {
    "qualification": 10,
    "needs_analysis": 20,
    "proposal": 50,
    "negotiation": 75,
    "closing": 90,
}


def day(n: float) -> datetime:
    return OCT_1 + timedelta(days=n)


@dataclass
class FunnelData:
    director: User
    manager: User
    rep_a: User
    rep_b: User
    rep_c: User
    finance: User
    north: Team
    territory: Territory
    product: Product
    deals: dict[str, int]


def build_funnel_data(session: Any, password_hash: str | None = None) -> FunnelData:
    """Six deals of three reps; D6 started in September (see the module's tests for figures)."""
    territory = Territory(code="E", name="East")
    session.add(territory)
    session.flush()

    def person(name: str, *roles: str, team: Team | None = None) -> User:
        return create_user(
            session,
            name,
            name.title(),
            roles,
            now=OCT_1 - timedelta(days=60),
            team_id=team.id if team else None,
            password_hash=password_hash,
        )

    director = person("dora", "director")
    top = Team(name="Sales", manager_id=director.id)
    session.add(top)
    session.flush()
    manager = person("nina", "manager")
    north = Team(name="North", parent_id=top.id, manager_id=manager.id)
    south = Team(name="South", parent_id=top.id)
    session.add_all([north, south])
    session.flush()
    manager.team_id = north.id
    rep_a = person("amy", "rep", team=north)
    rep_b = person("ben", "rep", team=north)
    rep_c = person("cai", "rep", team=south)
    finance = person("fred", "finance")
    product = Product(sku="P-1", name="Widget", product_line="hardware")
    session.add(product)
    session.flush()
    plain = create_customer(session, director, "Plain Co", now=OCT_1, owner=director)
    eastern = create_customer(
        session, director, "East Co", now=OCT_1, owner=director, territory_id=territory.id
    )
    deals: dict[str, int] = {}

    def deal(key: str, owner: User, amount: str, created: datetime, customer: Any) -> int:
        opp = create_opportunity(session, owner, customer.id, key, amount, now=created)
        deals[key] = opp.id
        return opp.id

    def move(opp: int, *steps: tuple[float, str]) -> None:
        for when, stage in steps:
            if stage in ("won", "lost"):
                close_opportunity(session, opp, stage, REASONS[opp], now=day(when), by=None)
            else:
                enter_stage(session, opp, stage, RATES[stage], now=day(when), by=None)

    REASONS: dict[int, str] = {}
    d1 = deal("D1", rep_a, "100000", day(0), plain)
    d2 = deal("D2", rep_a, "50000", day(0), plain)
    d3 = deal("D3", rep_b, "200000", day(0), plain)
    d4 = deal("D4", rep_b, "80000", day(5), plain)
    d5 = deal("D5", rep_c, "120000", day(2), eastern)
    d6 = deal("D6", rep_c, "60000", day(-11), eastern)
    REASONS.update({d1: "price", d2: "budget", d5: "competitor", d6: "relationship"})
    move(
        d1,
        (0, "qualification"),
        (2, "needs_analysis"),
        (6, "proposal"),
        (10, "negotiation"),
        (14, "closing"),
        (20, "won"),
    )
    move(d2, (0, "qualification"), (4, "needs_analysis"), (8, "lost"))
    move(
        d3,
        (1, "qualification"),
        (3, "needs_analysis"),
        (9, "proposal"),
        (12, "needs_analysis"),
        (15, "proposal"),
    )
    move(d4, (5, "qualification"))
    move(
        d5,
        (2, "qualification"),
        (4, "needs_analysis"),
        (8, "proposal"),
        (12, "negotiation"),
        (16, "lost"),
    )
    move(
        d6,
        (-11, "qualification"),
        (-5, "needs_analysis"),
        (3, "proposal"),
        (7, "negotiation"),
        (9, "closing"),
        (11, "won"),
    )
    quote = Quote(
        number="Q-1", opportunity_id=d3, customer_id=plain.id, owner_id=rep_b.id, created_at=day(9)
    )
    session.add(quote)
    session.flush()
    session.add(
        QuoteLine(
            quote_id=quote.id,
            product_id=product.id,
            description="Widgets",
            quantity=Decimal("1"),
            unit_price=Decimal("10"),
            line_total=Decimal("10"),
        )
    )
    session.flush()
    return FunnelData(
        director, manager, rep_a, rep_b, rep_c, finance, north, territory, product, deals
    )


@pytest.fixture
def data(session) -> FunnelData:
    return build_funnel_data(session)


def _stages(funnel) -> dict[str, Any]:
    return {s.stage: s for s in funnel.stages}


def D(text: str) -> Decimal:
    return Decimal(text)


def test_funnel_entries_conversion_win_rates_and_dwell_for_the_director(session, data, deploy):
    deploy("sales_pipeline_new_business.bpmn")
    funnel = build_funnel(session, data.director, DealFilter(**OCTOBER), now=NOW)
    stages = _stages(funnel)
    assert [s.stage for s in funnel.stages] == list(RATES)
    figures = {
        name: (
            s.entered,
            s.amount,
            s.advanced,
            s.conversion,
            s.configured_win_rate,
            s.observed_win_rate,
            s.stays,
            s.avg_days,
            s.median_days,
            s.max_days,
            s.stale,
        )
        for name, s in stages.items()
    }
    assert figures == {
        # D1 D2 D3 D4 D5; all but D4 moved on; won D1, lost D2 D5; stays 2 4 2 26 2 days
        "qualification": (
            5,
            D("550000.00"),
            4,
            D("80.0"),
            10,
            D("33.3"),
            5,
            D("7.2"),
            D("2.0"),
            14.0,
            1,
        ),
        # D1 D2 D3 D5 (D6 entered in September); D3 entered twice: stays 4 4 6 3 4
        "needs_analysis": (
            4,
            D("470000.00"),
            3,
            D("75.0"),
            20,
            D("33.3"),
            5,
            D("4.2"),
            D("4.0"),
            21.0,
            0,
        ),
        # D1 D3 D5 D6; D3 went back, then sits 16 days; won D1 D6, lost D5
        "proposal": (
            4,
            D("480000.00"),
            3,
            D("75.0"),
            50,
            D("66.7"),
            5,
            D("6.2"),
            D("4.0"),
            21.0,
            0,
        ),
        # D1 D5 D6: stays 4 4 2
        "negotiation": (
            3,
            D("280000.00"),
            2,
            D("66.7"),
            75,
            D("66.7"),
            3,
            D("3.3"),
            D("4.0"),
            14.0,
            0,
        ),
        # D1 D6 both won: stays 6 and 2
        "closing": (
            2,
            D("160000.00"),
            2,
            D("100.0"),
            90,
            D("100.0"),
            2,
            D("4.0"),
            D("4.0"),
            7.0,
            0,
        ),
    }
    # Won D1 (20 days from creation) and D6 (created Sep 20, won Oct 12: 22 days);
    # lost D2 (8 days) and D5 (created day 2, lost day 16: 14 days).
    assert (funnel.won_count, funnel.won_amount, funnel.lost_count, funnel.lost_amount) == (
        2,
        D("160000.00"),
        2,
        D("170000.00"),
    )
    assert funnel.avg_deal_size == D("80000.00")
    assert (funnel.avg_cycle_days_won, funnel.avg_cycle_days_lost) == (D("21.0"), D("11.0"))
    assert funnel.win_rate == D("50.0")
    assert [(r.outcome, r.reason, r.count, r.amount) for r in funnel.reasons] == [
        ("won", "price", 1, D("100000.00")),
        ("won", "relationship", 1, D("60000.00")),
        ("lost", "budget", 1, D("50000.00")),
        ("lost", "competitor", 1, D("120000.00")),
    ]
    assert [(d.name, d.stage, d.days_in_stage) for d in funnel.stale_deals] == [
        ("D4", "qualification", D("26.0"))
    ]


def test_funnel_scopes_rep_and_manager(session, data):
    rep = _stages(build_funnel(session, data.rep_a, DealFilter(**OCTOBER), now=NOW))
    # Amy's D1 and D2 only: stays 2 and 4 days, D1 won, D2 lost.
    q = rep["qualification"]
    assert (q.entered, q.amount, q.conversion, q.observed_win_rate, q.avg_days) == (
        2,
        D("150000.00"),
        D("100.0"),
        D("50.0"),
        D("3.0"),
    )
    assert rep["negotiation"].entered == 1
    team = _stages(build_funnel(session, data.manager, DealFilter(**OCTOBER), now=NOW))
    # Nina's team: D1 D2 D3 D4.
    assert (team["qualification"].entered, team["qualification"].amount) == (4, D("430000.00"))
    assert team["negotiation"].entered == 1
    with pytest.raises(Forbidden):
        build_funnel(session, data.rep_a, DealFilter(owner_id=data.rep_b.id, **OCTOBER), now=NOW)
    with pytest.raises(Forbidden):
        build_funnel(session, data.finance, DealFilter(**OCTOBER), now=NOW)


def test_funnel_filters_by_team_rep_territory_and_product(session, data, deploy):
    deploy("sales_pipeline_new_business.bpmn")

    def first_stage(**extra: Any) -> tuple[int, Decimal]:
        funnel = build_funnel(session, data.director, DealFilter(**OCTOBER, **extra), now=NOW)
        q = _stages(funnel)["qualification"]
        return q.entered, q.amount

    assert first_stage(team_id=data.north.id) == (4, D("430000.00"))
    assert first_stage(owner_id=data.rep_b.id) == (2, D("280000.00"))
    assert first_stage(territory_id=data.territory.id) == (1, D("120000.00"))  # D5 (D6: Sept.)
    assert first_stage(product_id=data.product.id) == (1, D("200000.00"))  # D3's quote line
    november = build_funnel(
        session,
        data.director,
        DealFilter(period_start=date(2026, 11, 1), period_end=date(2026, 12, 1)),
        now=NOW,
    )
    assert all(s.entered == 0 for s in november.stages)
    assert november.stale_deals[0].name == "D4"  # stale is about now, not the period


def test_funnel_stays_that_cross_the_end_of_the_period(session, data):
    funnel = build_funnel(
        session,
        data.director,
        DealFilter(period_start=date(2026, 10, 1), period_end=date(2026, 10, 8)),
        now=NOW,
    )
    proposal = _stages(funnel)["proposal"]
    # D1 entered on day 6 and moved on on day 10, D6 entered on day 3 and moved on on day 7
    # (the first day after the period): both moves are found after the period, 4 days each.
    assert (proposal.entered, proposal.advanced, proposal.stays, proposal.avg_days) == (
        2,
        2,
        2,
        D("4.0"),
    )
    # D2 entered needs analysis on day 4 and was lost on day 8: 4 days, not moved on.
    needs = _stages(funnel)["needs_analysis"]
    assert (needs.entered, needs.advanced, needs.median_days) == (4, 3, D("4.0"))


def test_funnel_of_a_period_that_has_not_ended(session, data):
    funnel = build_funnel(session, data.director, DealFilter(**OCTOBER), now=day(30))
    q = _stages(funnel)["qualification"]
    # The same moves; D4, still open, has now been in qualification for 25 days.
    assert (q.entered, q.advanced, q.stays, q.avg_days, q.median_days) == (
        5,
        4,
        5,
        D("7.0"),
        D("2.0"),
    )
    assert _stages(funnel)["proposal"].avg_days == D("6.0")  # D3 has sat there 15 days


def test_funnel_without_a_deployed_pipeline_uses_recorded_win_rates(session, data):
    funnel = build_funnel(session, data.director, DealFilter(**OCTOBER), now=NOW)
    assert [(s.stage, s.configured_win_rate, s.max_days) for s in funnel.stages] == [
        (stage, rate, None) for stage, rate in RATES.items()
    ]
    assert funnel.stale_deals == []  # without max_days nothing is stale
