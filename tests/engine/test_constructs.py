"""DMN decisions, call activities, parallel lanes, service tasks and long automatic chains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from engine.actor import Actor
from engine.deploy import deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.operations import register_operation
from engine.scripting import StagecraftScriptEngine
from engine.stepping import run_automatic_tasks
from engine.tasks import complete_task
from engine.views import describe_instance
from tests.conftest import FIXTURES, NOW

REP = Actor("rita", frozenset({"rep"}))
BOSSES = {
    "manager": Actor("mona", frozenset({"manager"})),
    "director": Actor("dora", frozenset({"director"})),
}


@pytest.mark.parametrize(
    ("discount", "level"),
    [(3, "none"), (5, "none"), (10, "manager"), (15, "manager"), (30, "director")],
)
def test_quote_review_dmn_routes_each_rule_row(session, deploy, round_trip, discount, level):
    deploy()
    outcome = start_instance(
        session, REP, "quote_review", now=NOW, data={"discount": discount, "amount": 50000}
    )
    instance = outcome.instance
    round_trip(instance)
    assert describe_instance(session, instance)["data"]["level"] == level
    if level == "none":
        assert instance.status == "completed"
        return
    [task] = outcome.new_tasks
    assert task.candidate_role == level
    done = complete_task(session, BOSSES[level], task.id, {"decision": "approve"}, now=NOW)
    round_trip(instance)
    assert done.instance.status == "completed"
    # The call activity ran its own process and handed its data back.
    assert describe_instance(session, instance)["data"]["notified"] is True


def test_quote_review_reject_requires_a_comment(session, deploy):
    from engine.errors import InvalidInput

    deploy()
    [task] = start_instance(
        session, REP, "quote_review", now=NOW, data={"discount": 10, "amount": 1}
    ).new_tasks
    with pytest.raises(InvalidInput) as error:
        complete_task(session, BOSSES["manager"], task.id, {"decision": "reject"}, now=NOW)
    assert "comment" in error.value.fields


def test_parallel_approvals_open_two_lanes_and_join(session, deploy, round_trip):
    deploy("parallel_approvals.bpmn", forms=FIXTURES / "forms")
    outcome = start_instance(session, REP, "parallel_flow", now=NOW)
    roles = sorted(t.candidate_role for t in outcome.new_tasks)
    assert roles == ["finance", "manager"]
    first, second = sorted(outcome.new_tasks, key=lambda t: t.candidate_role)
    assert (
        complete_task(
            session, Actor("fin", frozenset({"finance"})), first.id, {}, now=NOW
        ).instance.status
        == "running"
    )
    round_trip(outcome.instance)
    assert (
        complete_task(session, BOSSES["manager"], second.id, {}, now=NOW).instance.status
        == "completed"
    )


_SERVICE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="serviced" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:serviceTask id="svc" name="Look up the discount">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="test.discount_for" resultVariable="offer">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="tier" type="str" value="tier"/>
            <spiffworkflow:parameter id="amount" type="int" value="amount"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="svc"/>
    <bpmn:sequenceFlow id="f2" sourceRef="svc" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@register_operation("test.discount_for", {"tier": str, "amount": int})
def _discount_for(ctx, tier, amount):
    if tier not in ("A", "B"):
        from engine.operations import OperationError

        raise OperationError(f"unknown tier {tier!r}")
    return {"percent": 10 if tier == "A" else 5, "for": ctx.business_key, "amount": amount}


@pytest.mark.parametrize(("tier", "status"), [("A", "completed"), ("Z", "error")])
def test_service_task_calls_registered_operation(session, tier, status):
    deploy_files(
        session,
        "admin",
        {"serviced.bpmn": _SERVICE.encode()},
        load_form=folder_form_loader(FIXTURES / "forms"),
        now=NOW,
    )
    outcome = start_instance(
        session,
        REP,
        "serviced",
        now=NOW,
        business_key="quote:9",
        data={"tier": tier, "amount": "1200"},
    )
    assert outcome.instance.status == status
    if status == "completed":
        offer = describe_instance(session, outcome.instance)["data"]["offer"]
        assert offer == {"percent": 10, "for": "quote:9", "amount": 1200}
    else:
        assert outcome.incident is not None
        assert outcome.incident.bpmn_id == "svc"
        assert "unknown tier 'Z'" in outcome.incident.message


def _parse(path: Path, process_id: str) -> BpmnWorkflow:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_file(str(path))
    workflow = BpmnWorkflow(parser.get_spec(process_id), parser.get_subprocess_specs(process_id))
    workflow.script_engine = StagecraftScriptEngine()
    return workflow


def test_step_loop_runs_a_chain_of_100_scripts():
    workflow = _parse(FIXTURES / "script_chain_100.bpmn", "script_chain")
    ran = run_automatic_tasks(workflow)
    [ready] = workflow.get_tasks(state=TaskState.READY, manual=True)
    assert ready.task_spec.bpmn_id == "done_check"
    assert ready.data["n"] == 99
    assert ran >= 100


def test_step_loop_keeps_going_where_the_library_loop_stalls():
    # The library's task iterator stops at depth 1000, which a loop reaches after 333 rounds.
    workflow = _parse(FIXTURES / "long_loop.bpmn", "long_loop")
    workflow.get_tasks(state=TaskState.READY)[0].data["limit"] = 400
    run_automatic_tasks(workflow)
    rounds = 0
    while not workflow.completed:
        [task] = [
            t for t in workflow.tasks.values() if t.state == TaskState.READY and t.task_spec.manual
        ]
        task.run()
        run_automatic_tasks(workflow)
        rounds += 1
    assert rounds == 400
    assert workflow.last_task.data["i"] == 400


def test_instance_state_does_not_store_the_spec(session, deploy):
    deploy()
    instance = start_instance(
        session, REP, "lead_followup", now=NOW, data={"lead_name": "A", "budget": 1}
    ).instance
    session.flush()
    stored = json.loads(instance.state)
    assert "spec" not in stored
    assert "subprocess_specs" not in stored
    assert instance.serializer_version == "1.5"
    assert len(instance.state) < len(instance.definition.spec_json) / 5
