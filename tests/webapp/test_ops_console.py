"""The ops console's pages: instance list filters and counts, the instance page, the heatmap, and
who may see them."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.directory.models import User
from crm.directory.services import actor_for
from engine.instances import open_tasks_of, start_instance
from engine.models import ProcessInstance
from engine.tasks import complete_task
from tests.conftest import NOW
from tests.engine.test_instance_queries import deploy_ops_process

ROLES_REFUSED = ("rep", "supervisor", "manager", "director", "finance", "marketing")
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def instances(app, web_user):
    """Three ops_demo instances: one failed at `work`, one at task `check`, one at timer `pause`."""
    from webapp import db

    web_user("olga", "ops")
    with app.app_context():
        definition_id = deploy_ops_process(db.session)
        olga = actor_for(db.session.scalar(select(User).where(User.username == "olga")))

        def start(divisor, key):
            data = {"divisor": divisor, "note": HOSTILE}
            return start_instance(
                db.session, olga, "ops_demo", now=NOW, data=data, business_key=key
            ).instance

        failed = start(0, "INV-1")
        working = start(2, "INV-2")
        waiting = start(5, "OTHER-3")
        db.session.flush()
        [task] = open_tasks_of(db.session, waiting.id)
        complete_task(db.session, olga, task.id, {}, now=NOW + timedelta(hours=1))
        db.session.commit()
        ids = {
            "failed": failed.id,
            "working": working.id,
            "waiting": waiting.id,
            "definition": definition_id,
        }
    return ids


def rows_of(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-instance="(\d+)"', html)]


def count_of(html: str, status: str) -> str:
    match = re.search(rf'data-status="{status}">[^<]*<span class="count">([^<]+)</span>', html)
    assert match, f"no count for {status}"
    return match.group(1)


def test_list_filters_through_the_page(client, sign_in, instances):
    sign_in("olga")
    everything = client.get("/ops/instances").get_data(as_text=True)
    assert rows_of(everything) == sorted(
        [instances["failed"], instances["working"], instances["waiting"]], reverse=True
    )
    assert count_of(everything, "error") == "1"
    assert count_of(everything, "running") == "1"
    assert count_of(everything, "waiting") == "1"

    errored = client.get("/ops/instances?in_error=1").get_data(as_text=True)
    assert rows_of(errored) == [instances["failed"]]
    assert "division by zero" in errored
    assert rows_of(client.get("/ops/instances?status=waiting").get_data(as_text=True)) == [
        instances["waiting"]
    ]
    by_key = client.get("/ops/instances?key=INV-*").get_data(as_text=True)
    assert rows_of(by_key) == [instances["working"], instances["failed"]]
    at_check = client.get("/ops/instances?waiting_at=check").get_data(as_text=True)
    assert rows_of(at_check) == [instances["working"]]
    by_version = client.get(f"/ops/instances?definition={instances['definition']}&status=error")
    assert rows_of(by_version.get_data(as_text=True)) == [instances["failed"]]
    assert rows_of(client.get("/ops/instances?process=nothing").get_data(as_text=True)) == []


def test_list_keeps_the_filter_for_bulk_actions_and_pages(client, sign_in, instances):
    sign_in("olga")
    html = client.get("/ops/instances?key=INV-*&in_error=1").get_data(as_text=True)
    selection = html[html.index('<form id="ops-selection"') :]
    selection = selection[: selection.index("</form>")]
    assert '<input type="hidden" name="key" value="INV-*">' in selection
    assert '<input type="hidden" name="in_error" value="1">' in selection
    assert f'name="instance_id" value="{instances["failed"]}"' in selection


def test_list_pages_with_a_next_link(client, sign_in, instances, monkeypatch):
    monkeypatch.setattr("engine.instance_queries.PAGE_SIZE", 2)
    monkeypatch.setattr(
        "webapp.ops.console.list_instances",
        _with_page_size(2),
    )
    sign_in("olga")
    first = client.get("/ops/instances").get_data(as_text=True)
    assert rows_of(first) == [instances["waiting"], instances["working"]]
    link = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert link
    second = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert rows_of(second) == [instances["failed"]]
    assert 'rel="next"' not in second


def _with_page_size(size):
    from engine.instance_queries import list_instances

    def listing(*args, **kwargs):
        return list_instances(*args, page_size=size, **kwargs)

    return listing


def test_bad_filter_values_are_named(client, sign_in, instances):
    sign_in("olga")
    response = client.get("/ops/instances?idle_days=soon&started_from=yesterday&status=lost")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "&#39;soon&#39; is not a whole number" in html
    assert "&#39;yesterday&#39; is not a date (YYYY-MM-DD)" in html
    assert "&#39;lost&#39; is not one of" in html
    assert rows_of(html) == []


def test_instance_page_shows_states_incident_and_escaped_data(client, sign_in, instances):
    sign_in("olga")
    html = client.get(f"/ops/instances/{instances['failed']}").get_data(as_text=True)
    states = json.loads(re.search(r'id="ops-element-states">(.*?)</script>', html, re.S).group(1))
    assert states == {
        "Start": "completed",
        "start": "completed",
        "prepare": "completed",
        "work": "error",
    }
    assert "ZeroDivisionError" in html
    assert "division by zero" in html
    assert "<code>work</code>" in html  # the incident names its element
    assert HOSTILE not in html
    assert "\\u003cscript\\u003ealert" in html  # the task data, escaped
    assert "Started" in html  # the event log
    working = client.get(f"/ops/instances/{instances['working']}").get_data(as_text=True)
    assert '"check": "active"' in working
    waiting = client.get(f"/ops/instances/{instances['waiting']}").get_data(as_text=True)
    assert '"pause": "active"' in waiting
    assert '"check": "completed"' in waiting


def test_missing_instances_and_versions_are_404(client, sign_in, instances):
    sign_in("olga")
    assert client.get("/ops/instances/999999").status_code == 404
    assert client.get("/ops/heatmap/999999.json").status_code == 404
    assert client.get("/ops/definitions/999999/diagram.bpmn").status_code == 404


def test_diagram_is_the_deployed_xml(client, sign_in, instances):
    sign_in("olga")
    response = client.get(f"/ops/definitions/{instances['definition']}/diagram.bpmn")
    assert response.status_code == 200
    assert b'<bpmn:process id="ops_demo"' in response.data
    # Never rendered as a document by the browser: text, sandboxed.
    assert response.mimetype == "text/plain"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_heatmap_counts_waiting_and_failed_instances(client, sign_in, instances, monkeypatch):
    later = NOW + timedelta(days=2)
    monkeypatch.setattr("webapp.ops.console.request_now", lambda: later)
    sign_in("olga")
    data = client.get(f"/ops/heatmap/{instances['definition']}.json").get_json()
    elements = {e["bpmn_id"]: e for e in data["elements"]}
    assert (elements["check"]["waiting"], elements["check"]["average_wait_seconds"]) == (
        1,
        2 * 86400,
    )
    # The timer wait began when the task was completed, an hour after the start.
    assert elements["pause"]["waiting"] == 1
    assert elements["pause"]["average_wait_seconds"] == 2 * 86400 - 3600
    assert (elements["work"]["waiting"], elements["work"]["errors"]) == (0, 1)
    page = client.get(f"/ops/heatmap?process=ops_demo&definition={instances['definition']}")
    html = page.get_data(as_text=True)
    row = re.search(r'<tr data-element="check">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == ["1", "2 days", "0"]


def test_console_in_chinese(client, sign_in, instances):
    sign_in("olga")
    html = client.get("/ops/instances?lang=zh_CN").get_data(as_text=True)
    assert "流程实例" in html


@pytest.mark.parametrize("role", ROLES_REFUSED)
def test_other_roles_are_refused(client, sign_in, web_user, instances, role):
    web_user("someone", role)
    sign_in("someone")
    for path in _console_paths(instances):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "only ops and admins may see the ops console" in response.get_data(as_text=True)
    assert 'href="/ops/instances"' not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["ops", "admin"])
def test_ops_and_admins_may_see_everything(client, sign_in, web_user, instances, role):
    web_user("watcher", role)
    sign_in("watcher")
    for path in _console_paths(instances):
        assert client.get(path).status_code == 200, path
    assert 'href="/ops/instances"' in client.get("/").get_data(as_text=True)


def test_anonymous_visitors_are_sent_to_sign_in(client, instances):
    for path in _console_paths(instances):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]


def _console_paths(instances):
    return [
        "/ops/instances",
        f"/ops/instances/{instances['failed']}",
        f"/ops/definitions/{instances['definition']}/diagram.bpmn",
        "/ops/heatmap",
        f"/ops/heatmap/{instances['definition']}.json",
    ]


def test_instance_rows_exist(app, instances):
    from webapp import db

    with app.app_context():
        assert db.session.get(ProcessInstance, instances["failed"]).status == "error"
