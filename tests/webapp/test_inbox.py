"""The inbox pages: tabs, counts, filters, paging, claiming, urging and bulk actions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm.directory.models import Notification, Team, User
from crm.directory.services import actor_for
from crm.leads.models import Lead
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.models import HumanTask
from tests.conftest import FORMS, NOW, PROCESSES
from tests.webapp.conftest import csrf_token

HTMX = {"HX-Request": "true"}


@pytest.fixture
def org(app, web_user):
    """North (manager mona; reps rita, ravi), South (rep sam); lead_followup deployed."""
    from webapp import db

    with app.app_context():
        north, south = Team(name="North"), Team(name="South")
        db.session.add_all([north, south])
        db.session.commit()
        team_ids = {"north": north.id, "south": south.id}
    web_user("mona", "manager", team_id=team_ids["north"])
    web_user("rita", "rep", team_id=team_ids["north"])
    web_user("ravi", "rep", team_id=team_ids["north"])
    web_user("sam", "rep", team_id=team_ids["south"])
    with app.app_context():
        users = {u.username: u.id for u in db.session.scalars(select(User))}
        db.session.get(Team, team_ids["north"]).manager_id = users["mona"]
        deploy_files(
            db.session,
            "admin",
            collect_files([PROCESSES / "lead_followup.bpmn"]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        db.session.commit()
    yield users
    with app.app_context():  # team and user point at each other: untie them for the cleanup
        for team in db.session.scalars(select(Team)):
            team.manager_id = None
        db.session.commit()


@pytest.fixture
def start_task(app, org):
    """Start a lead follow-up: for a lead owned by `owner`, or open to every rep (owner None)."""
    from webapp import db

    def start(owner=None, lead_name="Acme", *, due_at=None, title=None):
        with app.app_context():
            subject = None
            starter = db.session.scalar(select(User).where(User.username == "mona"))
            if owner:
                user = db.session.scalar(select(User).where(User.username == owner))
                lead = Lead(name=lead_name, owner_id=user.id, status="working", created_at=NOW)
                db.session.add(lead)
                db.session.flush()
                subject = ("lead", lead.id)
            outcome = start_instance(
                db.session,
                actor_for(starter),
                "lead_followup",
                now=NOW,
                data={"lead_name": lead_name, "budget": None},
                subject=subject,
            )
            [task] = outcome.new_tasks
            task.due_at = due_at
            if title:
                task.title = title
            db.session.commit()
            return task.id

    return start


@pytest.fixture
def task_row(app):
    from webapp import db

    def read(task_id):
        with app.app_context():
            task = db.session.get(HumanTask, task_id)
            db.session.expunge(task)
            return task

    return read


def _count(page: str, tab: str) -> int:
    match = re.search(rf'data-tab="{tab}">[^<]*<span class="count">(\d+)</span>', page)
    assert match, f"no count for tab {tab}"
    return int(match.group(1))


def _rows(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr class="task-row[^"]*" id="task-(\d+)"', page)]


def test_inbox_tabs_list_my_tasks_and_open_ones_with_counts(client, sign_in, start_task):
    mine = [start_task("rita", "Acme"), start_task("rita", "Globex")]
    offered = start_task(None, "Walk-in")
    start_task("sam", "Initech")
    sign_in("rita")
    page = client.get("/inbox").get_data(as_text=True)
    assert sorted(_rows(page)) == sorted(mine)
    assert (_count(page, "mine"), _count(page, "open"), _count(page, "completed")) == (2, 1, 0)
    assert "Acme" in page
    assert "Initech" not in page
    open_page = client.get("/inbox?tab=open").get_data(as_text=True)
    assert _rows(open_page) == [offered]
    assert "Claim" in open_page
    # The start page is the inbox too.
    assert _rows(client.get("/").get_data(as_text=True)) == _rows(page)


def test_inbox_htmx_request_gets_the_panel_alone(client, sign_in, start_task):
    task = start_task("rita")
    sign_in("rita")
    response = client.get("/inbox?tab=mine", headers=HTMX)
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<div id="inbox"')
    assert "<html" not in page
    assert _rows(page) == [task]
    assert 'id="task-count" hx-swap-oob="true">1<' in page
    assert "HX-Request" in response.headers["Vary"]


def test_inbox_claim_and_put_back(client, sign_in, start_task, task_row):
    task = start_task(None)
    sign_in("rita")
    token = csrf_token(client, "/inbox?tab=open")
    response = client.post(
        f"/tasks/{task}/claim", data={"csrf_token": token, "_return_to": "tab=open"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/inbox?tab=open"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "You claimed “Call the lead”" in page
    assert (_count(page, "mine"), _count(page, "open")) == (1, 0)
    assert task_row(task).assignee == "rita"
    panel = client.post(
        f"/tasks/{task}/release", data={"csrf_token": token, "_return_to": "tab=mine"}, headers=HTMX
    ).get_data(as_text=True)
    assert "is back in the open queue" in panel
    assert (_count(panel, "mine"), _count(panel, "open")) == (0, 1)
    assert task_row(task).assignee is None


def test_inbox_claim_of_a_task_someone_took_says_so(client, sign_in, start_task, task_row):
    task = start_task(None)
    sign_in("ravi")
    token = csrf_token(client, "/inbox?tab=open")
    client.post(f"/tasks/{task}/claim", data={"csrf_token": token})
    client.post("/logout", data={"csrf_token": token})
    sign_in("rita")
    token = csrf_token(client, "/inbox?tab=open")
    response = client.post(f"/tasks/{task}/claim", data={"csrf_token": token}, headers=HTMX)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Someone else claimed this task first, or it is no longer open." in page
    assert _rows(page) == []
    assert task_row(task).assignee == "ravi"


def test_inbox_due_filter_and_overdue_highlight(client, sign_in, start_task):
    now = datetime.now(UTC)
    late = start_task("rita", "Late Ltd", due_at=now - timedelta(days=2))
    later = start_task("rita", "Later Ltd", due_at=now + timedelta(days=30))
    sign_in("rita")
    page = client.get("/inbox").get_data(as_text=True)
    assert _rows(page) == [late, later]
    assert f'<tr class="task-row overdue" id="task-{late}"' in page
    assert f'<tr class="task-row" id="task-{later}"' in page
    overdue = client.get("/inbox?due=overdue").get_data(as_text=True)
    assert _rows(overdue) == [late]
    assert '<option value="overdue" selected>' in overdue
    assert _rows(client.get("/inbox?customer=later").get_data(as_text=True)) == [later]
    empty = client.get("/inbox?customer=nobody").get_data(as_text=True)
    assert "No task matches these filters." in empty


def test_inbox_pages_of_fifty(client, sign_in, start_task):
    for n in range(51):
        start_task("rita", f"Lead {n}")
    sign_in("rita")
    first = client.get("/inbox?sort=title").get_data(as_text=True)
    assert len(_rows(first)) == 50
    assert "Page 1 of 2 · 51 tasks" in first
    assert 'href="/inbox?tab=mine&amp;sort=title&amp;page=2"' in first
    second = client.get("/inbox?sort=title&page=2").get_data(as_text=True)
    assert len(_rows(second)) == 1
    assert 'rel="prev"' in second


def test_inbox_manager_bulk_reassign_reports_each_task(client, sign_in, start_task, task_row, org):
    ours = [start_task("rita", "A"), start_task("rita", "B")]
    theirs = start_task("sam", "C")
    sign_in("mona")
    page = client.get("/inbox?tab=customers").get_data(as_text=True)
    assert sorted(_rows(page)) == sorted(ours)
    token = csrf_token(client, "/inbox?tab=customers")
    response = client.post(
        "/inbox/bulk",
        data={
            "csrf_token": token,
            "action": "reassign",
            "assignee": str(org["ravi"]),
            "task": [str(t) for t in [*ours, theirs]],
        },
    )
    report = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "2 of 3 done" in report
    assert report.count("✓ Done") == 2
    assert "Not found, or not visible to you." in report
    assert [task_row(t).assignee for t in ours] == ["ravi", "ravi"]
    assert task_row(theirs).assignee == "sam"


def test_inbox_rep_cannot_bulk_reassign(client, sign_in, start_task, task_row, org):
    task = start_task("rita")
    sign_in("rita")
    token = csrf_token(client, "/inbox")
    assert "Reassign" not in client.get("/inbox").get_data(as_text=True)
    response = client.post(
        "/inbox/bulk",
        data={
            "csrf_token": token,
            "action": "reassign",
            "assignee": str(org["ravi"]),
            "task": str(task),
        },
    )
    assert response.status_code == 403
    assert task_row(task).assignee == "rita"


def test_inbox_bulk_complete_with_one_answer(client, sign_in, start_task, task_row):
    tasks = [start_task("rita", "A"), start_task("ravi", "B")]
    sign_in("mona")
    token = csrf_token(client, "/inbox?tab=customers")
    form = client.post(
        "/inbox/bulk",
        data={"csrf_token": token, "action": "complete", "task": [str(t) for t in tasks]},
    ).get_data(as_text=True)
    assert "Complete 2 tasks with one answer" in form
    assert 'type="radio" name="outcome" value="not_interested"' in form
    refused = client.post(
        "/inbox/bulk/complete",
        data={"csrf_token": token, "_task": [str(t) for t in tasks], "budget": "12,5x"},
    )
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "“12,5x” is not a number." in page
    assert 'value="12,5x"' in page
    assert "This field is required." in page
    assert [task_row(t).status for t in tasks] == ["open", "open"]
    done = client.post(
        "/inbox/bulk/complete",
        data={
            "csrf_token": token,
            "_task": [str(t) for t in tasks],
            "outcome": "not_interested",
            "budget": "1,200",
        },
    ).get_data(as_text=True)
    assert "2 of 2 done" in done
    assert [task_row(t).status for t in tasks] == ["completed", "completed"]


def test_inbox_urge_notifies_the_holder_once_an_hour(app, client, sign_in, start_task, org):
    from webapp import db

    task = start_task("rita")
    sign_in("mona")
    token = csrf_token(client, "/inbox?tab=customers")
    page = client.get("/inbox?tab=customers").get_data(as_text=True)
    assert f"/tasks/{task}/urge" in page
    first = client.post(
        f"/tasks/{task}/urge",
        data={"csrf_token": token, "_return_to": "tab=customers"},
        headers=HTMX,
    ).get_data(as_text=True)
    assert "Rita has been reminded of “Call the lead”." in first
    second = client.post(f"/tasks/{task}/urge", data={"csrf_token": token}, headers=HTMX).get_data(
        as_text=True
    )
    assert "You already urged this task within the last hour." in second
    with app.app_context():
        notes = db.session.scalars(
            select(Notification).where(Notification.user_id == org["rita"])
        ).all()
        assert [(n.kind, n.link) for n in notes] == [("task_urge", f"/tasks/{task}")]
        assert "Mona urges you" in notes[0].message


def test_inbox_another_reps_task_is_not_found(client, sign_in, start_task, task_row):
    task = start_task("rita")
    sign_in("ravi")
    assert client.get(f"/tasks/{task}").status_code == 404
    token = csrf_token(client, "/inbox")
    response = client.post(
        f"/tasks/{task}", data={"csrf_token": token, "outcome": "not_interested"}
    )
    assert response.status_code == 404
    assert client.post(f"/tasks/{task}/urge", data={"csrf_token": token}).status_code == 404
    assert task_row(task).status == "open"


def test_inbox_posts_without_csrf_token_are_refused(client, sign_in, start_task, task_row):
    task = start_task(None)
    sign_in("rita")
    response = client.post(f"/tasks/{task}/claim", data={})
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)
    assert client.post(f"/tasks/{task}", data={"outcome": "not_interested"}).status_code == 400
    assert task_row(task).assignee is None
    assert task_row(task).status == "open"


def test_inbox_escapes_script_in_titles_and_customer_names(client, sign_in, start_task):
    start_task("rita", "<script>alert('lead')</script>", title="<script>alert('t')</script>")
    sign_in("rita")
    page = client.get("/inbox").get_data(as_text=True)
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#39;lead&#39;)&lt;/script&gt;" in page


def test_inbox_serves_htmx_and_nothing_else_from_node_modules(client):
    from webapp.inbox.vendor import NODE_MODULES

    assert client.get("/static/vendor/package.json").status_code == 404
    assert client.get("/static/vendor/..%2Fpackage.json").status_code == 404
    if not (NODE_MODULES / "htmx.org/dist/htmx.min.js").is_file():
        pytest.skip("node_modules is not installed (npm ci)")
    response = client.get("/static/vendor/htmx.min.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert b"htmx" in response.data[:2000]


def _row_html(page: str, task_id: int) -> str:
    match = re.search(rf'<tr class="task-row[^"]*" id="task-{task_id}">.*?</tr>', page, re.S)
    assert match, f"no row for task {task_id}"
    return match.group(0)


def test_inbox_row_shows_due_date_link_and_holder_in_english_and_chinese(
    client, sign_in, start_task
):
    due = datetime(2031, 11, 25, 15, 5, tzinfo=UTC)
    task = start_task("rita", "Umbrella", due_at=due, title="Call the lead")
    sign_in("rita")
    english = _row_html(client.get("/inbox?lang=en").get_data(as_text=True), task)
    assert f'<a href="/tasks/{task}">Call the lead</a>' in english
    # The short date and time of the locale, as Babel writes them.
    assert '<time datetime="2031-11-25T15:05:00+00:00">11/25/31, 3:05\u202fPM</time>' in english
    assert "Rita" in english
    assert 'aria-label="Select “Call the lead”"' in english
    chinese = _row_html(client.get("/inbox?lang=zh_CN").get_data(as_text=True), task)
    assert '<time datetime="2031-11-25T15:05:00+00:00">2031/11/25 15:05</time>' in chinese
    assert f'<a href="/tasks/{task}">' in chinese


def test_inbox_customer_link_keeps_the_other_filters(client, sign_in, start_task):
    late = start_task("rita", "Walk-in Ltd", due_at=datetime.now(UTC) - timedelta(days=1))
    start_task("rita", "Other Ltd", due_at=datetime.now(UTC) - timedelta(days=1))
    sign_in("rita")
    page = client.get("/inbox?due=overdue&sort=title&page=1").get_data(as_text=True)
    href = "/inbox?tab=mine&amp;customer=Walk-in+Ltd&amp;due=overdue&amp;sort=title"
    assert f'<a href="{href}" hx-get="{href}" hx-push-url="true"' in _row_html(page, late)
    assert _rows(client.get(href.replace("&amp;", "&")).get_data(as_text=True)) == [late]


def test_inbox_open_row_names_the_queue_and_offers_claim(client, sign_in, start_task, task_row):
    task = start_task(None, "Walk-in")
    sign_in("rita")
    row = _row_html(client.get("/inbox?tab=open").get_data(as_text=True), task)
    queue = task_row(task).candidate_role
    assert f'<span class="muted">open to {queue}</span>' in row
    assert f'formaction="/tasks/{task}/claim" hx-post="/tasks/{task}/claim"' in row


def test_inbox_manager_gives_tasks_only_to_people_of_their_team(client, sign_in, start_task):
    start_task("rita", "A")
    sign_in("mona")
    page = client.get("/inbox?tab=customers").get_data(as_text=True)
    choices = re.findall(r'<option value="\d+">([^<]+)</option>', page)
    assert choices == ["Mona", "Ravi", "Rita"]


def test_inbox_deactivated_user_is_signed_out_at_the_next_request(app, client, sign_in, org):
    from webapp import db

    sign_in("rita")
    assert client.get("/inbox").status_code == 200
    with app.app_context():
        db.session.get(User, org["rita"]).active = False
        db.session.commit()
    response = client.get("/inbox")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_inbox_team_customers_tab_lists_the_teams_tasks_by_due_date(client, sign_in, start_task):
    soon = datetime.now(UTC) + timedelta(days=1)
    later = start_task("rita", "Later Ltd", due_at=soon + timedelta(days=3))
    undated = start_task("ravi", "Undated Ltd")
    sooner = start_task("ravi", "Sooner Ltd", due_at=soon)
    start_task("sam", "Elsewhere Ltd", due_at=soon)
    sign_in("mona")
    page = client.get("/inbox?tab=customers").get_data(as_text=True)
    assert _rows(page) == [sooner, later, undated]
    assert _count(page, "customers") == 3
    assert '<option value="lead_followup">' in page
    assert "Elsewhere Ltd" not in page
