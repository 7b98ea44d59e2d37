"""Inbox counts and order as the indexed queries compute them (see docs/inbox-performance.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm.directory.services import actor_for
from crm.inbox.queries import InboxQuery, inbox_page
from crm.leads.models import Lead
from engine.instances import start_instance
from engine.tasks import count_tasks_for, tasks_for
from tests.conftest import NOW


@pytest.fixture
def call_task(session, deploy, sales_org):
    """Start lead_followup; with a lead owned by `rep` the call is theirs, else open to reps."""
    deploy("lead_followup.bpmn")

    def start(rep=None, due_at=None):
        subject = None
        if rep is not None:
            lead = Lead(name="Acme", owner_id=rep.id, status="working", created_at=NOW)
            session.add(lead)
            session.flush()
            subject = ("lead", lead.id)
        outcome = start_instance(
            session,
            actor_for(rep or sales_org["director"]),
            "lead_followup",
            now=NOW,
            data={"lead_name": "Acme", "budget": None},
            subject=subject,
        )
        [task] = outcome.new_tasks
        task.due_at = due_at
        session.flush()
        return task

    return start


def test_inbox_counts_a_task_offered_several_ways_once(session, sales_org, call_task):
    rita, ravi = sales_org["north"]["reps"]
    task = call_task()
    # Put back by rita, it is offered to her by name, to her role and to her team at once.
    task.candidate_user = rita.username
    task.candidate_team = f"team:{rita.team_id}"
    session.flush()
    page = inbox_page(session, rita, InboxQuery(tab="open"), now=NOW)
    assert page.counts["open"] == 1
    assert page.total == 1
    assert [row.task.id for row in page.rows] == [task.id]
    assert count_tasks_for(session, actor_for(rita)) == 1
    assert inbox_page(session, ravi, InboxQuery(tab="open"), now=NOW).counts["open"] == 1
    assert count_tasks_for(session, actor_for(sales_org["finance"])) == 0


def test_inbox_lists_tasks_without_due_date_last(session, sales_org, call_task):
    rita = sales_org["north"]["reps"][0]
    undated = call_task(rita)
    later = call_task(rita, due_at=NOW + timedelta(days=3))
    sooner = call_task(rita, due_at=NOW + timedelta(days=1))
    page = inbox_page(session, rita, InboxQuery(), now=NOW)
    assert [row.task.id for row in page.rows] == [sooner.id, later.id, undated.id]
    assert [t.id for t in tasks_for(session, actor_for(rita))] == [sooner.id, later.id, undated.id]
    assert count_tasks_for(session, actor_for(rita)) == 3


def test_inbox_customers_tab_leaves_out_what_the_viewer_holds(session, sales_org, call_task):
    north = sales_org["north"]
    rita = north["reps"][0]
    manager = north["manager"]
    held_by_rita = call_task(rita)
    taken_over = call_task(rita)
    taken_over.assignee = manager.username
    session.flush()
    page = inbox_page(session, manager, InboxQuery(tab="customers"), now=NOW)
    assert page.counts["customers"] == 1
    assert [row.task.id for row in page.rows] == [held_by_rita.id]
    assert page.counts["mine"] == 1
    south_manager = sales_org["south"]["manager"]
    assert inbox_page(session, south_manager, InboxQuery(), now=NOW).counts["customers"] == 0


def test_inbox_open_tab_pages_by_due_date_across_role_and_team_queues(
    session, sales_org, call_task, monkeypatch
):
    monkeypatch.setattr("crm.inbox.queries.PAGE_SIZE", 2)
    rita = sales_org["north"]["reps"][0]
    dues = [5, None, 1, 3, 2]
    tasks = [call_task(due_at=None if d is None else NOW + timedelta(days=d)) for d in dues]
    for task in tasks[::2]:  # every other one waits in the team's queue instead of the role's
        task.candidate_role, task.candidate_team = None, f"team:{rita.team_id}"
    session.flush()
    expected = [t.id for t in sorted(tasks, key=lambda t: (t.due_at is None, t.due_at or NOW))]
    listed = []
    for number in (1, 2, 3):
        page = inbox_page(session, rita, InboxQuery(tab="open", page=number), now=NOW)
        assert page.pages == 3
        listed += [row.task.id for row in page.rows]
    assert listed == expected
    soon = inbox_page(session, rita, InboxQuery(tab="open", due="week"), now=NOW)
    assert [row.task.id for row in soon.rows] == expected[:2]
    assert soon.total == 4
