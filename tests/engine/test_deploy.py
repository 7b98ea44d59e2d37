"""Deploying BPMN/DMN: every problem reported with file, line and element; versions immutable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.actor import Actor
from engine.deploy import deploy_files, folder_form_loader
from engine.errors import DeployRejected
from engine.instances import start_instance
from engine.models import Deployment, ProcessDefinition
from engine.tasks import complete_task
from tests.conftest import FIXTURES, NOW

FIXTURE_FORMS = FIXTURES / "forms"


def _rejected(deploy, name):
    with pytest.raises(DeployRejected) as error:
        deploy(name, forms=FIXTURE_FORMS)
    return error.value.problems


def _errors(problems):
    return [(p.file, p.line, p.element_id) for p in problems if p.severity == "error"]


def test_deploy_processes_folder_creates_version_one_of_each(session, deploy):
    result = deploy()
    ids = {p.process_id: p.version for p in result.processes}
    assert {"lead_followup", "quote_review", "quote_notify"} <= set(ids)
    assert set(ids.values()) == {1}
    assert result.created


def test_deploy_identical_content_is_a_no_op(session, deploy):
    first = deploy()
    again = deploy()
    assert not again.created
    assert again.deployment_id == first.deployment_id
    assert session.scalar(select(func.count()).select_from(Deployment)) == 1
    assert session.scalar(select(func.count()).select_from(ProcessDefinition)) == len(
        first.processes
    )


def test_deploy_changed_file_versions_only_the_changed_process(session, deploy, tmp_path):
    deploy()
    source = (FIXTURES.parent.parent.parent / "processes" / "lead_followup.bpmn").read_text()
    changed = tmp_path / "lead_followup.bpmn"
    changed.write_text(source.replace('name="Call the lead"', 'name="Phone the lead"'))
    result = deploy_files(
        session,
        "admin",
        {"lead_followup.bpmn": changed.read_bytes()},
        load_form=folder_form_loader(FIXTURES.parent.parent.parent / "forms"),
        now=NOW,
    )
    assert [(p.process_id, p.version, p.new) for p in result.processes] == [
        ("lead_followup", 2, True)
    ]


@pytest.mark.parametrize(
    ("name", "line", "element", "words"),
    [
        ("billion_laughs.bpmn", 2, None, "DOCTYPE"),
        ("xxe_file.bpmn", 2, None, "DOCTYPE"),
        ("xxe_network.bpmn", 2, None, "DOCTYPE"),
        ("not_well_formed.bpmn", 16, None, "not well-formed"),
        ("xsd_invalid.bpmn", 10, None, "bogus"),
        ("bad_script.bpmn", 11, "calc", "script"),
        ("hostile_script.bpmn", 10, "evil", "__class__"),
        ("bad_condition.bpmn", None, "flow_yes", "condition"),
        ("unquoted_timer.bpmn", 11, "wait", 'must be quoted: write "P3D"'),
        ("invalid_timer.bpmn", 11, "wait", "ISO 8601"),
        ("missing_called_process.bpmn", 7, "call_missing", "no_such_process"),
        ("missing_decision.bpmn", 7, "decide", "no_such_decision"),
        ("unknown_service.bpmn", 9, "svc", "crm.no_such_operation"),
        ("missing_form.bpmn", 7, "fill", "nowhere/missing.schema.json"),
        ("invalid_form.bpmn", 7, "fill", "not a valid JSON Schema"),
    ],
)
def test_deploy_bad_file_is_rejected_with_line_and_element(
    session, deploy, name, line, element, words
):
    problems = _rejected(deploy, name)
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) >= 1
    first = errors[0]
    assert first.file == name
    if line is not None:
        assert first.line == line, str(first)
    if element is not None:
        assert first.element_id == element, str(first)
    assert words in first.message, str(first)
    assert session.scalar(select(func.count()).select_from(ProcessDefinition)) == 0


def test_deploy_reports_every_problem_at_once(session, deploy):
    problems = _rejected(deploy, "several_problems.bpmn")
    assert {p.element_id for p in problems if p.severity == "error"} == {"calc", "wait", "fill"}


def test_deploy_bad_file_in_a_set_stops_the_whole_set(session, deploy):
    with pytest.raises(DeployRejected):
        deploy("form_ok.bpmn", "bad_script.bpmn", forms=FIXTURE_FORMS)
    assert session.scalar(select(func.count()).select_from(Deployment)) == 0


def test_deploy_task_without_lane_or_form_warns_and_goes_to_initiator(session, deploy):
    result = deploy("plain_spiff_user_script.bpmn", forms=FIXTURE_FORMS)
    messages = [(w.element_id, w.message) for w in result.warnings]
    assert ("review", "no lane: the task goes to the instance's initiator") in messages
    assert ("review", "no form: a confirmation form shows its instructions") in messages
    starter = Actor("sam", frozenset({"rep"}))
    outcome = start_instance(session, starter, "plain_flow", now=NOW)
    [task] = outcome.new_tasks
    assert (task.assignee, task.candidate_user, task.candidate_role) == ("sam", "sam", None)


def test_deploy_camunda_modeler_file_runs_unchanged(session, deploy):
    deploy("camunda_modeler.bpmn", forms=FIXTURE_FORMS)
    actor = Actor("carl", frozenset({"ops"}))
    outcome = start_instance(session, actor, "camunda_flow", now=NOW)
    [task] = outcome.new_tasks
    assert task.bpmn_id == "Activity_1k9x3qe"
    done = complete_task(session, actor, task.id, {"approved": True}, now=NOW)
    assert done.instance.status == "completed"


def test_redeploy_keeps_running_instances_on_their_version(session, deploy, tmp_path, open_task):
    deploy()
    rep = Actor("rita", frozenset({"rep"}))
    old = start_instance(
        session, rep, "lead_followup", now=NOW, data={"lead_name": "A", "budget": 1}
    ).instance
    root = FIXTURES.parent.parent.parent
    source = (root / "processes" / "lead_followup.bpmn").read_text()
    # Version 2 drops the retry loop's one-day wait to two days.
    changed = source.replace('"P1D"', '"P2D"')
    deploy_files(
        session,
        "admin",
        {"lead_followup.bpmn": changed.encode()},
        load_form=folder_form_loader(root / "forms"),
        now=NOW,
    )
    new = start_instance(
        session, rep, "lead_followup", now=NOW, data={"lead_name": "B", "budget": 1}
    ).instance
    assert (old.definition.version, new.definition.version) == (1, 2)
    for instance in (old, new):
        complete_task(
            session, rep, open_task(instance, "call_lead").id, {"outcome": "no_answer"}, now=NOW
        )
    assert old.next_timer_at == NOW + timedelta(days=1)
    assert new.next_timer_at == NOW + timedelta(days=2)
