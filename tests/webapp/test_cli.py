"""The `stagecraft` command: deploy, start, show, list and complete, as an operator uses them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES, PROCESSES


@pytest.fixture
def cli(db_url, tmp_path):
    from webapp import create_app, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "TESTING": True})
    runner = app.test_cli_runner()

    def run(*args: str):
        return runner.invoke(args=list(args), catch_exceptions=False)

    yield run
    with app.app_context():
        from engine.db import Base

        for table in reversed(Base.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


def test_cli_deploy_start_complete_show(cli):
    deployed = cli("processes", "deploy", str(PROCESSES), "--json")
    assert deployed.exit_code == 0, deployed.output
    versions = {p["process_id"]: p["version"] for p in json.loads(deployed.output)["processes"]}
    assert versions["lead_followup"] == 1

    started = cli(
        "instances",
        "start",
        "lead_followup",
        "--data",
        '{"lead_name": "Acme", "budget": 20000}',
        "--business-key",
        "lead:1",
        "--json",
    )
    assert started.exit_code == 0, started.output
    instance = json.loads(started.output)
    assert instance["status"] == "running"
    [task] = instance["open_tasks"]
    assert task["title"] == "Call the lead"

    listed = json.loads(cli("tasks", "list", "--instance", str(instance["id"]), "--json").output)
    assert [t["id"] for t in listed] == [task["id"]]

    bad = cli(
        "tasks", "complete", str(task["id"]), "--data", '{"outcome": "perhaps"}', "--as", "rita"
    )
    assert bad.exit_code == 1
    assert "outcome" in bad.output

    done = cli(
        "tasks",
        "complete",
        str(task["id"]),
        "--data",
        '{"outcome": "not_interested"}',
        "--as",
        "rita",
    )
    assert done.exit_code == 0, done.output
    assert "is completed" in done.output

    shown = cli("instances", "show", str(instance["id"]))
    assert "completed" in shown.output
    assert "task_completed" in shown.output
    assert "rita" in shown.output


def test_cli_deploy_of_bad_file_lists_every_problem_and_exits_1(cli):
    result = cli(
        "processes",
        "deploy",
        str(FIXTURES / "several_problems.bpmn"),
        "--forms",
        str(FIXTURES / "forms"),
        "--json",
    )
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    assert {p["element_id"] for p in problems if p["severity"] == "error"} == {
        "calc",
        "wait",
        "fill",
    }
    assert all(p["line"] for p in problems)


def test_cli_deploy_twice_reports_unchanged(cli):
    cli("processes", "deploy", str(PROCESSES))
    again = cli("processes", "deploy", str(PROCESSES))
    assert again.exit_code == 0
    assert "unchanged" in again.output


def test_cli_rules_run_once_fires_due_timers_at_the_given_time(cli):
    cli("processes", "deploy", str(PROCESSES))
    started = json.loads(
        cli(
            "instances",
            "start",
            "lead_followup",
            "--data",
            '{"lead_name": "Acme", "budget": 1}',
            "--json",
        ).output
    )
    task_id = started["open_tasks"][0]["id"]
    cli("tasks", "complete", str(task_id), "--data", '{"outcome": "no_answer"}', "--as", "rita")
    early = cli("rules", "run-once", "fire_timers", "--now", "2000-01-01T00:00:00")
    assert early.exit_code == 0
    assert "0 rows" in early.output
    later = cli("rules", "run-once", "fire_timers", "--now", "2100-01-01T00:00:00+00:00")
    assert "1 rows" in later.output
    shown = cli("instances", "show", str(started["id"]))
    assert "timer_fired" in shown.output
    unknown = cli("rules", "run-once", "no_such_rule")
    assert unknown.exit_code != 0
