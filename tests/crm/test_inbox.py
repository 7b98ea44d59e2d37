"""The inbox through CRM eyes: tabs, counts, filters, paging, urging and bulk actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.directory.models import Notification
from crm.directory.services import actor_for
from crm.errors import Forbidden, NotFound
from crm.inbox.actions import UrgeRefused, bulk_claim, bulk_complete, bulk_reassign, urge_task
from crm.inbox.queries import PAGE_SIZE, InboxQuery, inbox_page, parse_inbox_query
from crm.inbox.taskpage import save_task_draft, task_context
from crm.leads.models import Lead
from crm.work import claim_task_as, complete_task_as
from engine.instances import start_instance
from engine.models import HumanTask
from tests.conftest import NOW


@pytest.fixture
def lead_task(session, deploy, sales_org):
    """Start lead_followup for a lead owned by `rep`; the Rep lane gives the call to them."""
    deploy("lead_followup.bpmn")

    def start(rep, name="Acme", company=None, due_at=None, stage=None):
        lead = Lead(name=name, company=company, owner_id=rep.id, status="working", created_at=NOW)
        session.add(lead)
        session.flush()
        outcome = start_instance(
            session,
            actor_for(rep),
            "lead_followup",
            now=NOW,
            data={"lead_name": name, "budget": None},
            subject=("lead", lead.id),
        )
        [task] = outcome.new_tasks
        task.due_at = due_at
        if stage:
            task.properties = {**task.properties, "stage": stage}
        session.flush()
        return task

    return start


@pytest.fixture
def open_task(session, deploy, sales_org):
    """Start lead_followup with no subject: the call is open to every rep."""
    deploy("lead_followup.bpmn")

    def start(title_suffix=""):
        outcome = start_instance(
            session,
            actor_for(sales_org["director"]),
            "lead_followup",
            now=NOW,
            data={"lead_name": f"Walk-in {title_suffix}", "budget": None},
        )
        [task] = outcome.new_tasks
        return task

    return start


def _titles(page):
    return [row.task.id for row in page.rows]


def test_inbox_tabs_count_mine_open_and_customers(session, sales_org, lead_task, open_task):
    north = sales_org["north"]
    rita, ravi = north["reps"]
    mine = [lead_task(rita, "Acme"), lead_task(rita, "Globex")]
    offered = open_task("one")
    page = inbox_page(session, rita, InboxQuery(), now=NOW)
    assert page.counts == {"mine": 2, "open": 1, "customers": 0, "completed": 0}
    assert sorted(_titles(page)) == sorted(t.id for t in mine)
    open_page = inbox_page(session, ravi, InboxQuery(tab="open"), now=NOW)
    assert _titles(open_page) == [offered.id]
    # The manager sees the team's tasks on their records, held by the reps.
    manager_page = inbox_page(session, north["manager"], InboxQuery(tab="customers"), now=NOW)
    assert sorted(_titles(manager_page)) == sorted(t.id for t in mine)
    other_manager = inbox_page(
        session, sales_org["south"]["manager"], InboxQuery(tab="customers"), now=NOW
    )
    assert other_manager.total == 0


def test_inbox_claim_moves_a_task_from_open_to_mine_and_completed_tab_lists_it(
    session, sales_org, open_task
):
    rita = sales_org["north"]["reps"][0]
    task = open_task()
    claim_task_as(session, rita, task.id, now=NOW)
    page = inbox_page(session, rita, InboxQuery(), now=NOW)
    assert page.counts["open"] == 0
    assert _titles(page) == [task.id]
    complete_task_as(session, rita, task.id, {"outcome": "not_interested"}, now=NOW)
    done = inbox_page(session, rita, InboxQuery(tab="completed"), now=NOW)
    assert _titles(done) == [task.id]
    assert done.counts["mine"] == 0


def test_inbox_due_filters_overdue_today_and_this_week(session, sales_org, lead_task):
    rita = sales_org["north"]["reps"][0]
    # NOW is Monday 2 November 2026, 09:00 UTC.
    overdue = lead_task(rita, "Late", due_at=NOW - timedelta(hours=1))
    today = lead_task(rita, "Today", due_at=NOW + timedelta(hours=5))
    thursday = lead_task(rita, "Thursday", due_at=NOW + timedelta(days=3))
    next_week = lead_task(rita, "Next week", due_at=NOW + timedelta(days=8))
    lead_task(rita, "Whenever")

    def due(window):
        return _titles(inbox_page(session, rita, InboxQuery(due=window), now=NOW))

    assert due("overdue") == [overdue.id]
    assert due("today") == [overdue.id, today.id]  # due earlier today is still due today
    assert due("week") == [overdue.id, today.id, thursday.id]
    page = inbox_page(session, rita, InboxQuery(), now=NOW)
    flags = {row.task.id: (row.overdue, row.due_today) for row in page.rows}
    assert flags[overdue.id] == (True, False)
    assert flags[today.id] == (False, True)
    assert flags[next_week.id] == (False, False)
    assert _titles(page)[:4] == [overdue.id, today.id, thursday.id, next_week.id]


def test_inbox_filters_by_process_stage_and_customer(session, sales_org, lead_task):
    rita = sales_org["north"]["reps"][0]
    acme = lead_task(rita, "Ann Lee", company="Acme 100% Ltd", stage="qualify")
    globex = lead_task(rita, "Bo Chen", company="Globex", stage="propose")
    page = inbox_page(session, rita, InboxQuery(stage="qualify"), now=NOW)
    assert _titles(page) == [acme.id]
    assert page.stages == ["propose", "qualify"]
    assert page.processes == {"lead_followup": "Lead follow-up"}
    assert _titles(inbox_page(session, rita, InboxQuery(customer="globex"), now=NOW)) == [globex.id]
    # A LIKE wildcard typed by the user is matched literally.
    assert _titles(inbox_page(session, rita, InboxQuery(customer="100%"), now=NOW)) == [acme.id]
    assert inbox_page(session, rita, InboxQuery(customer="_"), now=NOW).total == 0
    assert inbox_page(session, rita, InboxQuery(process_id="other"), now=NOW).total == 0
    rows = {row.task.id: row.customer for row in page.rows}
    assert rows[acme.id] == "Acme 100% Ltd"


def test_inbox_customer_of_an_opportunity_task_is_named_and_filtered(
    session, deploy, sales_org, make_opportunity
):
    deploy("lead_followup.bpmn")
    rita = sales_org["north"]["reps"][0]
    deal = make_opportunity(rita, customer=None)
    outcome = start_instance(
        session,
        actor_for(rita),
        "lead_followup",
        now=NOW,
        data={"lead_name": "x", "budget": 1},
        subject=("opportunity", deal.id),
    )
    [task] = outcome.new_tasks
    page = inbox_page(session, rita, InboxQuery(), now=NOW)
    customer_name = page.rows[0].customer
    assert customer_name
    assert customer_name.startswith("Customer")
    assert _titles(inbox_page(session, rita, InboxQuery(customer=customer_name), now=NOW)) == [
        task.id
    ]
    context = task_context(session, rita, task)
    assert context is not None
    assert context.name == customer_name
    assert [d.name for d in context.deals] == ["Deal"]
    assert task_context(session, sales_org["south"]["reps"][0], task) is None


def test_inbox_pages_hold_fifty_tasks_sorted_by_title(session, sales_org, lead_task):
    rita = sales_org["north"]["reps"][0]
    for n in range(PAGE_SIZE + 1):
        lead_task(rita, f"Lead {n:02d}")
    tasks = session.scalars(select(HumanTask).where(HumanTask.assignee == rita.username)).all()
    for n, task in enumerate(tasks):
        task.title = f"Call {n:02d}"
    session.flush()
    first = inbox_page(session, rita, InboxQuery(sort="title"), now=NOW)
    assert (first.total, first.pages, len(first.rows)) == (51, 2, 50)
    assert [r.task.title for r in first.rows][:2] == ["Call 00", "Call 01"]
    second = inbox_page(session, rita, InboxQuery(sort="title", page=2), now=NOW)
    assert [r.task.title for r in second.rows] == ["Call 50"]
    beyond = inbox_page(session, rita, InboxQuery(sort="title", page=9), now=NOW)
    assert beyond.query.page == 2


def test_inbox_query_from_url_ignores_unknown_values():
    query = parse_inbox_query({"tab": "evil", "sort": "id; drop", "page": "-3", "due": "soon"})
    assert query == InboxQuery()
    assert parse_inbox_query({"tab": "open", "page": "2"}).as_params() == {"tab": "open", "page": 2}


def test_inbox_urge_notifies_the_holder_once_an_hour_per_user(session, sales_org, lead_task):
    north = sales_org["north"]
    rita = north["reps"][0]
    task = lead_task(rita)
    urge_task(session, north["manager"], task.id, now=NOW, link="/tasks/1")
    [note] = session.scalars(select(Notification).where(Notification.user_id == rita.id)).all()
    assert note.kind == "task_urge"
    assert "Call the lead" in note.message
    with pytest.raises(UrgeRefused) as refused:
        urge_task(session, north["manager"], task.id, now=NOW + timedelta(minutes=59))
    assert refused.value.reason == "recently"
    assert refused.value.retry_at == NOW + timedelta(hours=1)
    # Another user may urge the same task; the first may again after an hour.
    urge_task(session, sales_org["director"], task.id, now=NOW + timedelta(minutes=5))
    urge_task(session, north["manager"], task.id, now=NOW + timedelta(hours=1))
    count = len(session.scalars(select(Notification).where(Notification.user_id == rita.id)).all())
    assert count == 3


def test_inbox_urge_refuses_own_and_unheld_tasks_and_strangers(
    session, sales_org, lead_task, open_task
):
    rita = sales_org["north"]["reps"][0]
    with pytest.raises(UrgeRefused) as own:
        urge_task(session, rita, lead_task(rita).id, now=NOW)
    assert own.value.reason == "yourself"
    with pytest.raises(UrgeRefused) as nobody:
        urge_task(session, rita, open_task().id, now=NOW)
    assert nobody.value.reason == "nobody"
    with pytest.raises(NotFound):
        urge_task(session, sales_org["south"]["reps"][0], lead_task(rita).id, now=NOW)


def test_inbox_bulk_reassign_reports_each_task_and_stays_in_the_team(session, sales_org, lead_task):
    north, south = sales_org["north"], sales_org["south"]
    rita, ravi = north["reps"]
    ours = [lead_task(rita, "A"), lead_task(rita, "B")]
    theirs = lead_task(south["reps"][0], "C")
    results = bulk_reassign(
        session, north["manager"], [t.id for t in [*ours, theirs]], ravi.id, now=NOW
    )
    assert [(r.task_id, r.ok, r.error) for r in results] == [
        (ours[0].id, True, None),
        (ours[1].id, True, None),
        (theirs.id, False, "not_found"),
    ]
    assert results[2].title == f"#{theirs.id}"  # nothing about a task one may not see
    assert [t.assignee for t in ours] == [ravi.username, ravi.username]
    assert theirs.assignee == south["reps"][0].username
    with pytest.raises(Forbidden):
        bulk_reassign(session, north["manager"], [ours[0].id], south["reps"][0].id, now=NOW)
    with pytest.raises(Forbidden):
        bulk_reassign(session, rita, [ours[0].id], rita.id, now=NOW)
    assert ours[0].assignee == ravi.username


def test_inbox_bulk_complete_checks_each_task_and_undoes_only_refused_ones(
    session, sales_org, lead_task
):
    north = sales_org["north"]
    rita, ravi = north["reps"]
    first, second, done = lead_task(rita, "A"), lead_task(ravi, "B"), lead_task(rita, "C")
    complete_task_as(session, rita, done.id, {"outcome": "not_interested"}, now=NOW)
    bad = bulk_complete(
        session, north["manager"], [first.id, second.id], {"outcome": "maybe"}, now=NOW
    )
    assert [(r.ok, r.error) for r in bad] == [(False, "invalid"), (False, "invalid")]
    assert "outcome" in bad[0].fields
    assert (first.status, second.status) == ("open", "open")
    results = bulk_complete(
        session,
        north["manager"],
        [first.id, done.id, second.id],
        {"outcome": "not_interested"},
        now=NOW,
    )
    assert [(r.ok, r.error) for r in results] == [(True, None), (False, "conflict"), (True, None)]
    assert (first.status, second.status) == ("completed", "completed")
    assert first.completed_by == "north_manager"
    with pytest.raises(Forbidden):
        bulk_complete(session, rita, [first.id], {"outcome": "x"}, now=NOW)


def test_inbox_bulk_claim_takes_what_is_free(session, sales_org, open_task):
    rita, ravi = sales_org["north"]["reps"]
    free, taken = open_task("1"), open_task("2")
    claim_task_as(session, ravi, taken.id, now=NOW)
    results = bulk_claim(session, rita, [free.id, taken.id, free.id], now=NOW)
    assert [(r.task_id, r.ok, r.error) for r in results] == [
        (free.id, True, None),
        (taken.id, False, "not_found"),  # once ravi holds it, rita no longer sees it
    ]
    assert (free.assignee, taken.assignee) == (rita.username, ravi.username)


def test_inbox_draft_is_kept_for_the_holder_only(session, sales_org, lead_task):
    rita, ravi = sales_org["north"]["reps"]
    task = lead_task(rita)
    save_task_draft(session, rita, task.id, {"notes": "call back at 3"}, now=NOW)
    assert task.draft == {"notes": "call back at 3"}
    with pytest.raises(NotFound):
        save_task_draft(session, ravi, task.id, {"notes": "mine now"}, now=NOW)
    assert task.draft == {"notes": "call back at 3"}
