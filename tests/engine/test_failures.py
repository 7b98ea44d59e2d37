"""Failing and hostile scripts leave the instance in error with an incident; ops can retry."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.actor import Actor
from engine.deploy import deploy_files, folder_form_loader
from engine.errors import Conflict, Forbidden
from engine.instances import retry_instance, start_instance, suspend_instance, terminate_instance
from engine.models import HumanTask, Incident
from engine.tasks import complete_task
from engine.views import describe_instance
from tests.conftest import FIXTURES, NOW

OPS = Actor("olga", frozenset({"ops"}))
REP = Actor("rita", frozenset({"rep"}))

# A tiny process written by hand: prepare (script) -> work (SCRIPT) -> check (user task) -> end.
_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  id="d" targetNamespace="t">
  <bpmn:process id="scripted" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="prepare" name="Prepare">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>prepared = True</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="work" name="Do the work">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>total = 10
SCRIPT</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="check" name="Check">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare"/>
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="work"/>
    <bpmn:sequenceFlow id="f3" sourceRef="work" targetRef="check"/>
    <bpmn:sequenceFlow id="f4" sourceRef="check" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _deploy_script(session, script: str) -> None:
    xml = _PROCESS.replace("SCRIPT", script.replace("<", "&lt;").replace(">", "&gt;"))
    deploy_files(
        session,
        "admin",
        {"scripted.bpmn": xml.encode()},
        load_form=folder_form_loader(FIXTURES / "forms"),
        now=NOW,
    )


def test_failing_script_leaves_instance_in_error_with_incident(session, round_trip):
    _deploy_script(session, "ratio = total / divisor")
    instance = start_instance(session, REP, "scripted", now=NOW, data={"divisor": 0}).instance
    round_trip(instance)
    assert instance.status == "error"
    incident = session.scalars(select(Incident).where(Incident.instance_id == instance.id)).one()
    assert incident.bpmn_id == "work"
    assert incident.element_name == "Do the work"
    assert incident.line == 2
    assert incident.error_type == "ZeroDivisionError"
    assert "division by zero" in incident.message
    # The step before the failure is kept; the failed script's half-done work is not.
    data = describe_instance(session, instance)["data"]
    assert data["prepared"] is True
    assert "total" not in data


def test_retry_after_fixing_data_runs_on(session, round_trip):
    _deploy_script(session, "ratio = total / divisor")
    instance = start_instance(session, REP, "scripted", now=NOW, data={"divisor": 0}).instance
    with pytest.raises(Forbidden):
        retry_instance(session, REP, instance.id, now=NOW, data_patch={"divisor": 4})
    outcome = retry_instance(session, OPS, instance.id, now=NOW, data_patch={"divisor": 4})
    round_trip(instance)
    assert instance.status == "running"
    [task] = outcome.new_tasks
    assert task.bpmn_id == "check"
    assert session.scalars(
        select(Incident.status).where(Incident.instance_id == instance.id)
    ).all() == ["resolved"]
    assert describe_instance(session, instance)["data"]["ratio"] == 2.5


HOSTILE = [
    ("x = ().__class__.__base__.__subclasses__()", "__class__"),
    ("x = [c for c in ().__class__.__mro__]", "__class__"),
    ("g = (lambda: 0).__globals__", "__globals__"),
    ("x = getattr(1, '__cl' + 'ass__')", "getattr"),
    ("x = '{0.__class__}'.format(1)", "format"),
    ("import os", "import"),
    ("x = __import__('os')", "__import__"),
    ("x = open('/etc/passwd').read()", "open"),
    ("x = eval('1+1')", "eval"),
    ("exec('x = 1')", "exec"),
    ("x = compile('1', 's', 'eval')", "compile"),
    ("x = (i for i in []).gi_frame", "gi_frame"),
    ("x = type(1)", "type"),
    ("x = vars()", "vars"),
    ("x = globals()", "globals"),
    ("x = __builtins__", "__builtins__"),
    ("while True:\n    pass", "time"),
    ("x = 10 ** 10 ** 8", "large"),
    ("x = 'a' * 10 ** 10", "large"),
    ("x = list(range(10 ** 9))", "range"),
]


@pytest.mark.parametrize(("script", "word"), HOSTILE, ids=[h[0][:30] for h in HOSTILE])
def test_hostile_script_is_blocked_and_instance_errors(session, monkeypatch, script, word):
    # Deploy-time checks refuse many of these; skip them here so that the run-time sandbox,
    # the last line of defence, is what gets tested.
    from engine import deploy_checks

    with monkeypatch.context() as patched:
        patched.setattr(deploy_checks, "check_script", lambda source, mode="exec": [])
        _deploy_script(session, script)
    instance = start_instance(session, REP, "scripted", now=NOW, data={}).instance
    assert instance.status == "error"
    incident = session.scalars(select(Incident).where(Incident.instance_id == instance.id)).one()
    assert incident.bpmn_id == "work"
    assert word.lower() in incident.message.lower(), incident.message
    # The engine is unharmed: a normal instance still runs.
    _deploy_script(session, "y = 1")
    ok = start_instance(session, REP, "scripted", now=NOW, data={}).instance
    assert ok.status == "running"


def test_hostile_script_is_refused_at_deploy(session, deploy):
    from engine.errors import DeployRejected

    with pytest.raises(DeployRejected) as error:
        _deploy_script(session, "x = ().__class__.__base__.__subclasses__()")
    assert error.value.problems[0].element_id == "work"


def test_suspended_instance_refuses_task_completion_until_resumed(session):
    from engine.instances import resume_instance

    _deploy_script(session, "y = 1")
    instance = start_instance(session, REP, "scripted", now=NOW).instance
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
    with pytest.raises(Forbidden):
        suspend_instance(session, REP, instance.id, now=NOW)
    suspend_instance(session, OPS, instance.id, now=NOW, reason="data check")
    with pytest.raises(Conflict, match="suspended"):
        complete_task(session, REP, task.id, {}, now=NOW)
    resume_instance(session, OPS, instance.id, now=NOW)
    assert complete_task(session, REP, task.id, {}, now=NOW).instance.status == "completed"


def test_terminate_cancels_open_tasks(session):
    _deploy_script(session, "y = 1")
    instance = start_instance(session, REP, "scripted", now=NOW).instance
    terminate_instance(session, OPS, instance.id, now=NOW, reason="duplicate")
    assert instance.status == "terminated"
    statuses = session.scalars(
        select(HumanTask.status).where(HumanTask.instance_id == instance.id)
    ).all()
    assert statuses == ["cancelled"]
