"""Commission arithmetic on a fixed October: tiers with an accelerator, a coefficient, cash vs
sales bases, a cap, and statement lines that add up to the totals (all figures by hand)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.commission.models import CommissionAudit, CommissionRun
from crm.commission.plans import (
    PlanInput,
    parse_tiers,
    plan_history,
    save_plan,
    set_coefficient,
)
from crm.commission.rules import Contribution, commission_lines, money
from crm.commission.runs import calculate_run
from crm.commission.statements import get_statement, list_runs, run_summary
from crm.customers.models import Customer
from crm.directory.models import Team, User
from crm.directory.services import create_user
from crm.errors import Forbidden, InvalidInput, NotFound
from crm.orders.models import Receipt, SalesOrder
from crm.sales.models import Opportunity
from crm.targets.models import Target
from crm.targets.services import attainment
from tests.conftest import NOW

OCTOBER = date(2026, 10, 1)
D = Decimal


def _at(day: int, month: int = 10) -> datetime:
    return datetime(2026, month, day, 15, 0, tzinfo=UTC)


def build_commission_world(session: Session, password_hash: str | None = None) -> dict[str, Any]:
    """October 2026 for a small company: two teams, two plans, targets, receipts and deals.

    north_rep1 (cash plan, team North, target 10,000, coefficient 1.10): receipts 5,000 (3 Oct),
      4,000 (10 Oct), 3,000 (20 Oct) -> 12,000, 120 %; commission 627.00.
    north_rep2 (cash plan, target 5,000): receipts 333.33 and 3,666.67 -> 4,000, 80 %; 160.00.
    south_rep1 (sales plan, own, target 20,000, cap 500): won 15,000 (8 Oct) and 9,000 (25 Oct)
      -> 24,000, 120 %; 300 + 100 + 160 = 560.00, capped to 500.00.
    south_rep2: no plan, no statement.
    """
    users: dict[str, User] = {}

    def person(name: str, *roles: str, team: Team | None = None) -> User:
        users[name] = create_user(
            session,
            name,
            name.replace("_", " ").title(),
            roles,
            now=NOW,
            team_id=team.id if team else None,
            password_hash=password_hash,
        )
        return users[name]

    director = person("dora", "director")
    top = Team(name="Sales", manager_id=director.id)
    session.add(top)
    session.flush()
    teams = {}
    for key in ("north", "south"):
        manager = person(f"{key}_manager", "manager")
        team = Team(name=key.title(), parent_id=top.id, manager_id=manager.id)
        session.add(team)
        session.flush()
        manager.team_id, teams[key] = team.id, team
        person(f"{key}_rep1", "rep", team=team)
        person(f"{key}_rep2", "rep", team=team)
    person("fiona", "finance")
    person("adam", "admin")
    person("mark", "marketing")
    admin = users["adam"]
    cash_plan = save_plan(
        session,
        admin,
        None,
        PlanInput(
            name="Cash plan",
            basis="cash",
            base_rate_pct="5",
            valid_from=date(2026, 1, 1),
            valid_to=None,
            cap="",
            tiers="0 0.8\n80 1.0\n100 1.5",
            team_ids=(teams["north"].id,),
        ),
        now=NOW,
    )
    sales_plan = save_plan(
        session,
        admin,
        None,
        PlanInput(
            name="Sales plan",
            basis="sales",
            base_rate_pct="2",
            valid_from=date(2026, 10, 1),
            valid_to=date(2026, 12, 31),
            cap="500",
            tiers="0 1\n100 2",
            user_ids=(users["south_rep1"].id,),
        ),
        now=NOW,
    )
    for name, metric, amount in (
        ("north_rep1", "cash", "10000"),
        ("north_rep2", "cash", "5000"),
        ("south_rep1", "sales", "20000"),
    ):
        session.add(
            Target(
                metric=metric,
                period_kind="month",
                period_start=OCTOBER,
                scope_kind="user",
                scope_id=users[name].id,
                amount=D(amount),
                set_by="dora",
                set_at=NOW,
            )
        )
    set_coefficient(
        session,
        users["north_manager"],
        users["north_rep1"].id,
        OCTOBER,
        "1.10",
        "excellent customer feedback",
        now=NOW,
    )
    orders = {}
    for name in ("north_rep1", "north_rep2"):
        orders[name] = _order(session, users[name], f"SO-{name}", "50000")
    for name, day, month, amount, ref in (
        ("north_rep1", 30, 9, "1000.00", "SEP"),  # September: not in the October run
        ("north_rep1", 3, 10, "5000.00", "R1"),
        ("north_rep1", 10, 10, "4000.00", "R2"),
        ("north_rep1", 20, 10, "3000.00", "R3"),
        ("north_rep1", 1, 11, "700.00", "NOV"),  # November: not in the October run
        ("north_rep2", 5, 10, "333.33", "R4"),
        ("north_rep2", 6, 10, "3666.67", "R5"),
    ):
        session.add(
            Receipt(
                order_id=orders[name].id,
                amount=D(amount),
                received_on=date(2026, month, day),
                reference=ref,
                registered_by="fiona",
                created_at=NOW,
            )
        )
    rep = users["south_rep1"]
    for label, amount, status, closed in (
        ("Big win", "15000", "won", _at(8)),
        ("Late win", "9000", "won", _at(25)),
        ("Lost one", "50000", "lost", _at(12)),
        ("November win", "8000", "won", _at(2, 11)),
    ):
        _deal(session, rep, label, amount, status, closed)
    session.flush()
    return {"users": users, "teams": teams, "plans": {"cash": cash_plan, "sales": sales_plan}}


def _customer(session: Session, owner: User, name: str) -> Customer:
    customer = Customer(name=name, name_key=name.lower(), owner_id=owner.id, created_at=NOW)
    session.add(customer)
    session.flush()
    return customer


def _deal(
    session: Session,
    owner: User,
    name: str,
    amount: str,
    status: str,
    closed: datetime | None,
    lead_id: int | None = None,
) -> Opportunity:
    deal = Opportunity(
        customer_id=_customer(session, owner, f"{name} Ltd").id,
        owner_id=owner.id,
        lead_id=lead_id,
        name=name,
        amount=D(amount),
        pipeline="new_business",
        status=status,
        created_at=NOW,
        closed_at=closed,
    )
    session.add(deal)
    session.flush()
    return deal


def _order(
    session: Session, owner: User, number: str, amount: str, deal: Opportunity | None = None
) -> SalesOrder:
    deal = deal or _deal(session, owner, f"{number} deal", amount, "won", _at(1, 9))
    order = SalesOrder(
        number=number,
        opportunity_id=deal.id,
        customer_id=deal.customer_id,
        owner_id=owner.id,
        amount=D(amount),
        signed_on=date(2026, 9, 1),
        created_at=NOW,
    )
    session.add(order)
    session.flush()
    return order


def new_run(session: Session, month: date = OCTOBER) -> CommissionRun:
    run = CommissionRun(
        period_start=month, status="calculating", started_by="fiona", started_at=NOW
    )
    session.add(run)
    session.flush()
    return run


@pytest.fixture
def world(session):
    return build_commission_world(session)


@pytest.fixture
def calculated(session, world):
    run = new_run(session)
    result = calculate_run(session, run.id, now=NOW)
    return run, result


def _lines(statement) -> list[tuple[str, str, str, str, str, str]]:
    return [
        (
            ln.label,
            str(ln.base),
            ln.tier,
            str(ln.multiplier.normalize()),
            str(ln.coefficient),
            str(ln.amount),
        )
        for ln in statement.lines
    ]


def _statement_of(run, world, name):
    [statement] = [s for s in run.statements if s.user_id == world["users"][name].id]
    return statement


def test_commission_cash_plan_tiers_accelerator_and_coefficient(calculated, world):
    run, result = calculated
    statement = _statement_of(run, world, "north_rep1")
    assert (statement.basis, statement.target, statement.achieved) == (
        "cash",
        D("10000.00"),
        D("12000.00"),
    )
    assert statement.attainment_pct == D("120.00")
    assert statement.coefficient == D("1.10")
    assert _lines(statement) == [
        ("Receipt R1 · order SO-north_rep1", "5000.00", "0-80%", "0.8", "1.10", "220.00"),
        ("Receipt R2 · order SO-north_rep1", "3000.00", "0-80%", "0.8", "1.10", "132.00"),
        ("Receipt R2 · order SO-north_rep1", "1000.00", "80-100%", "1", "1.10", "55.00"),
        ("Receipt R3 · order SO-north_rep1", "1000.00", "80-100%", "1", "1.10", "55.00"),
        ("Receipt R3 · order SO-north_rep1", "2000.00", ">100%", "1.5", "1.10", "165.00"),
    ]
    assert statement.total == D("627.00")


def test_commission_achieved_matches_the_targets_attainment(session, calculated, world):
    run, _ = calculated
    for name, metric, achieved, ratio in (
        ("north_rep1", "cash", "12000.00", "1.2000"),
        ("north_rep2", "cash", "4000.00", "0.8000"),
        ("south_rep1", "sales", "24000.00", "1.2000"),
    ):
        target, actual, fraction = attainment(
            session,
            scope_kind="user",
            scope_id=world["users"][name].id,
            metric=metric,
            period_start=OCTOBER,
            period_kind="month",
            now=NOW,
        )
        statement = _statement_of(run, world, name)
        assert (actual, fraction) == (D(achieved), D(ratio))
        assert (statement.target, statement.achieved) == (target, actual)


def test_commission_lines_are_rounded_half_up_and_add_up(calculated, world):
    run, _ = calculated
    statement = _statement_of(run, world, "north_rep2")
    # 333.33 x 5 % x 0.8 = 13.3332 -> 13.33; 3666.67 x 5 % x 0.8 = 146.6668 -> 146.67
    assert [str(ln.amount) for ln in statement.lines] == ["13.33", "146.67"]
    assert statement.attainment_pct == D("80.00")
    assert statement.coefficient == D("1.00")
    assert statement.total == D("160.00") == sum(ln.amount for ln in statement.lines)
    for statement in run.statements:
        assert statement.total == sum(ln.amount for ln in statement.lines)


def test_commission_sales_basis_counts_won_deals_in_the_month_and_caps(calculated, world):
    run, result = calculated
    statement = _statement_of(run, world, "south_rep1")
    assert (statement.basis, statement.achieved, statement.attainment_pct) == (
        "sales",
        D("24000.00"),
        D("120.00"),
    )
    assert [
        (ln.kind, ln.label, str(ln.base), ln.tier, str(ln.amount)) for ln in statement.lines
    ] == [
        ("deal", "Deal Big win", "15000.00", "0-100%", "300.00"),
        ("deal", "Deal Late win", "5000.00", "0-100%", "100.00"),
        ("deal", "Deal Late win", "4000.00", ">100%", "160.00"),
        ("cap", "Cap 500.00", "0.00", "", "-60.00"),
    ]
    assert statement.total == D("500.00")
    assert result == {"statements": 3, "total": "1287.00"}  # 627 + 160 + 500
    assert world["users"]["south_rep2"].id not in {s.user_id for s in run.statements}


def test_commission_without_target_pays_the_base_rate(session, world):
    session.query(Target).filter(Target.scope_id == world["users"]["north_rep2"].id).delete()
    run = new_run(session)
    calculate_run(session, run.id, now=NOW)
    statement = _statement_of(run, world, "north_rep2")
    assert statement.target is None
    assert statement.attainment_pct is None
    # 333.33 x 5 % = 16.6665 -> 16.67 (half up); 3666.67 x 5 % = 183.3335 -> 183.33
    assert [(ln.tier, str(ln.amount)) for ln in statement.lines] == [
        ("no target", "16.67"),
        ("no target", "183.33"),
    ]
    assert statement.total == D("200.00")


def test_commission_money_rounds_half_up():
    assert [money(D(x)) for x in ("2.345", "2.344", "-0.005", "0.125")] == [
        D("2.35"),
        D("2.34"),
        D("-0.01"),
        D("0.13"),
    ]


def test_commission_slices_cross_several_tiers_in_one_receipt():
    tiers = parse_tiers("0 0.5\n50 1\n100 2")
    lines = commission_lines(
        [Contribution("receipt", 1, "one", date(2026, 10, 1), D("1500"))],
        target=D("1000"),
        tiers=tiers,
        rate=D("0.10"),
        coefficient=D("1"),
    )
    # 500 x 10 % x 0.5 = 25; 500 x 10 % x 1 = 50; 500 x 10 % x 2 = 100
    assert [(str(x.base), x.tier, str(x.amount)) for x in lines] == [
        ("500.00", "0-50%", "25.00"),
        ("500.00", "50-100%", "50.00"),
        ("500.00", ">100%", "100.00"),
    ]


def test_commission_recalculation_keeps_adjustments(session, calculated, world):
    from crm.commission.runs import adjust_run

    run, _ = calculated
    adjust_run(
        session,
        run.id,
        [{"rep": "north_rep2", "amount": "40.00", "comment": "shared deal"}],
        by="north_manager",
        now=NOW,
    )
    run.status = "in_review"
    order = session.query(SalesOrder).filter_by(number="SO-north_rep2").one()
    session.add(
        Receipt(
            order_id=order.id,
            amount=D("1000.00"),
            received_on=date(2026, 10, 30),
            reference="LATE",
            registered_by="fiona",
            created_at=NOW,
        )
    )
    session.flush()
    calculate_run(session, run.id, now=NOW)
    statement = _statement_of(run, world, "north_rep2")
    # 5,000 = 100 % now: the late 1,000 sits in 80-100 %: 50.00; plus the kept +40.00
    assert [(ln.kind, str(ln.amount), ln.comment) for ln in statement.lines] == [
        ("receipt", "13.33", None),
        ("receipt", "146.67", None),
        ("receipt", "50.00", None),
        ("adjustment", "40.00", "shared deal"),
    ]
    assert statement.total == D("250.00")


def test_commission_adjustment_refused_for_another_team(session, calculated, world):
    from crm.commission.runs import adjust_run

    run, _ = calculated
    result = adjust_run(
        session,
        run.id,
        [
            {"rep": "north_rep1", "amount": "10", "comment": "ok"},
            {"rep": "south_rep1", "amount": "10", "comment": "not mine"},
            {"rep": "north_rep2", "amount": "1.005", "comment": "sub-cent"},
            {"rep": "north_rep2", "amount": "5", "comment": ""},
        ],
        by="north_manager",
        now=NOW,
    )
    assert result == {
        "problems": [
            "adjustment 2: you do not manage south_rep1",
            "adjustment 3: the amount must be a non-zero sum in cents",
            "adjustment 4: a comment is required",
        ]
    }
    assert _statement_of(run, world, "north_rep1").total == D("627.00")  # nothing applied
    assert run.status == "in_review"


def test_commission_plan_editor_checks_every_field(session, world):
    admin = world["users"]["adam"]
    bad = PlanInput(
        name="Cash plan",
        basis="barter",
        base_rate_pct="5",
        valid_from=date(2026, 1, 1),
        valid_to=None,
        cap="",
        tiers="0 1",
    )
    with pytest.raises(InvalidInput) as error:
        save_plan(session, admin, None, bad, now=NOW)
    assert error.value.fields == {"name": ["'Cash plan' is taken"]}
    for change, field in (
        ({"name": "New", "basis": "barter"}, "basis"),
        ({"name": "New", "basis": "cash", "tiers": "10 1"}, "tiers"),
        ({"name": "New", "basis": "cash", "tiers": "0 x"}, "tiers"),
        ({"name": "New", "basis": "cash", "base_rate_pct": "-1"}, "base_rate"),
        ({"name": "New", "basis": "cash", "valid_to": date(2025, 1, 1)}, "valid_to"),
    ):
        with pytest.raises(InvalidInput) as error:
            save_plan(session, admin, None, PlanInput(**(bad.__dict__ | change)), now=NOW)
        assert set(error.value.fields) == {field}
    with pytest.raises(Forbidden):
        save_plan(session, world["users"]["north_manager"], None, bad, now=NOW)


def test_commission_plan_and_coefficient_changes_are_audited(session, world):
    admin, plan = world["users"]["adam"], world["plans"]["cash"]
    save_plan(
        session,
        admin,
        plan.id,
        PlanInput(
            name="Cash plan",
            basis="cash",
            base_rate_pct="6",
            valid_from=date(2026, 1, 1),
            valid_to=None,
            cap="",
            tiers="0 0.8\n80 1.0\n100 1.5",
            team_ids=(world["teams"]["north"].id,),
        ),
        now=NOW,
    )
    changed, created = plan_history(session, admin, plan.id)
    assert (created.action, created.actor, created.detail["before"]) == (
        "plan_created",
        "adam",
        None,
    )
    assert changed.action == "plan_changed"
    assert (changed.detail["before"]["base_rate"], changed.detail["after"]["base_rate"]) == (
        "0.0500",
        "0.0600",
    )
    set_coefficient(
        session,
        world["users"]["north_manager"],
        world["users"]["north_rep1"].id,
        OCTOBER,
        "1.20",
        "record month",
        now=NOW,
    )
    [first, second] = session.scalars(
        select(CommissionAudit)
        .where(CommissionAudit.action == "coefficient_set")
        .order_by(CommissionAudit.id)
    ).all()
    assert first.detail == {
        "month": "2026-10",
        "before": None,
        "after": {"coefficient": "1.10", "reason": "excellent customer feedback"},
    }
    assert second.detail["before"] == {
        "coefficient": "1.10",
        "reason": "excellent customer feedback",
    }
    assert (second.actor, second.detail["after"]["coefficient"]) == ("north_manager", "1.20")


def test_commission_coefficient_only_for_own_reps_and_in_range(session, world):
    users = world["users"]
    with pytest.raises(Forbidden):
        set_coefficient(
            session, users["north_manager"], users["south_rep1"].id, OCTOBER, "1.1", "no", now=NOW
        )
    with pytest.raises(InvalidInput) as error:
        set_coefficient(
            session,
            users["north_manager"],
            users["north_rep2"].id,
            OCTOBER,
            "1.9",
            "too generous",
            now=NOW,
        )
    assert error.value.fields == {"coefficient": ["must be between 0.50 and 1.50"]}
    with pytest.raises(InvalidInput) as error:
        set_coefficient(
            session, users["north_manager"], users["north_rep2"].id, OCTOBER, "0.9", " ", now=NOW
        )
    assert set(error.value.fields) == {"reason"}


def test_commission_statement_scopes(session, calculated, world):
    run, _ = calculated
    users = world["users"]
    rep1 = _statement_of(run, world, "north_rep1")
    rep2 = _statement_of(run, world, "north_rep2")
    # Before the run is issued a rep sees nothing; the manager sees the team; finance all.
    assert list_runs(session, users["north_rep1"]) == []
    with pytest.raises(NotFound):
        get_statement(session, users["north_rep1"], rep1.id)
    assert {
        r.rep.username for r in run_summary(session, users["north_manager"], run.id).statements
    } == {"north_rep1", "north_rep2"}
    assert len(run_summary(session, users["fiona"], run.id).statements) == 3
    with pytest.raises(NotFound):
        get_statement(session, users["south_manager"], rep1.id)
    for statement in run.statements:
        statement.issued_at = NOW
    assert get_statement(session, users["north_rep1"], rep1.id).statement.total == D("627.00")
    with pytest.raises(NotFound):
        get_statement(session, users["north_rep1"], rep2.id)
    [summary] = list_runs(session, users["north_rep1"])
    assert [s.statement.id for s in summary.statements] == [rep1.id]
    assert summary.total == D("627.00")
