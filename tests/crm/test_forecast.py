"""Forecast by close month on a fixed data set: weighted with overrides, commit and best case,
manager adjustments, the target beside it, and accuracy after two weekly snapshots."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.analytics.forecast import (
    adjust_forecast,
    build_forecast,
    forecast_months,
    set_forecast_entry,
)
from crm.analytics.models import ForecastSnapshot
from crm.analytics.scope import DealFilter
from crm.analytics.snapshots import forecast_accuracy, snapshot_forecasts
from crm.errors import Forbidden, InvalidInput
from crm.sales.services import (
    close_opportunity,
    create_opportunity,
    enter_stage,
    set_win_rate_override,
)
from crm.targets.services import TargetKey, set_target

NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)
ALL = DealFilter(pipeline=None)


def D(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture
def org(sales_org, make_customer, session):
    north = sales_org["north"]
    amy, ben = north["reps"]
    customer = make_customer(amy)
    return {
        "director": sales_org["director"],
        "manager": north["manager"],
        "north": north["team"],
        "amy": amy,
        "ben": ben,
        "other_manager": sales_org["south"]["manager"],
        "customer": customer,
    }


def deal(session, org, owner, amount, close, stage_rate, *, at=NOW):
    opp = create_opportunity(
        session,
        owner,
        org["customer"].id,
        f"{owner.username} {amount}",
        amount,
        now=at,
        expected_close=close,
    )
    enter_stage(session, opp.id, "proposal", stage_rate, now=at, by=None)
    return opp


def test_forecast_weighted_commit_adjustment_and_target(session, org):
    amy, ben, manager = org["amy"], org["ben"], org["manager"]
    deal(session, org, amy, "100000", date(2026, 11, 20), 50)  # 50,000
    e2 = deal(session, org, amy, "80000", date(2026, 11, 25), 20)  # override 60 → 48,000
    set_win_rate_override(session, amy, e2.id, 60)
    deal(session, org, amy, "40000", date(2026, 12, 5), 75)  # December 30,000
    won = deal(session, org, amy, "30000", date(2026, 11, 3), 90)
    close_opportunity(session, won.id, "won", "", now=datetime(2026, 11, 3, tzinfo=UTC), by=None)
    deal(session, org, ben, "200000", date(2026, 11, 15), 10)  # 20,000
    won = deal(session, org, ben, "50000", date(2026, 11, 5), 90)
    close_opportunity(session, won.id, "won", "", now=datetime(2026, 11, 5, tzinfo=UTC), by=None)
    set_forecast_entry(session, amy, NOV, "90000", "150000", now=NOW)
    set_forecast_entry(session, ben, NOV, "60000", "100000", now=NOW)
    set_target(
        session,
        org["director"],
        TargetKey("sales", "month", NOV, "team", org["north"].id),
        "200000",
        now=NOW,
    )
    months = forecast_months(NOV, 2)

    before = build_forecast(session, manager, ALL, months, now=NOW)
    nov = before.totals[NOV]
    assert (nov.weighted, nov.won, nov.commit, nov.adjusted_commit, nov.best_case) == (
        D("118000.00"),
        D("80000.00"),
        D("150000.00"),
        D("150000.00"),
        D("250000.00"),
    )
    assert (nov.target, nov.attainment) == (D("200000.00"), D("40.0"))
    assert before.totals[DEC].weighted == D("30000.00")
    amy_row = next(r for r in before.reps if r.user_id == amy.id).months[NOV]
    assert (amy_row.weighted, amy_row.won, amy_row.commit, amy_row.best_case) == (
        D("98000.00"),
        D("30000.00"),
        D("90000.00"),
        D("150000.00"),
    )

    adjust_forecast(session, manager, amy.id, NOV, "70000", "E2 is slipping", now=NOW)
    after = build_forecast(session, manager, ALL, months, now=NOW)
    nov = after.totals[NOV]
    assert (nov.commit, nov.adjusted_commit) == (D("150000.00"), D("130000.00"))
    amy_row = next(r for r in after.reps if r.user_id == amy.id).months[NOV]
    assert (amy_row.commit, amy_row.adjusted, amy_row.comment, amy_row.rollup_commit) == (
        D("90000.00"),
        D("70000.00"),
        "E2 is slipping",
        D("70000.00"),
    )
    # Amy herself still sees her own commit, beside her manager's number.
    own = build_forecast(session, amy, ALL, months, now=NOW)
    assert [r.user_id for r in own.reps] == [amy.id]
    assert (own.totals[NOV].commit, own.totals[NOV].weighted) == (D("90000.00"), D("98000.00"))


def test_forecast_entry_and_adjustment_rules(session, org):
    amy, manager = org["amy"], org["manager"]
    with pytest.raises(InvalidInput) as bad:
        set_forecast_entry(session, amy, NOV, "90000", "80000", now=NOW)
    assert bad.value.fields == {"best_case": ["must be at least the commit (90000)"]}
    with pytest.raises(Forbidden):
        adjust_forecast(session, amy, org["ben"].id, NOV, "1", "no", now=NOW)
    with pytest.raises(Forbidden):
        adjust_forecast(session, org["other_manager"], amy.id, NOV, "1", "not mine", now=NOW)
    with pytest.raises(Forbidden):
        adjust_forecast(session, manager, manager.id, NOV, "1", "myself", now=NOW)
    with pytest.raises(InvalidInput) as bad:
        adjust_forecast(session, manager, amy.id, NOV, "1000", " ", now=NOW)
    assert bad.value.fields == {"comment": ["say why you adjust the number"]}


def test_forecast_accuracy_after_two_snapshots(session, org):
    amy, ben, manager = org["amy"], org["ben"], org["manager"]
    week1 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    week2 = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
    e1 = deal(session, org, amy, "100000", date(2026, 11, 20), 50, at=week1)
    deal(session, org, ben, "200000", date(2026, 11, 15), 10, at=week1)
    set_forecast_entry(session, amy, NOV, "90000", "120000", now=week1)
    set_forecast_entry(session, ben, NOV, "60000", "90000", now=week1)
    # Four reps in the org (the south reps have nothing), three months each.
    assert snapshot_forecasts(session, week1) == 12
    assert snapshot_forecasts(session, week1) == 0  # once per week

    close_opportunity(session, e1.id, "won", "", now=week2, by=None)
    adjust_forecast(session, manager, ben.id, NOV, "30000", "half of it", now=week2)
    assert snapshot_forecasts(session, week2) == 12
    assert session.scalar(select(func.count()).select_from(ForecastSnapshot)) == 24
    late = deal(session, org, ben, "50000", date(2026, 11, 20), 90, at=week2)
    close_opportunity(session, late.id, "won", "", now=datetime(2026, 11, 12, tzinfo=UTC), by=None)

    result = forecast_accuracy(session, manager, ALL, [NOV], now=datetime(2026, 12, 1, tzinfo=UTC))
    w1, w2 = date(2026, 11, 2), date(2026, 11, 9)
    assert result.weeks == [w1, w2]
    rows = {r.user_id: r.cells for r in result.reps}
    cells = {
        (who, week): (c.weighted, c.commit, c.actual, c.weighted_accuracy, c.commit_accuracy)
        for who, per in (("amy", rows[amy.id]), ("ben", rows[ben.id]))
        for (week, _), c in per.items()
    }
    assert cells == {
        # Amy won 100,000: weighted 50,000 then 0 (the deal was won); commit 90,000.
        ("amy", w1): (D("50000.00"), D("90000.00"), D("100000.00"), D("50.0"), D("90.0")),
        ("amy", w2): (D("0.00"), D("90000.00"), D("100000.00"), D("0.0"), D("90.0")),
        # Ben won 50,000: weighted 20,000; his own commit stays 60,000.
        ("ben", w1): (D("20000.00"), D("60000.00"), D("50000.00"), D("40.0"), D("80.0")),
        ("ben", w2): (D("20000.00"), D("60000.00"), D("50000.00"), D("40.0"), D("80.0")),
    }
    team = {
        week: (c.weighted, c.commit, c.actual, c.weighted_accuracy, c.commit_accuracy)
        for (week, _), c in result.team.items()
    }
    assert team == {
        # 70,000 forecast against 150,000 won: 100 − 80,000/150,000 × 100 = 46.7
        w1: (D("70000.00"), D("150000.00"), D("150000.00"), D("46.7"), D("100.0")),
        # the manager's 30,000 replaces Ben's 60,000 in the team commit: 120,000 → 80.0
        w2: (D("20000.00"), D("120000.00"), D("150000.00"), D("13.3"), D("80.0")),
    }
    rep_view = forecast_accuracy(session, amy, ALL, [NOV], now=datetime(2026, 12, 1, tzinfo=UTC))
    assert [r.user_id for r in rep_view.reps] == [amy.id]
