"""Targets: who may set them, top-down decomposition that may not exceed the whole, attainment
of sales (won deals) and cash (receipts)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from crm.errors import Conflict, Forbidden, InvalidInput
from crm.orders.models import Receipt, SalesOrder
from crm.sales.services import close_opportunity, create_opportunity
from crm.targets.listing import list_targets
from crm.targets.services import TargetKey, attainment, delete_target, set_target

NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
YEAR, Q4, NOV = date(2026, 1, 1), date(2026, 10, 1), date(2026, 11, 1)


def D(text: str) -> Decimal:
    return Decimal(text)


def test_targets_decompose_top_down_and_refuse_excess(session, sales_org):
    dora = sales_org["director"]
    north, south = sales_org["north"]["team"], sales_org["south"]["team"]
    company = set_target(
        session, dora, TargetKey("sales", "year", YEAR, "company", None), "1000000", now=NOW
    )
    set_target(
        session,
        dora,
        TargetKey("sales", "year", YEAR, "team", north.id),
        "600000",
        now=NOW,
        parent_id=company.id,
    )
    south_year = set_target(
        session,
        dora,
        TargetKey("sales", "year", YEAR, "team", south.id),
        "400000",
        now=NOW,
        parent_id=company.id,
    )
    with pytest.raises(Conflict) as excess:
        set_target(
            session,
            dora,
            TargetKey("sales", "year", YEAR, "territory", sales_org["territory"].id),
            "1",
            now=NOW,
            parent_id=company.id,
        )
    assert excess.value.message == (
        f"the parts of target #{company.id} (company sales, year from 2026-01-01) would add up "
        "to 1000001.00, 1.00 more than its 1000000.00"
    )
    with pytest.raises(Conflict) as shrink:
        set_target(
            session, dora, TargetKey("sales", "year", YEAR, "company", None), "900000", now=NOW
        )
    assert "cannot be 900000.00, 100000.00 less than its parts" in shrink.value.message
    # Changing a part within what is left is fine; the unallocated rest shows as a gap.
    set_target(
        session,
        dora,
        TargetKey("sales", "year", YEAR, "team", south.id),
        "300000",
        now=NOW,
        parent_id=company.id,
    )
    assert south_year.amount == D("300000")
    rows = {
        (r.target.scope_kind, r.target.scope_id): r
        for r in list_targets(session, dora, year=2026, now=NOW)
    }
    assert (rows[("company", None)].parts_total, rows[("company", None)].gap) == (
        D("900000.00"),
        D("100000.00"),
    )
    assert rows[("team", north.id)].gap is None  # not split


def test_targets_parent_must_contain_the_part(session, sales_org):
    dora = sales_org["director"]
    north = sales_org["north"]["team"]
    rep = sales_org["north"]["reps"][0]
    south_rep = sales_org["south"]["reps"][0]
    team_year = set_target(
        session, dora, TargetKey("sales", "year", YEAR, "team", north.id), "600000", now=NOW
    )
    with pytest.raises(InvalidInput) as period:
        set_target(
            session,
            dora,
            TargetKey("sales", "month", date(2025, 1, 1), "user", rep.id),
            "1000",
            now=NOW,
            parent_id=team_year.id,
        )
    assert period.value.fields["parent_id"][0].endswith(
        "covers a period that does not contain this one"
    )
    with pytest.raises(InvalidInput) as scope:
        set_target(
            session,
            dora,
            TargetKey("sales", "quarter", Q4, "user", south_rep.id),
            "1000",
            now=NOW,
            parent_id=team_year.id,
        )
    assert "does not contain this scope" in scope.value.fields["parent_id"][0]
    with pytest.raises(InvalidInput) as metric:
        set_target(
            session,
            dora,
            TargetKey("cash", "quarter", Q4, "user", rep.id),
            "1000",
            now=NOW,
            parent_id=team_year.id,
        )
    assert "is a sales target; this one is cash" in metric.value.fields["parent_id"][0]
    with pytest.raises(InvalidInput) as aligned:
        set_target(
            session,
            dora,
            TargetKey("sales", "quarter", date(2026, 2, 1), "user", rep.id),
            "1000",
            now=NOW,
        )
    assert aligned.value.fields == {
        "period_start": ["2026-02-01 is not the first day of a quarter"]
    }
    part = set_target(
        session,
        dora,
        TargetKey("sales", "quarter", Q4, "user", rep.id),
        "200000",
        now=NOW,
        parent_id=team_year.id,
    )
    with pytest.raises(Conflict):
        delete_target(session, dora, team_year.id)
    delete_target(session, dora, part.id)
    delete_target(session, dora, team_year.id)


def test_targets_who_may_set_them(session, sales_org):
    manager = sales_org["north"]["manager"]
    rep = sales_org["north"]["reps"][0]
    south = sales_org["south"]["team"]
    set_target(session, manager, TargetKey("sales", "month", NOV, "user", rep.id), "1000", now=NOW)
    set_target(
        session,
        manager,
        TargetKey("cash", "month", NOV, "team", sales_org["north"]["team"].id),
        "1000",
        now=NOW,
    )
    for key in (
        TargetKey("sales", "month", NOV, "team", south.id),
        TargetKey("sales", "month", NOV, "company", None),
        TargetKey("sales", "month", NOV, "territory", sales_org["territory"].id),
        TargetKey("sales", "month", NOV, "user", manager.id),
    ):
        with pytest.raises(Forbidden):
            set_target(session, manager, key, "1000", now=NOW)
    with pytest.raises(Forbidden):
        set_target(session, rep, TargetKey("sales", "month", NOV, "user", rep.id), "1", now=NOW)
    # A rep sees only targets of their own and their team.
    seen = [
        (r.target.scope_kind, r.target.metric)
        for r in list_targets(session, rep, year=2026, now=NOW)
    ]
    assert sorted(seen) == [("team", "cash"), ("user", "sales")]


def test_targets_attainment_of_sales_and_cash(session, sales_org, make_customer):
    dora = sales_org["director"]
    rep = sales_org["north"]["reps"][0]
    customer = make_customer(rep, territory_id=sales_org["territory"].id)
    for amount, closed in (
        ("50000", datetime(2026, 10, 5, tzinfo=UTC)),
        ("30000", datetime(2026, 11, 1, tzinfo=UTC)),
        ("10000", datetime(2026, 9, 30, 23, 0, tzinfo=UTC)),
    ):
        opp = create_opportunity(
            session, rep, customer.id, "Deal", amount, now=datetime(2026, 9, 1, tzinfo=UTC)
        )
        close_opportunity(session, opp.id, "won", "", now=closed, by=None)
    lost = create_opportunity(
        session, rep, customer.id, "Lost", "70000", now=datetime(2026, 9, 1, tzinfo=UTC)
    )
    close_opportunity(
        session, lost.id, "lost", "budget", now=datetime(2026, 10, 9, tzinfo=UTC), by=None
    )
    set_target(session, dora, TargetKey("sales", "quarter", Q4, "user", rep.id), "200000", now=NOW)
    # Won in Q4 up to now: 50,000 + 30,000 (the September deal and the lost one do not count).
    assert attainment(
        session,
        scope_kind="user",
        scope_id=rep.id,
        metric="sales",
        period_start=Q4,
        period_kind="quarter",
        now=NOW,
    ) == (
        D("200000.00"),
        D("80000.00"),
        D("0.4000"),
    )
    assert attainment(
        session,
        scope_kind="territory",
        scope_id=sales_org["territory"].id,
        metric="sales",
        period_start=Q4,
        period_kind="quarter",
        now=NOW,
    ) == (
        None,
        D("80000.00"),
        None,
    )
    order = SalesOrder(
        number="SO-1",
        opportunity_id=lost.id,
        customer_id=customer.id,
        owner_id=rep.id,
        amount=D("60000"),
        signed_on=date(2026, 10, 1),
        created_at=NOW,
    )
    session.add(order)
    session.flush()
    for amount, day in (
        ("15000", date(2026, 11, 3)),
        ("5000", date(2026, 11, 8)),
        ("7000", date(2026, 10, 30)),
        ("9000", date(2026, 11, 20)),
    ):
        session.add(
            Receipt(
                order_id=order.id,
                amount=D(amount),
                received_on=day,
                registered_by="fiona",
                created_at=NOW,
            )
        )
    set_target(
        session,
        dora,
        TargetKey("cash", "month", NOV, "team", sales_org["north"]["team"].id),
        "40000",
        now=NOW,
    )
    # November receipts up to Nov 10: 15,000 + 5,000 (Oct 30 and Nov 20 are outside).
    assert attainment(
        session,
        scope_kind="team",
        scope_id=sales_org["north"]["team"].id,
        metric="cash",
        period_start=NOV,
        period_kind="month",
        now=NOW,
    ) == (
        D("40000.00"),
        D("20000.00"),
        D("0.5000"),
    )
    assert attainment(
        session,
        scope_kind="team",
        scope_id=sales_org["south"]["team"].id,
        metric="cash",
        period_start=NOV,
        period_kind="month",
        now=NOW,
    ) == (
        None,
        D("0.00"),
        None,
    )
