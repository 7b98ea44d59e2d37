"""Ops repairs: move a token, migrate between versions, fix data and retry, bulk with a report."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.actor import Actor
from engine.deploy import deploy_files, folder_form_loader
from engine.errors import Conflict, Forbidden, InvalidInput
from engine.instances import start_instance, suspend_instance, terminate_instance
from engine.models import HumanTask, Incident, InstanceEvent, InstanceTimer, ProcessInstance
from engine.repair import (
    check_migration,
    edit_data_and_retry,
    migrate_instance,
    migration_targets,
    move_token,
    parse_task_data,
    preview_bulk,
    reassign_open_tasks,
    run_bulk,
    run_bulk_and_record,
    tokens_of,
)
from engine.tasks import complete_task
from engine.views import describe_instance
from tests.conftest import FIXTURES, NOW

OPS = Actor("olga", frozenset({"ops"}))
ADMIN = Actor("ada", frozenset({"admin"}))
REP = Actor("rita", frozenset({"rep"}))
MANAGER = Actor("max", frozenset({"manager"}))
LATER = NOW + timedelta(hours=1)


def _chain(process_id: str, *elements: tuple[str, str, str]) -> str:
    """Write a linear process: start → elements → end. Each element is (kind, id, script)."""
    nodes, flows, previous = [], [], "start"
    for n, (kind, element_id, script) in enumerate(elements, 1):
        flows.append(
            f'<bpmn:sequenceFlow id="f{n}" sourceRef="{previous}" targetRef="{element_id}"/>'
        )
        body = f"<bpmn:script>{script}</bpmn:script>" if kind == "scriptTask" else ""
        nodes.append(
            f'<bpmn:{kind} id="{element_id}" name="{element_id.title()}">{body}</bpmn:{kind}>'
        )
        previous = element_id
    flows.append(f'<bpmn:sequenceFlow id="fend" sourceRef="{previous}" targetRef="end"/>')
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  id="d" targetNamespace="t">
  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    {"".join(nodes)}
    <bpmn:endEvent id="end"/>
    {"".join(flows)}
  </bpmn:process>
</bpmn:definitions>
"""


def _deploy(session, xml: str, name: str = "repairable.bpmn"):
    result = deploy_files(
        session,
        "admin",
        {name: xml.encode()},
        load_form=folder_form_loader(FIXTURES / "forms"),
        now=NOW,
    )
    return result.processes[0]


def _user(element_id: str) -> tuple[str, str, str]:
    return ("userTask", element_id, "")


PREP = ("scriptTask", "prep", "count = 1")
FINISH = ("scriptTask", "finish", "done = True")
V1 = _chain("repairable", PREP, _user("review"), _user("approve"), FINISH)


def _open(session, instance) -> list[str]:
    return sorted(
        session.scalars(
            select(HumanTask.bpmn_id).where(
                HumanTask.instance_id == instance.id, HumanTask.status == "open"
            )
        )
    )


def _events(session, instance, kind: str) -> list[InstanceEvent]:
    return list(
        session.scalars(
            select(InstanceEvent).where(
                InstanceEvent.instance_id == instance.id, InstanceEvent.kind == kind
            )
        )
    )


def _complete(session, instance, bpmn_id: str, data=None):
    task = session.scalars(
        select(HumanTask).where(
            HumanTask.instance_id == instance.id,
            HumanTask.status == "open",
            HumanTask.bpmn_id == bpmn_id,
        )
    ).one()
    return complete_task(session, OPS, task.id, data or {}, now=LATER)


# --- move a token ------------------------------------------------------------------------------

BOUNDARY = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  id="d" targetNamespace="t">
  <bpmn:process id="movable" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="review" name="Review"/>
    <bpmn:userTask id="approve" name="Approve"/>
    <bpmn:boundaryEvent id="approve_late" attachedToRef="approve">
      <bpmn:timerEventDefinition><bpmn:timeDuration>"P3D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:exclusiveGateway id="decide" default="f_again"/>
    <bpmn:scriptTask id="finish" name="Finish">
      <bpmn:script>done = True</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end"/>
    <bpmn:endEvent id="late_end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="approve"/>
    <bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="decide"/>
    <bpmn:sequenceFlow id="f_ok" sourceRef="decide" targetRef="finish">
      <bpmn:conditionExpression>approved == True</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="decide" targetRef="review"/>
    <bpmn:sequenceFlow id="f4" sourceRef="finish" targetRef="end"/>
    <bpmn:sequenceFlow id="f_late" sourceRef="approve_late" targetRef="late_end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _timers(session, instance) -> list[str]:
    return sorted(
        session.scalars(
            select(InstanceTimer.bpmn_id).where(
                InstanceTimer.instance_id == instance.id, InstanceTimer.status == "waiting"
            )
        )
    )


def test_move_token_forward_opens_target_and_process_continues(session, round_trip):
    _deploy(session, BOUNDARY, "movable.bpmn")
    instance = start_instance(session, OPS, "movable", now=NOW, data={"approved": True}).instance
    assert _open(session, instance) == ["review"]
    [token] = tokens_of(session, OPS, instance.id)
    assert token.element.bpmn_id == "review"
    targets = {t.bpmn_id for t in token.targets}
    assert {"approve", "finish", "end", "late_end"} <= targets
    assert not targets & {"decide", "start", "approve_late", "review"}

    move_token(session, OPS, instance.id, "review", "approve", now=LATER, reason="skip review")
    round_trip(instance)
    assert _open(session, instance) == ["approve"]
    # The target has its boundary timer, as if the token had arrived by the flow.
    assert _timers(session, instance) == ["approve_late"]
    review = session.scalars(
        select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.bpmn_id == "review")
    ).one()
    assert review.status == "cancelled"
    [event] = _events(session, instance, "moved")
    assert event.actor == "olga"
    assert event.detail == {"from": "review", "to": "approve", "reason": "skip review"}

    _complete(session, instance, "approve")
    round_trip(instance)
    assert instance.status == "completed"
    assert describe_instance(session, instance)["data"]["done"] is True
    assert _timers(session, instance) == []


def test_move_token_back_and_away_from_a_task_with_a_timer(session, round_trip):
    _deploy(session, BOUNDARY, "movable.bpmn")
    instance = start_instance(session, OPS, "movable", now=NOW, data={"approved": False}).instance
    _complete(session, instance, "review")
    assert _open(session, instance) == ["approve"]
    assert _timers(session, instance) == ["approve_late"]

    move_token(session, OPS, instance.id, "approve", "review", now=LATER)
    round_trip(instance)
    assert _open(session, instance) == ["review"]
    assert _timers(session, instance) == []  # the boundary timer left with the token
    assert instance.next_timer_at is None
    _complete(session, instance, "review")
    assert _open(session, instance) == ["approve"]


def test_move_token_to_invalid_targets_is_refused_with_reason(session):
    _deploy(session, BOUNDARY, "movable.bpmn")
    instance = start_instance(session, OPS, "movable", now=NOW).instance
    version = instance.version
    for target, words in [
        ("decide", "ExclusiveGateway"),
        ("start", "StartEvent"),
        ("approve_late", "BoundaryEvent"),
        ("nowhere", "not a task or event of the same process"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            move_token(session, OPS, instance.id, "review", target, now=LATER)
        assert words in refused.value.message
        assert refused.value.fields["target"]
    with pytest.raises(InvalidInput, match="no live token at 'approve'"):
        move_token(session, OPS, instance.id, "approve", "finish", now=LATER)
    session.refresh(instance)
    assert instance.version == version
    assert _open(session, instance) == ["review"]
    assert _events(session, instance, "moved") == []


def test_move_token_out_of_a_failed_task_clears_the_error(session):
    xml = _chain("failing", ("scriptTask", "work", "ratio = 1 / divisor"), _user("check"))
    _deploy(session, xml, "failing.bpmn")
    instance = start_instance(session, OPS, "failing", now=NOW, data={"divisor": 0}).instance
    assert instance.status == "error"
    move_token(session, OPS, instance.id, "work", "check", now=LATER)
    assert instance.status == "running"
    assert _open(session, instance) == ["check"]
    assert session.scalars(
        select(Incident.status).where(Incident.instance_id == instance.id)
    ).all() == ["resolved"]


NESTED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  id="d" targetNamespace="t">
  <bpmn:process id="nested" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:subProcess id="sub" name="Sub">
      <bpmn:startEvent id="sub_start"/>
      <bpmn:userTask id="inner_a" name="Inner A"/>
      <bpmn:userTask id="inner_b" name="Inner B"/>
      <bpmn:endEvent id="sub_end"/>
      <bpmn:sequenceFlow id="s1" sourceRef="sub_start" targetRef="inner_a"/>
      <bpmn:sequenceFlow id="s2" sourceRef="inner_a" targetRef="inner_b"/>
      <bpmn:sequenceFlow id="s3" sourceRef="inner_b" targetRef="sub_end"/>
    </bpmn:subProcess>
    <bpmn:userTask id="after" name="After"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="after"/>
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_move_token_stays_inside_its_subprocess(session, round_trip):
    _deploy(session, NESTED, "nested.bpmn")
    instance = start_instance(session, OPS, "nested", now=NOW).instance
    [token] = tokens_of(session, OPS, instance.id)
    assert token.element.bpmn_id == "inner_a"
    assert [t.bpmn_id for t in token.targets] == ["inner_b", "sub_end"]
    with pytest.raises(InvalidInput, match="not a task or event of the same process"):
        move_token(session, OPS, instance.id, "inner_a", "after", now=LATER)
    move_token(session, OPS, instance.id, "inner_a", "sub_end", now=LATER)
    round_trip(instance)
    assert _open(session, instance) == ["after"]  # the subprocess ended; the parent went on
    _complete(session, instance, "after")
    assert instance.status == "completed"


# --- migrate -----------------------------------------------------------------------------------


def test_migrate_to_version_with_added_task_continues_on_new_version(session, round_trip):
    v1 = _deploy(session, _chain("repairable", PREP, _user("review"), FINISH))
    instance = start_instance(session, OPS, "repairable", now=NOW).instance
    v2 = _deploy(session, _chain("repairable", PREP, _user("review"), _user("extra"), FINISH))
    assert (v1.version, v2.version) == (1, 2)
    assert [d.version for d in migration_targets(session, instance)] == [2]
    check = check_migration(session, OPS, instance.id, v2.definition_id)
    assert check.compatible
    assert check.blockers == ()

    migrate_instance(session, OPS, instance.id, v2.definition_id, now=LATER)
    round_trip(instance)
    assert instance.definition_id == v2.definition_id
    [event] = _events(session, instance, "migrated")
    assert (event.actor, event.detail["from_version"], event.detail["to_version"]) == ("olga", 1, 2)
    session.expire_all()  # and it restores from the database on the new version
    _complete(session, instance, "review")
    assert _open(session, instance) == ["extra"]
    _complete(session, instance, "extra")
    assert session.get(ProcessInstance, instance.id).status == "completed"


@pytest.mark.parametrize("renamed", [True, False], ids=["renamed", "removed"])
def test_migrate_is_refused_when_the_waiting_task_is_gone(session, renamed):
    _deploy(session, _chain("repairable", PREP, _user("review"), FINISH))
    instance = start_instance(session, OPS, "repairable", now=NOW).instance
    middle = [_user("check")] if renamed else []
    v2 = _deploy(session, _chain("repairable", PREP, *middle, FINISH))
    check = check_migration(session, OPS, instance.id, v2.definition_id)
    assert not check.compatible
    assert check.element_ids == ("review",)
    assert "review" in check.blockers[0]
    assert "version 2" in check.blockers[0]
    with pytest.raises(Conflict, match="'review'"):
        migrate_instance(session, OPS, instance.id, v2.definition_id, now=LATER)
    session.refresh(instance)
    assert instance.definition.version == 1
    assert _open(session, instance) == ["review"]
    assert _events(session, instance, "migrated") == []


def test_migrate_inside_a_subprocess_continues_on_the_new_subprocess(session, round_trip):
    _deploy(session, NESTED, "nested.bpmn")
    instance = start_instance(session, OPS, "nested", now=NOW).instance
    longer = NESTED.replace(
        '<bpmn:sequenceFlow id="s3" sourceRef="inner_b" targetRef="sub_end"/>',
        '<bpmn:userTask id="inner_c" name="Inner C"/>'
        '<bpmn:sequenceFlow id="s3" sourceRef="inner_b" targetRef="inner_c"/>'
        '<bpmn:sequenceFlow id="s4" sourceRef="inner_c" targetRef="sub_end"/>',
    )
    v2 = _deploy(session, longer, "nested.bpmn")
    migrate_instance(session, OPS, instance.id, v2.definition_id, now=LATER)
    round_trip(instance)
    session.expire_all()
    for step in ("inner_a", "inner_b", "inner_c"):
        assert _open(session, instance) == [step]
        _complete(session, instance, step)
    assert _open(session, instance) == ["after"]


def test_migrate_refuses_when_boundary_events_differ(session):
    _deploy(session, BOUNDARY, "movable.bpmn")
    instance = start_instance(session, OPS, "movable", now=NOW).instance
    _complete(session, instance, "review")  # now at approve, with its timer
    fresh = start_instance(session, OPS, "movable", now=NOW).instance  # at review: no timer yet
    plain = re.sub(r"<bpmn:boundaryEvent.*?</bpmn:boundaryEvent>", "", BOUNDARY, flags=re.S)
    plain = plain.replace(
        '<bpmn:sequenceFlow id="f_late" sourceRef="approve_late" targetRef="late_end"/>', ""
    )
    v2 = _deploy(session, plain, "movable.bpmn")
    check = check_migration(session, OPS, instance.id, v2.definition_id)
    assert check.element_ids == ("approve", "approve_late")
    assert check.blockers == (
        "the boundary events on 'approve' differ in version 2",
        "a token waits at 'approve_late', which version 2 lacks",
    )
    assert check_migration(session, OPS, fresh.id, v2.definition_id).compatible


def test_migrate_refuses_a_changed_element_type(session):
    _deploy(session, _chain("repairable", PREP, _user("review"), FINISH))
    instance = start_instance(session, OPS, "repairable", now=NOW).instance
    v2 = _deploy(session, _chain("repairable", PREP, ("manualTask", "review", ""), FINISH))
    check = check_migration(session, OPS, instance.id, v2.definition_id)
    assert check.element_ids == ("review",)
    assert "UserTask" in check.blockers[0]
    assert "ManualTask" in check.blockers[0]


def test_bulk_migrate_reports_per_instance(session):
    _deploy(session, V1)
    at_review = start_instance(session, OPS, "repairable", now=NOW).instance
    at_approve = start_instance(session, OPS, "repairable", now=NOW).instance
    _complete(session, at_approve, "review")
    v2 = _deploy(session, _chain("repairable", PREP, _user("review"), FINISH))
    ids = [at_review.id, at_approve.id]
    preview = preview_bulk(session, OPS, "migrate", ids, {"definition_id": v2.definition_id})
    assert [p.outcome for p in preview] == ["ok", "refused"]
    results = run_bulk(
        session,
        OPS,
        "migrate",
        dict.fromkeys(ids),
        now=LATER,
        params={"definition_id": v2.definition_id},
    )
    assert [(r.instance_id, r.outcome) for r in results] == [
        (at_review.id, "ok"),
        (at_approve.id, "refused"),
    ]
    assert "'approve'" in results[1].message
    assert session.get(ProcessInstance, at_review.id).definition.version == 2
    assert session.get(ProcessInstance, at_approve.id).definition.version == 1
    _complete(session, at_review, "review")
    assert session.get(ProcessInstance, at_review.id).status == "completed"


# --- data fixes, retry and bulk ----------------------------------------------------------------

FAILING = _chain("failing", ("scriptTask", "work", "ratio = total / divisor"), _user("check"))


def _failed(session, n: int) -> list[ProcessInstance]:
    _deploy(session, FAILING, "failing.bpmn")
    return [
        start_instance(
            session, OPS, "failing", now=NOW, data={"total": 10, "divisor": 0, "note": "x"}
        ).instance
        for _ in range(n)
    ]


def test_parse_task_data_names_the_line_of_a_syntax_error():
    with pytest.raises(InvalidInput) as bad:
        parse_task_data('{\n  "divisor": 4,\n  "total": ,\n}')
    assert bad.value.fields["data"][0].startswith("line 3, column 12")
    with pytest.raises(InvalidInput, match="object"):
        parse_task_data("[1, 2]")
    with pytest.raises(InvalidInput, match="not a variable name: my key"):
        parse_task_data('{"my key": 1}')
    assert parse_task_data('{"divisor": 4}') == {"divisor": 4}


def test_edit_data_then_retry_replaces_the_failed_task_data(session, round_trip):
    [instance] = _failed(session, 1)
    edit_data_and_retry(
        session, OPS, instance.id, {"total": 9, "divisor": 3}, now=LATER, replace=True
    )
    round_trip(instance)
    assert instance.status == "running"
    data = describe_instance(session, instance)["data"]
    assert data["ratio"] == 3
    assert "note" not in data
    [event] = _events(session, instance, "retried")
    assert event.actor == "olga"
    assert event.detail["mode"] == "replace"


def test_bulk_retry_touches_only_the_selected_instances(session):
    first, second, third = _failed(session, 3)
    log = run_bulk_and_record(
        session,
        OPS,
        "retry",
        {first.id: None, third.id: None},
        now=LATER,
        params={"data": {"divisor": 5}},
    )
    assert log.counts == {"ok": 2}
    assert [i["outcome"] for i in log.results["items"]] == ["ok", "ok"]
    assert (log.actor, log.action) == ("olga", "bulk_retry")
    for instance in (first, third):
        assert session.get(ProcessInstance, instance.id).status == "running"
        assert _open(session, instance) == ["check"]
        assert len(_events(session, instance, "retried")) == 1
    untouched = session.get(ProcessInstance, second.id)
    assert untouched.status == "error"
    assert _events(session, untouched, "retried") == []
    assert session.scalars(
        select(Incident.status).where(Incident.instance_id == second.id)
    ).all() == ["open"]


def test_bulk_report_says_ok_refused_and_error_per_instance(session):
    failing, still_failing, fine = _failed(session, 3)
    _deploy(session, V1)
    waiting = start_instance(session, OPS, "repairable", now=NOW).instance
    del fine
    results = run_bulk(
        session,
        OPS,
        "retry",
        {failing.id: None, waiting.id: None, 999_999: None},
        now=LATER,
        params={"data": {"divisor": 2}},
    )
    assert [r.outcome for r in results] == ["ok", "refused", "refused"]
    assert "not in error" in results[1].message
    assert "does not exist" in results[2].message
    again = run_bulk(
        session, OPS, "retry", {still_failing.id: None}, now=LATER, params={"data": {"total": 1}}
    )
    assert again[0].outcome == "error"
    assert "'work'" in again[0].message
    assert session.get(ProcessInstance, still_failing.id).status == "error"


def test_concurrent_change_gives_conflict_for_that_instance_only(session):
    instances = _failed(session, 3)
    confirmed = {i.id: i.version for i in instances}  # what the confirmation page showed
    # Meanwhile someone else suspends the second one... no: retries it with other data.
    edit_data_and_retry(session, OPS, instances[1].id, {"divisor": 10}, now=NOW)
    session.refresh(instances[1])
    assert instances[1].version != confirmed[instances[1].id]
    suspend_instance(session, OPS, instances[1].id, now=NOW)
    results = run_bulk(
        session, OPS, "terminate", confirmed, now=LATER, params={"reason": "duplicates"}
    )
    assert [r.outcome for r in results] == ["ok", "conflict", "ok"]
    assert "changed since you looked" in results[1].message
    statuses = [session.get(ProcessInstance, i.id).status for i in instances]
    assert statuses == ["terminated", "suspended", "terminated"]
    [event] = _events(session, instances[0], "terminated")
    assert event.actor == "olga"
    assert event.detail == {"reason": "duplicates"}


def test_simple_actions_in_bulk_each_write_an_event(session):
    _deploy(session, V1)
    a, b = (start_instance(session, OPS, "repairable", now=NOW).instance for _ in range(2))
    targets = dict.fromkeys([a.id, b.id])
    assert {r.outcome for r in run_bulk(session, ADMIN, "suspend", targets, now=LATER)} == {"ok"}
    assert {r.outcome for r in run_bulk(session, ADMIN, "resume", targets, now=LATER)} == {"ok"}
    results = run_bulk(
        session, ADMIN, "reassign", targets, now=LATER, params={"to": "rob", "bpmn_id": "review"}
    )
    assert {r.outcome for r in results} == {"ok"}
    moved = run_bulk(
        session, ADMIN, "move", targets, now=LATER, params={"source": "review", "target": "approve"}
    )
    assert {r.outcome for r in moved} == {"ok"}
    for instance in (a, b):
        kinds = [
            e.kind
            for e in session.scalars(
                select(InstanceEvent)
                .where(InstanceEvent.instance_id == instance.id)
                .order_by(InstanceEvent.id)
            )
        ]
        assert kinds[-4:] == ["suspended", "resumed", "task_reassigned", "moved"]
        assert _open(session, instance) == ["approve"]


def test_reassign_open_tasks_gives_them_to_the_user(session):
    _deploy(session, V1)
    instance = start_instance(session, OPS, "repairable", now=NOW).instance
    [task] = reassign_open_tasks(session, OPS, instance.id, "rob", now=LATER, reason="holiday")
    assert task.assignee == "rob"
    with pytest.raises(Conflict, match="no open task at 'approve'"):
        reassign_open_tasks(session, OPS, instance.id, "rob", now=LATER, bpmn_id="approve")


@pytest.mark.parametrize("actor", [REP, MANAGER], ids=["rep", "manager"])
def test_only_ops_and_admins_repair(session, actor):
    [instance] = _failed(session, 1)
    v = instance.definition_id
    calls = [
        lambda: tokens_of(session, actor, instance.id),
        lambda: move_token(session, actor, instance.id, "work", "check", now=LATER),
        lambda: check_migration(session, actor, instance.id, v),
        lambda: migrate_instance(session, actor, instance.id, v, now=LATER),
        lambda: edit_data_and_retry(session, actor, instance.id, {"divisor": 1}, now=LATER),
        lambda: run_bulk(session, actor, "retry", {instance.id: None}, now=LATER),
        lambda: preview_bulk(session, actor, "retry", [instance.id]),
        lambda: reassign_open_tasks(session, actor, instance.id, "rob", now=LATER),
    ]
    for call in calls:
        with pytest.raises(Forbidden):
            call()
    assert session.get(ProcessInstance, instance.id).status == "error"


def test_change_committed_by_another_user_while_bulk_runs_is_a_conflict(
    committing_engine, monkeypatch
):
    if committing_engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time: no other user can commit meanwhile")
    from sqlalchemy.orm import Session

    import engine.repair as repair

    with Session(committing_engine) as setup:
        instances = _failed(setup, 3)
        confirmed = {i.id: i.version for i in instances}
        setup.commit()
    first, second, third = confirmed

    run_retry = repair.BULK_ACTIONS["retry"]

    def retry_while_someone_terminates(session, actor, instance_id, now, params):
        if instance_id == first:  # a second user acts on another instance, in its own transaction
            with Session(committing_engine) as other:
                terminate_instance(other, ADMIN, second, now=now)
                other.commit()
        return run_retry(session, actor, instance_id, now, params)

    monkeypatch.setitem(repair.BULK_ACTIONS, "retry", retry_while_someone_terminates)
    with Session(committing_engine) as session:
        results = run_bulk(
            session, OPS, "retry", confirmed, now=LATER, params={"data": {"divisor": 2}}
        )
        session.commit()
    assert [r.outcome for r in results] == ["ok", "conflict", "ok"], results
    with Session(committing_engine) as check:
        statuses = [check.get(ProcessInstance, i).status for i in (first, second, third)]
    assert statuses == ["running", "terminated", "running"]


def test_bulk_migrate_of_a_mixed_selection_refuses_the_other_process(session):
    _deploy(session, V1)
    mine = start_instance(session, OPS, "repairable", now=NOW).instance
    [other] = _failed(session, 1)
    v2 = _deploy(
        session,
        _chain("repairable", PREP, _user("review"), _user("approve"), _user("extra"), FINISH),
    )
    params = {"definition_id": v2.definition_id}
    preview = preview_bulk(session, OPS, "migrate", [mine.id, other.id], params)
    assert [p.outcome for p in preview] == ["ok", "refused"]
    assert "v2 of 'repairable', not of 'failing'" in preview[1].message
    results = run_bulk(
        session, OPS, "migrate", {mine.id: None, other.id: None}, now=LATER, params=params
    )
    assert [r.outcome for r in results] == ["ok", "refused"]
    assert session.get(ProcessInstance, other.id).definition.process_id == "failing"
