"""The `stagecraft` command: Flask's commands plus processes, instances and tasks.

Each command is one unit of work: it commits once at the end, or rolls back and prints the
domain error with a non-zero exit status.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from engine.actor import Actor
from engine.db import utcnow
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.errors import DeployRejected, EngineError, InvalidInput
from engine.instances import get_instance, start_instance
from engine.tasks import complete_task, list_tasks
from engine.views import describe_instance, describe_task


def _db_session() -> Any:
    from webapp import db

    return db.session


def unit_of_work(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command in one transaction; print domain errors instead of a traceback."""

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        session = _db_session()
        try:
            result = func(session, *args, **kwargs)
            session.commit()
            return result
        except DeployRejected as exc:
            session.rollback()
            if kwargs.get("as_json"):
                click.echo(
                    json.dumps(
                        {"error": exc.message, "problems": [p.as_dict() for p in exc.problems]},
                        indent=2,
                    )
                )
            else:
                click.echo(exc.message, err=True)
                for problem in exc.problems:
                    click.echo(f"  {problem}", err=True)
            sys.exit(1)
        except InvalidInput as exc:
            session.rollback()
            click.echo(f"error: {exc.message}", err=True)
            for field, messages in exc.fields.items():
                click.echo(f"  {field}: {'; '.join(messages)}", err=True)
            sys.exit(1)
        except EngineError as exc:
            session.rollback()
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)

    return run


def cli_actor(username: str) -> Actor:
    """Return the actor a CLI user acts as.

    TODO(#3): take roles and teams from the CRM's user table once it exists; until then the
    command line is an operator's tool and acts with ops rights.
    """
    return Actor(username, frozenset({"ops"}))


def _parse_json(value: str, option: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=option) from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option)
    return parsed


@click.group("processes", help="Deploy and list BPMN processes.")
def processes_cli() -> None:
    pass


@processes_cli.command("deploy")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--forms",
    "forms_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the forms named in the BPMN are read from (default: forms/).",
)
@click.option("--comment", default=None, help="Why this version was deployed.")
@click.option("--as", "username", default="admin", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@with_appcontext
@unit_of_work
def deploy_command(
    session: Any,
    paths: tuple[Path, ...],
    forms_dir: Path | None,
    comment: str | None,
    username: str,
    as_json: bool,
) -> None:
    forms = forms_dir or Path(current_app.config["FORMS_DIR"])
    result = deploy_files(
        session,
        username,
        collect_files(paths),
        load_form=folder_form_loader(forms),
        now=utcnow(),
        comment=comment,
    )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    state = "deployed" if result.created else "unchanged (identical content already deployed)"
    click.echo(f"deployment {result.deployment_id}: {state}")
    for p in result.processes:
        click.echo(f"  {p.process_id} v{p.version}{'  (new)' if p.new else ''}  {p.name}")
    for warning in result.warnings:
        click.echo(f"  {warning}")


@click.group("instances", help="Start and inspect process instances.")
def instances_cli() -> None:
    pass


@instances_cli.command("start")
@click.argument("process_id")
@click.option("--data", default="{}", help="Initial data as a JSON object.")
@click.option("--business-key", default=None)
@click.option("--as", "username", default="admin", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@unit_of_work
def start_command(
    session: Any, process_id: str, data: str, business_key: str | None, username: str, as_json: bool
) -> None:
    outcome = start_instance(
        session,
        cli_actor(username),
        process_id,
        now=utcnow(),
        data=_parse_json(data, "--data"),
        business_key=business_key,
    )
    view = describe_instance(session, outcome.instance)
    if as_json:
        click.echo(json.dumps(view, indent=2, default=str))
    else:
        click.echo(f"instance {view['id']} of {process_id} v{view['version']}: {view['status']}")
        for task in view["open_tasks"]:
            click.echo(f"  task {task['id']}: {task['title']}")


@instances_cli.command("show")
@click.argument("instance_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@unit_of_work
def show_command(session: Any, instance_id: int, as_json: bool) -> None:
    view = describe_instance(session, get_instance(session, instance_id), history=True)
    if as_json:
        click.echo(json.dumps(view, indent=2, default=str))
        return
    click.echo(f"instance {view['id']}  {view['process_id']} v{view['version']}  {view['status']}")
    click.echo(f"  business key: {view['business_key'] or '-'}   started by {view['started_by']}")
    click.echo(f"  data: {json.dumps(view['data'], default=str)}")
    for task in view["open_tasks"]:
        click.echo(
            f"  open task {task['id']}: {task['title']} (assignee {task['assignee'] or '-'})"
        )
    for incident in view["incidents"]:
        click.echo(
            f"  incident at {incident['bpmn_id']} line {incident['line']}: {incident['message']}"
        )
    for event in view["history"]:
        click.echo(
            f"  {event['at']}  {event['kind']:<16} {event['actor'] or ''} {event['bpmn_id'] or ''}"
        )


@click.group("tasks", help="List and complete human tasks.")
def tasks_cli() -> None:
    pass


@tasks_cli.command("list")
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@unit_of_work
def list_command(session: Any, instance_id: int | None, as_json: bool) -> None:
    tasks = [describe_task(t) for t in list_tasks(session, instance_id=instance_id)]
    if as_json:
        click.echo(json.dumps(tasks, indent=2, default=str))
        return
    for task in tasks:
        who = task["assignee"] or task["candidate_role"] or "-"
        click.echo(f"{task['id']:>6}  instance {task['instance_id']:<6} {task['title']}  ({who})")


@tasks_cli.command("complete")
@click.argument("task_id", type=int)
@click.option("--data", default="{}", help="Form data as a JSON object.")
@click.option("--as", "username", required=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@unit_of_work
def complete_command(session: Any, task_id: int, data: str, username: str, as_json: bool) -> None:
    outcome = complete_task(
        session, cli_actor(username), task_id, _parse_json(data, "--data"), now=utcnow()
    )
    view = describe_instance(session, outcome.instance)
    if as_json:
        click.echo(json.dumps(view, indent=2, default=str))
        return
    click.echo(f"task {task_id} completed; instance {view['id']} is {view['status']}")
    for task in view["open_tasks"]:
        click.echo(f"  next task {task['id']}: {task['title']}")


@click.group("demo", help="Demo data.")
def demo_cli() -> None:
    pass


@demo_cli.command("load")
@click.option("--customers", default=200, show_default=True)
@with_appcontext
@unit_of_work
def demo_load_command(session: Any, customers: int) -> None:
    from crm.demo import DEMO_PASSWORD, load_demo

    result = load_demo(session, now=utcnow(), customers=customers)
    if result.created:
        click.echo(
            f"demo company loaded: {result.customers} customers, {result.leads} leads, "
            f"{result.deals} deals worked through the processes"
        )
    else:
        click.echo("demo company already loaded")
    click.echo(f"demo logins (password '{DEMO_PASSWORD}' for all): {', '.join(result.users)}")


@click.group("rules", help="Run scheduled rules by hand.")
def rules_cli() -> None:
    pass


@rules_cli.command("run-once")
@click.argument("name")
@click.option("--now", "now_text", default=None, help="Run as if it were this ISO time (UTC).")
@with_appcontext
def run_once_command(name: str, now_text: str | None) -> None:
    from rules.runner import RULES, run_rule

    if name not in RULES:
        raise click.BadParameter(
            f"unknown rule; known: {', '.join(sorted(RULES))}", param_hint="NAME"
        )
    now = utcnow()
    if now_text:
        parsed = datetime.fromisoformat(now_text)
        now = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    run = run_rule(_sessionmaker(), name, now)
    click.echo(
        f"{name} at {now.isoformat()}: {run.rows} rows"
        + (f", error: {run.error}" if run.error else "")
    )
    if run.error:
        sys.exit(1)


@click.command("scheduler", help="Run the rule scheduler (one per installation).")
@with_appcontext
def scheduler_command() -> None:
    from rules.scheduler import build_scheduler

    click.echo("scheduler running; Ctrl+C stops it")
    build_scheduler(_sessionmaker(), blocking=True).start()


@click.command("serve", help="Serve the web app, with the scheduler in the same process.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--scheduler/--no-scheduler", default=True, show_default=True)
@with_appcontext
def serve_command(host: str, port: int, scheduler: bool) -> None:
    if scheduler:
        from rules.scheduler import build_scheduler

        build_scheduler(_sessionmaker(), blocking=False).start()
    from werkzeug.serving import run_simple

    # Not app.run(): Flask ignores it inside a CLI command.
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)


def _sessionmaker() -> Any:
    from sqlalchemy.orm import sessionmaker

    from webapp import db

    return sessionmaker(bind=db.engine, expire_on_commit=False)


@click.group("tokens", help="Personal API tokens.")
def tokens_cli() -> None:
    pass


@tokens_cli.command("create")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@with_appcontext
@unit_of_work
def token_create_command(session: Any, username: str, name: str) -> None:
    from crm.directory.services import user_by_username
    from crm.directory.tokens import create_token

    _, text = create_token(session, user_by_username(session, username), name, now=utcnow())
    click.echo(text)


def register_commands(app: Flask) -> None:
    for group in (processes_cli, instances_cli, tasks_cli, demo_cli, rules_cli, tokens_cli):
        app.cli.add_command(group)
    app.cli.add_command(scheduler_command)
    app.cli.add_command(serve_command)


def _create_app() -> Flask:
    from webapp import create_app

    return create_app()


main = FlaskGroup(create_app=_create_app, help="Stagecraft: the sales CRM run by BPMN.")


if __name__ == "__main__":
    main()
