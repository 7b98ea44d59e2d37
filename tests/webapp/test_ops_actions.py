"""Ops repair pages: confirmation before every change, bulk with a report, permissions, CSRF."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from crm.directory.models import User
from crm.directory.services import actor_for, create_user
from engine.deploy import deploy_files, folder_form_loader
from engine.instances import start_instance, suspend_instance
from engine.models import HumanTask, InstanceEvent, ProcessInstance
from tests.conftest import FIXTURES, NOW
from tests.engine.test_repair import FAILING, FINISH, PREP, V1, _chain, _user
from tests.webapp.conftest import PASSWORD, csrf_token

CHEAP_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")

_TARGET = re.compile(r'name="target" value="([^"]+)"')
BAD_JSON = '{\n  "divisor": 4,\n  "total": ,\n}'


def _deploy(db, xml: str, name: str):
    return deploy_files(
        db.session,
        "admin",
        {name: xml.encode()},
        load_form=folder_form_loader(FIXTURES / "forms"),
        now=NOW,
    ).processes[0]


def make_users(app, *people: tuple[str, str]) -> None:
    """Create users with a cheap password hash (the default one costs a second per user)."""
    from webapp import db

    with app.app_context():
        for name, role in people:
            create_user(db.session, name, name.title(), (role,), now=NOW, password_hash=CHEAP_HASH)
        db.session.commit()


@pytest.fixture
def world(app):
    """ops olga, admin ada, rep rita, manager mona, rep rob; three failed instances, one waiting."""
    from webapp import db

    make_users(
        app, ("olga", "ops"), ("ada", "admin"), ("rita", "rep"), ("mona", "manager"), ("rob", "rep")
    )
    with app.app_context():
        olga = actor_for(db.session.scalar(select(User).where(User.username == "olga")))
        _deploy(db, FAILING, "failing.bpmn")
        _deploy(db, V1, "repairable.bpmn")
        failed = [
            start_instance(
                db.session,
                olga,
                "failing",
                now=NOW,
                data={"total": 10, "divisor": 0},
                business_key=f"F-{n}",
            ).instance.id
            for n in range(3)
        ]
        waiting = start_instance(
            db.session, olga, "repairable", now=NOW, business_key="=HYPERLINK(1)"
        ).instance.id
        db.session.commit()
    return {"failed": failed, "waiting": waiting}


def _instance(app, instance_id: int) -> ProcessInstance:
    from webapp import db

    with app.app_context():
        instance = db.session.get(ProcessInstance, instance_id)
        db.session.expunge(instance)
        return instance


def _kinds(app, instance_id: int) -> list[str]:
    from webapp import db

    with app.app_context():
        return list(
            db.session.scalars(
                select(InstanceEvent.kind)
                .where(InstanceEvent.instance_id == instance_id)
                .order_by(InstanceEvent.id)
            )
        )


def _open(app, instance_id: int) -> list[tuple[str, str | None]]:
    from webapp import db

    with app.app_context():
        return [
            (t.bpmn_id, t.assignee)
            for t in db.session.scalars(
                select(HumanTask).where(
                    HumanTask.instance_id == instance_id, HumanTask.status == "open"
                )
            )
        ]


def _page(client, instance_id: int, action: str):
    return client.get(f"/ops/instances/{instance_id}/actions/{action}")


def _post(client, instance_id: int, action: str, **data):
    token = csrf_token(client, f"/ops/instances/{instance_id}/actions/{action}")
    return client.post(
        f"/ops/instances/{instance_id}/actions/{action}", data={"csrf_token": token, **data}
    )


def test_retry_page_shows_failed_data_and_confirm_retries(app, client, sign_in, world):
    sign_in("olga")
    failed = world["failed"][0]
    page = _page(client, failed, "retry").get_data(as_text=True)
    assert "&#34;divisor&#34;: 0" in page or '"divisor": 0' in page
    version = _instance(app, failed).version
    response = _post(
        client,
        failed,
        "retry",
        step="confirm",
        version=version,
        mode="replace",
        data='{"total": 10, "divisor": 5}',
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/ops/instances/{failed}")
    assert _instance(app, failed).status == "running"
    assert _open(app, failed) == [("check", "olga")]
    assert _kinds(app, failed)[-1] == "retried"


def test_invalid_json_names_the_line_and_changes_nothing(app, client, sign_in, world):
    sign_in("olga")
    failed = world["failed"][0]
    before = _instance(app, failed)
    response = _post(client, failed, "retry", step="confirm", version=before.version, data=BAD_JSON)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "line 3, column 12" in page
    assert "&#34;total&#34;: ," in page or '"total": ,' in page  # what was typed stays
    after = _instance(app, failed)
    assert (after.status, after.version) == ("error", before.version)
    assert "retried" not in _kinds(app, failed)


def test_first_post_only_shows_what_will_happen(app, client, sign_in, world):
    sign_in("ada")
    waiting = world["waiting"]
    shown = _post(client, waiting, "suspend")
    assert shown.status_code == 200
    assert "its timers wait until someone resumes it" in shown.get_data(as_text=True)
    assert _instance(app, waiting).status == "running"
    version = _instance(app, waiting).version
    done = _post(client, waiting, "suspend", step="confirm", version=version, reason="audit")
    assert done.status_code == 303
    assert _instance(app, waiting).status == "suspended"
    from webapp import db

    with app.app_context():
        event = db.session.scalars(
            select(InstanceEvent)
            .where(InstanceEvent.instance_id == waiting)
            .order_by(InstanceEvent.id.desc())
        ).first()
        assert (event.kind, event.actor, event.detail) == ("suspended", "ada", {"reason": "audit"})


def test_confirm_after_someone_else_changed_it_is_a_conflict(app, client, sign_in, world):
    from webapp import db

    sign_in("olga")
    waiting = world["waiting"]
    seen = _instance(app, waiting).version
    with app.app_context():
        suspend_instance(
            db.session,
            actor_for(db.session.scalar(select(User).where(User.username == "ada"))),
            waiting,
            now=NOW,
        )
        db.session.commit()
    response = _post(client, waiting, "terminate", step="confirm", version=seen)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "changed since you looked at it" in page
    assert _instance(app, waiting).status == "suspended"
    # The refusal shows the instance as it is now; confirming from there acts on it.
    now_seen = _instance(app, waiting).version
    assert f'name="version" value="{now_seen}"' in page
    again = _post(client, waiting, "terminate", step="confirm", version=now_seen)
    assert again.status_code == 303
    assert _instance(app, waiting).status == "terminated"


def test_move_token_review_then_confirm(app, client, sign_in, world):
    sign_in("olga")
    waiting = world["waiting"]
    page = _page(client, waiting, "move").get_data(as_text=True)
    assert 'value="review|approve"' in page
    assert 'value="review|start"' not in page
    version = _instance(app, waiting).version
    plan = _post(client, waiting, "move", step="check", move="review|approve", version=version)
    assert plan.status_code == 200
    assert "continues at “Approve”" in plan.get_data(as_text=True)
    assert _open(app, waiting) == [("review", "olga")]
    done = _post(client, waiting, "move", step="confirm", move="review|approve", version=version)
    assert done.status_code == 303
    assert _open(app, waiting) == [("approve", "olga")]
    bad = _post(client, waiting, "move", step="check", move="approve|nowhere")
    assert bad.status_code == 422


@pytest.mark.parametrize("compatible", [True, False], ids=["compatible", "incompatible"])
def test_migrate_shows_the_check_before_confirming(app, client, sign_in, world, compatible):
    from webapp import db

    waiting = world["waiting"]
    with app.app_context():
        middle = [_user("review"), _user("approve"), _user("extra")] if compatible else []
        v2 = _deploy(db, _chain("repairable", PREP, *middle, FINISH), "repairable.bpmn")
        db.session.commit()
    sign_in("olga")
    assert f'value="{v2.definition_id}"' in _page(client, waiting, "migrate").get_data(as_text=True)
    version = _instance(app, waiting).version
    check = _post(client, waiting, "migrate", step="check", definition_id=v2.definition_id)
    text = check.get_data(as_text=True)
    if compatible:
        assert "Compatible" in text
        assert 'value="confirm"' in text
        done = _post(
            client,
            waiting,
            "migrate",
            step="confirm",
            definition_id=v2.definition_id,
            version=version,
        )
        assert done.status_code == 303
        assert _instance(app, waiting).definition_id == v2.definition_id
    else:
        assert "Not compatible" in text
        assert "&#39;review&#39;" in text
        assert 'value="confirm"' not in text
        forced = _post(
            client,
            waiting,
            "migrate",
            step="confirm",
            definition_id=v2.definition_id,
            version=version,
        )
        assert forced.status_code == 409
        assert _instance(app, waiting).definition_id != v2.definition_id


def test_reassign_a_task(app, client, sign_in, world):
    from webapp import db

    sign_in("olga")
    waiting = world["waiting"]
    with app.app_context():
        rob = db.session.scalar(select(User.id).where(User.username == "rob"))
        task = db.session.scalar(select(HumanTask.id).where(HumanTask.instance_id == waiting))
    response = _post(
        client,
        waiting,
        "reassign",
        step="confirm",
        task=task,
        to=rob,
        version=_instance(app, waiting).version,
        reason="holiday",
    )
    assert response.status_code == 303
    assert _open(app, waiting) == [("review", "rob")]
    missing = _post(client, waiting, "reassign", step="confirm", task=task, to="")
    assert missing.status_code == 422


def _bulk_confirm(client, **data):
    token = csrf_token(client, "/ops/instances")
    return client.post("/ops/bulk", data={"csrf_token": token, **data})


def _run(client, page: str, **data):
    token = csrf_token(client, "/ops/instances")
    targets = _TARGET.findall(page)
    return client.post("/ops/bulk/run", data={"csrf_token": token, "target": targets, **data})


def test_bulk_retry_touches_only_the_selected_instances(app, client, sign_in, world):
    sign_in("olga")
    first, second, third = world["failed"]
    confirm = _bulk_confirm(client, action="retry", scope="selected", instance_id=[first, third])
    page = confirm.get_data(as_text=True)
    assert confirm.status_code == 200
    assert f'data-instance="{first}"' in page
    assert f'data-instance="{third}"' in page
    assert f'data-instance="{second}"' not in page
    assert [_instance(app, i).status for i in world["failed"]] == ["error"] * 3

    done = _run(client, page, action="retry", data='{"divisor": 2}')
    assert done.status_code == 303
    report = client.get(done.headers["Location"])
    text = report.get_data(as_text=True)
    assert re.search(r"Done: <strong>2</strong>", text)
    assert [_instance(app, i).status for i in world["failed"]] == ["running", "error", "running"]
    assert "retried" not in _kinds(app, second)

    download = client.get(done.headers["Location"] + ".csv")
    assert download.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert [(int(r["instance_id"]), r["outcome"]) for r in rows] == [(first, "ok"), (third, "ok")]


def test_bulk_on_all_matching_the_filter_and_per_instance_report(app, client, sign_in, world):
    sign_in("olga")
    confirm = _bulk_confirm(client, action="suspend", scope="all", process="repairable")
    page = confirm.get_data(as_text=True)
    assert f'data-instance="{world["waiting"]}"' in page
    assert all(f'data-instance="{i}"' not in page for i in world["failed"])
    every = _bulk_confirm(client, action="retry", scope="all")  # no filter: all four
    page = every.get_data(as_text=True)
    assert "will be refused" in page  # the waiting one is not in error
    done = _run(client, page, action="retry", data="")
    report = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Refused: <strong>1</strong>" in report
    assert "not in error" in report
    rows = client.get(done.headers["Location"] + ".csv").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in rows  # a business key cannot run as a spreadsheet formula


def test_bulk_with_invalid_json_changes_nothing(app, client, sign_in, world):
    sign_in("olga")
    page = _bulk_confirm(
        client, action="retry", scope="selected", instance_id=world["failed"]
    ).get_data(as_text=True)
    response = _run(client, page, action="retry", data=BAD_JSON)
    assert response.status_code == 422
    assert "line 3, column 12" in response.get_data(as_text=True)
    assert [_instance(app, i).status for i in world["failed"]] == ["error"] * 3


def test_post_without_csrf_token_is_refused(app, client, sign_in, world):
    sign_in("olga")
    waiting = world["waiting"]
    version = _instance(app, waiting).version
    response = client.post(
        f"/ops/instances/{waiting}/actions/terminate", data={"step": "confirm", "version": version}
    )
    assert response.status_code == 400
    assert _instance(app, waiting).status == "running"
    bulk = client.post("/ops/bulk/run", data={"action": "terminate", "target": f"{waiting}:"})
    assert bulk.status_code == 400
    assert _instance(app, waiting).status == "running"


def _routes(world, report_id):
    failed, waiting = world["failed"][0], world["waiting"]
    gets = [
        f"/ops/instances/{waiting}/actions/{a}"
        for a in ("suspend", "resume", "terminate", "reassign", "move", "migrate")
    ]
    gets += [
        f"/ops/instances/{failed}/actions/retry",
        f"/ops/bulk/{report_id}",
        f"/ops/bulk/{report_id}.csv",
    ]
    posts = [
        (f"/ops/instances/{waiting}/actions/suspend", {"step": "confirm"}),
        (f"/ops/instances/{failed}/actions/retry", {"step": "confirm", "data": "{}"}),
        ("/ops/bulk", {"action": "terminate", "scope": "selected", "instance_id": waiting}),
        ("/ops/bulk/run", {"action": "terminate", "target": f"{waiting}:"}),
    ]
    return gets, posts


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("olga", True), ("ada", True), ("rita", False), ("mona", False), (None, False)],
    ids=["ops", "admin", "rep", "manager", "anonymous"],
)
def test_permission_matrix(app, client, sign_in, world, who, allowed):
    from engine.actor import Actor
    from engine.repair import run_bulk_and_record
    from webapp import db

    with app.app_context():
        report = run_bulk_and_record(
            db.session,
            Actor("olga", frozenset({"ops"})),
            "suspend",
            {world["waiting"]: -1},
            now=NOW,
        )
        db.session.commit()
        report_id = report.id
    token = csrf_token(client)
    if who:
        sign_in(who)
        token = csrf_token(client, "/")
    gets, posts = _routes(world, report_id)
    for path in gets:
        status = client.get(path).status_code
        expected = 200 if allowed else (302 if who is None else 403)
        assert status == expected, (who, path, status)
    if allowed:
        return  # the changes themselves are tested above
    for path, data in posts:
        status = client.post(path, data={"csrf_token": token, **data}).status_code
        assert status == (302 if who is None else 403), (who, path, status)
    assert _instance(app, world["waiting"]).status == "running"
    assert [_instance(app, i).status for i in world["failed"]] == ["error"] * 3


def test_actions_partial_on_the_instance_page(app, client, sign_in, world):
    sign_in("olga")
    page = client.get(f"/ops/instances/{world['failed'][0]}").get_data(as_text=True)
    assert f"/ops/instances/{world['failed'][0]}/actions/retry" in page
    assert "/actions/resume" not in page
    listing = client.get("/ops/instances").get_data(as_text=True)
    assert 'formaction="/ops/bulk"' in listing
    assert 'value="all"' in listing


def test_retry_page_in_chinese(client, sign_in, world):
    sign_in("olga")
    text = client.get(f"/ops/instances/{world['failed'][0]}/actions/retry?lang=zh_CN").get_data(
        as_text=True
    )
    assert "修改数据并重试" in text
    assert "失败任务的数据（JSON）" in text


def test_retry_that_fails_again_says_so(app, client, sign_in, world):
    sign_in("olga")
    failed = world["failed"][0]
    response = _post(
        client,
        failed,
        "retry",
        step="confirm",
        version=_instance(app, failed).version,
        mode="merge",
        data='{"divisor": 0}',
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Instance #{failed} failed again at work" in page
    assert _instance(app, failed).status == "error"


def test_refusals_are_translated(app, client, sign_in, world):
    sign_in("rita")
    page = client.get(f"/ops/instances/{world['failed'][0]}/actions/retry?lang=zh_CN")
    assert page.status_code == 403
    assert "只有运维和管理员可以修复流程实例" in page.get_data(as_text=True)
