"""Service queries behind the CRM pages: customer search, saved filters, the board and its moves,
the customer 360, orders, activities, reports and the knowledge base."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crm.activities.services import (
    daily_reports,
    followups_due,
    log_activity,
    save_daily_report,
)
from crm.customers.profile import customer_profile
from crm.customers.queries import (
    POOL,
    CustomerQuery,
    export_customers,
    parse_customer_query,
    search_customers,
)
from crm.customers.services import add_contact, create_pool
from crm.directory.services import actor_for
from crm.errors import Conflict, Forbidden, InvalidInput, NotFound
from crm.knowledge import save_article, search_articles
from crm.leads.models import Lead
from crm.orders.queries import list_orders, order_detail
from crm.orders.services import create_order
from crm.sales.board import NOT_STARTED, build_board, find_stage_task, move_deal
from crm.saved_filters import get_saved_filter, list_saved_filters, save_filter
from engine.instances import start_instance
from tests.conftest import NOW, ROOT

TEST_BPMN = ROOT / "tests" / "webapp" / "crm_pages" / "bpmn"


def _names(page) -> set[str]:
    return {row.customer.name for row in page.rows}


@pytest.fixture
def book(session, sales_org, make_customer, make_opportunity):
    north, south = sales_org["north"], sales_org["south"]
    rep1, rep2 = north["reps"]
    made = {
        "acme": make_customer(
            rep1,
            "Acme Trading Ltd",
            tier="A",
            industry="Retail",
            territory_id=sales_org["territory"].id,
        ),
        "blue": make_customer(rep1, "Blue River Foods", tier="B", industry="retail"),
        "pine": make_customer(rep1, "Pine Logistics", tier="C", industry="logistics"),
        "acme2": make_customer(rep2, "ACME Trading Co.", tier="A", industry="retail"),
        "south": make_customer(south["reps"][0], "Southern Acme", tier="A"),
    }
    made["blue"].last_activity_at = datetime(2026, 10, 1, tzinfo=UTC)
    made["pine"].last_activity_at = datetime(2026, 6, 1, tzinfo=UTC)
    make_opportunity(rep1, customer=made["pine"])
    pool = create_pool(session, "East pool", "customer")
    made["pooled"] = make_customer(None, "Pooled Acme", by=rep1, pool_id=pool.id)
    session.flush()
    return made


NORTH = {"Acme Trading Ltd", "Blue River Foods", "Pine Logistics", "ACME Trading Co."}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, NORTH),
        ({"name": "acme trading"}, {"Acme Trading Ltd", "ACME Trading Co."}),
        ({"name": "ＡＣＭＥ"}, {"Acme Trading Ltd", "ACME Trading Co."}),  # full-width letters
        ({"name": "river"}, {"Blue River Foods"}),
        ({"name": "100%"}, set()),  # LIKE wildcards are literal
        ({"tier": ["A"]}, {"Acme Trading Ltd", "ACME Trading Co."}),
        ({"tier": ["b", "C"]}, {"Blue River Foods", "Pine Logistics"}),
        ({"industry": "RETAIL"}, {"Acme Trading Ltd", "Blue River Foods", "ACME Trading Co."}),
        ({"activity_after": "2026-09-01"}, {"Blue River Foods"}),
        ({"activity_before": "2026-09-01"}, NORTH - {"Blue River Foods"}),
        ({"activity_before": "2026-07-01", "activity_after": "2026-05-01"}, {"Pine Logistics"}),
        ({"open_deal": "yes"}, {"Pine Logistics"}),
        ({"open_deal": "no"}, NORTH - {"Pine Logistics"}),
        ({"owner": POOL}, {"Pooled Acme"}),
    ],
)
def test_search_filters_return_exactly_the_expected_customers(
    session, sales_org, book, params, expected
):
    manager = sales_org["north"]["manager"]
    query = parse_customer_query(params)
    assert _names(search_customers(session, manager, query)) == expected


def test_search_respects_each_scope(session, sales_org, book):
    rep1, rep2 = sales_org["north"]["reps"]
    everything = CustomerQuery()
    assert _names(search_customers(session, rep1, everything)) == {
        "Acme Trading Ltd",
        "Blue River Foods",
        "Pine Logistics",
    }
    assert _names(search_customers(session, rep2, everything)) == {"ACME Trading Co."}
    south = _names(search_customers(session, sales_org["south"]["manager"], everything))
    assert south == {"Southern Acme"}
    director = _names(search_customers(session, sales_org["director"], everything))
    assert director == NORTH | {"Southern Acme", "Pooled Acme"}
    # Asking for someone outside one's scope finds nothing rather than their customers.
    outsider = CustomerQuery(owner=str(sales_org["south"]["reps"][0].id))
    assert _names(search_customers(session, rep1, outsider)) == set()
    assert [r.customer.name for r in export_customers(session, rep2, everything)] == [
        "ACME Trading Co."
    ]


def test_search_sorts_and_pages(session, sales_org, book):
    manager = sales_org["north"]["manager"]
    query = parse_customer_query({"sort": "last_activity", "order": "desc"})
    page = search_customers(session, manager, query, per_page=2)
    assert [r.customer.name for r in page.rows] == ["Blue River Foods", "Pine Logistics"]
    assert (page.total, page.pages) == (4, 2)
    second = search_customers(session, manager, query, page=2, per_page=2)
    assert len(second.rows) == 2
    assert search_customers(session, manager, query, page=99, per_page=2).page == 2
    by_name = search_customers(session, manager, CustomerQuery())
    assert [r.customer.name for r in by_name.rows][0] == "Acme Trading Ltd"


def test_query_parameters_round_trip_and_name_bad_fields():
    query = parse_customer_query(
        {
            "name": " acme ",
            "tier": ["a", "B"],
            "owner": "7",
            "activity_before": "2026-01-31",
            "open_deal": "no",
            "sort": "tier",
            "order": "desc",
        }
    )
    assert query.name == "acme"
    assert query.tiers == ("A", "B")
    assert parse_customer_query(query.as_params()) == query
    assert CustomerQuery().as_params() == {}
    with pytest.raises(InvalidInput) as caught:
        parse_customer_query(
            {"tier": ["Z"], "activity_after": "31/01/2026", "sort": "x", "owner": "me"}
        )
    assert set(caught.value.fields) == {"tier", "activity_after", "sort", "owner"}


def test_saved_filters_belong_to_their_owner(session, sales_org):
    rep1, rep2 = sales_org["north"]["reps"]
    saved = save_filter(session, rep1, "customers", "A list", {"tier": ["A"]}, now=NOW)
    again = save_filter(session, rep1, "customers", "A list", {"tier": ["B"]}, now=NOW)
    assert again.id == saved.id
    assert again.params == {"tier": ["B"]}
    assert [f.name for f in list_saved_filters(session, rep1, "customers")] == ["A list"]
    assert list_saved_filters(session, rep2, "customers") == []
    with pytest.raises(NotFound):
        get_saved_filter(session, rep2, saved.id)
    with pytest.raises(InvalidInput):
        save_filter(session, rep1, "customers", "  ", {}, now=NOW)
    with pytest.raises(InvalidInput):
        save_filter(session, rep1, "nonsense", "x", {}, now=NOW)


def test_board_columns_and_totals(session, sales_org, make_customer, make_opportunity):
    rep = sales_org["north"]["reps"][0]
    customer = make_customer(rep)
    a = make_opportunity(rep, "100000", customer=customer)
    a.stage, a.stage_win_rate = "qualification", 10
    b = make_opportunity(rep, "20000.50", customer=customer)
    b.stage, b.stage_win_rate, b.win_rate_override = "qualification", 10, 35
    c = make_opportunity(rep, "333.33", customer=customer)
    c.stage, c.stage_win_rate = "from_a_newer_version", 40
    make_opportunity(rep, "5", customer=customer)  # no stage yet
    make_opportunity(sales_org["north"]["reps"][1], "77", customer=customer)  # not visible
    board = build_board(session, rep, "new_business")
    columns = {col.stage: col for col in board.columns}
    assert list(columns)[:2] == [NOT_STARTED, "qualification"]
    assert "from_a_newer_version" in columns  # an unknown stage still shows
    qualification = columns["qualification"]
    assert qualification.count == 2
    totals = qualification.totals["CNY"]
    assert totals.amount == Decimal("120000.50")
    assert totals.weighted == Decimal("10000.00") + Decimal("7000.18")
    assert columns["from_a_newer_version"].totals["CNY"].weighted == Decimal("133.33")
    assert columns[NOT_STARTED].count == 1
    assert columns["closing"].totals == {}


@pytest.fixture
def pipeline(session, deploy, sales_org, make_opportunity):
    deploy(TEST_BPMN / "pipeline.bpmn", forms=TEST_BPMN / "forms")
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep)

    def start(subject: tuple[str, int]) -> None:
        start_instance(
            session,
            actor_for(rep),
            "sales_pipeline_new_business",
            now=NOW,
            subject=subject,
            data={"opportunity_id": deal.id, "customer_id": deal.customer_id},
        )

    return deal, start


def test_move_deal_drives_the_stage_task(session, sales_org, pipeline):
    deal, start = pipeline
    rep = sales_org["north"]["reps"][0]
    with pytest.raises(Conflict):
        move_deal(session, rep, deal.id, "needs_analysis", now=NOW)  # no process yet
    start(("opportunity", deal.id))
    assert (deal.stage, deal.win_rate) == ("qualification", 10)
    outcome = move_deal(session, rep, deal.id, "needs_analysis", now=NOW)
    assert outcome.moved
    assert (deal.stage, deal.win_rate) == ("needs_analysis", 20)
    # No decision maker yet: the process keeps the deal in needs analysis.
    outcome = move_deal(session, rep, deal.id, "proposal", now=NOW)
    assert not outcome.moved
    assert outcome.missing == ["a decision maker among the customer's contacts"]
    add_contact(session, rep, deal.customer_id, "Dee", buying_role="decision_maker")
    assert move_deal(session, rep, deal.id, "proposal", now=NOW).to_stage == "proposal"
    assert move_deal(session, rep, deal.id, "needs_analysis", now=NOW).to_stage == "needs_analysis"
    with pytest.raises(InvalidInput):
        move_deal(session, rep, deal.id, "closing", now=NOW)
    with pytest.raises(InvalidInput) as unknown:
        move_deal(session, rep, deal.id, "moonshot", now=NOW)
    assert "'moonshot' is not next to 'needs_analysis'" in unknown.value.fields["to_stage"][0]
    assert deal.stage == "needs_analysis"
    with pytest.raises(NotFound):
        move_deal(session, sales_org["north"]["reps"][1], deal.id, "proposal", now=NOW)
    with pytest.raises(NotFound):
        move_deal(session, sales_org["south"]["manager"], deal.id, "proposal", now=NOW)


def test_stage_task_is_found_when_the_pipeline_runs_under_the_lead(session, sales_org, pipeline):
    deal, start = pipeline
    rep = sales_org["north"]["reps"][0]
    lead = Lead(name="Lead", owner_id=rep.id, status="converted", created_at=NOW)
    session.add(lead)
    session.flush()
    deal.lead_id = lead.id
    start(("lead", lead.id))  # as when lead_to_cash calls the pipeline
    task = find_stage_task(session, deal)
    assert task is not None
    assert task.properties["stage"] == "qualification"
    manager = sales_org["north"]["manager"]
    assert move_deal(session, manager, deal.id, "needs_analysis", now=NOW).moved


def test_customer_profile_gathers_the_records_and_running_processes(
    session, sales_org, pipeline, make_opportunity
):
    deal, start = pipeline
    rep = sales_org["north"]["reps"][0]
    start(("opportunity", deal.id))
    other = make_opportunity(rep, name="Elsewhere")  # another customer's deal
    start_instance(
        session,
        actor_for(rep),
        "sales_pipeline_new_business",
        now=NOW,
        subject=("opportunity", other.id),
        data={"opportunity_id": other.id, "customer_id": other.customer_id},
    )
    profile = customer_profile(session, rep, deal.customer_id, now=NOW)
    assert [d.name for d in profile.deals] == ["Deal"]
    [run] = profile.processes
    assert run.instance.subject_id == deal.id
    assert [t.title for t in run.open_tasks] == ["Qualification"]
    assert [row.change.reason for row in profile.owner_history] == ["create"]
    with pytest.raises(NotFound):
        customer_profile(session, sales_org["south"]["manager"], deal.customer_id, now=NOW)


def test_orders_show_overdue_installments_and_finance_sees_all(
    session, sales_org, make_opportunity
):
    rep = sales_org["north"]["reps"][0]
    deal = make_opportunity(rep, "300")
    order = create_order(
        session,
        deal.id,
        date(2026, 10, 1),
        [
            {"due_date": "2026-10-15", "amount": "100"},
            {"due_date": "2026-12-15", "amount": "200"},
        ],
        now=NOW,
        by=None,
        start_collection=False,
    )
    summary = order_detail(session, rep, order.id, today=date(2026, 11, 2))
    assert [line.state for line in summary.installments] == ["overdue", "due"]
    assert (summary.outstanding, summary.overdue) == (Decimal("300"), Decimal("100"))
    finance = sales_org["finance"]
    assert [s.order.id for s in list_orders(session, finance, today=date(2026, 11, 2))] == [
        order.id
    ]
    assert list_orders(session, finance, today=date(2026, 10, 1), overdue_only=True) == []
    assert list_orders(session, sales_org["north"]["reps"][1], today=date(2026, 11, 2)) == []
    with pytest.raises(InvalidInput):
        list_orders(session, finance, today=date(2026, 11, 2), status="lost")


def test_activities_update_the_customer_and_list_follow_ups(session, sales_org, make_customer):
    rep = sales_org["north"]["reps"][0]
    customer = make_customer(rep)
    later = NOW + timedelta(hours=2)
    log_activity(
        session, rep, customer.id, "call", "Intro", now=later, next_followup_on=date(2026, 11, 5)
    )
    assert customer.last_activity_at == later
    with pytest.raises(InvalidInput) as caught:
        log_activity(session, rep, customer.id, "fax", "", now=NOW)
    assert set(caught.value.fields) == {"kind", "subject"}
    with pytest.raises(NotFound):
        log_activity(session, sales_org["north"]["reps"][1], customer.id, "note", "x", now=NOW)
    due = followups_due(session, rep, until=date(2026, 11, 9))
    assert [r.activity.subject for r in due] == ["Intro"]
    assert followups_due(session, rep, until=date(2026, 11, 4)) == []


def test_daily_report_is_one_per_person_per_day(session, sales_org):
    rep = sales_org["north"]["reps"][0]
    first = save_daily_report(session, rep, "Calls", None, now=NOW)
    second = save_daily_report(session, rep, "More calls", "Visit", now=NOW + timedelta(hours=3))
    assert first.id == second.id
    assert (second.summary, second.plan) == ("More calls", "Visit")
    tomorrow = save_daily_report(session, rep, "Quotes", None, now=NOW + timedelta(days=1))
    assert tomorrow.id != first.id
    assert first.summary == "More calls"
    manager_view = daily_reports(session, sales_org["north"]["manager"])
    assert [r.summary for r, _ in manager_view] == ["Quotes", "More calls"]
    assert daily_reports(session, sales_org["south"]["manager"]) == []


def test_knowledge_articles_are_written_by_managers_and_found_by_words(session, sales_org):
    rep, manager = sales_org["north"]["reps"][0], sales_org["north"]["manager"]
    with pytest.raises(Forbidden):
        save_article(session, rep, "Mine", "text", None, now=NOW)
    article = save_article(
        session,
        manager,
        "Price objection",
        "Ask what they compare with.",
        "sales, pricing ",
        now=NOW,
    )
    assert article.tags == "sales,pricing"
    assert [a.id for a in search_articles(session, "compare PRICE")] == [article.id]
    assert search_articles(session, "compare discount") == []
    revised = save_article(
        session, manager, "Price objection", "New text", None, now=NOW, article_id=article.id
    )
    assert revised.id == article.id
    assert revised.body == "New text"
