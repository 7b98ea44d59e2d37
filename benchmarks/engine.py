"""Time the persisted engine against raw SpiffWorkflow: instances/s and cost per completion.

Run from the repository root: `.venv/bin/python benchmarks/engine.py` (or `make bench`).
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

# Run as a script, benchmarks/ comes first on sys.path and this file would shadow `engine`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from engine.actor import Actor
from engine.db import create_db_engine
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.scripting import StagecraftScriptEngine
from engine.specs import SERIALIZER
from engine.state import LIVE_CACHE
from engine.tasks import complete_task
from tests.conftest import migrate_to_head
from tests.pgserver import start_postgres

ROOT = Path(__file__).resolve().parent.parent
LEAD_FILE = ROOT / "processes" / "lead_followup.bpmn"
LOOP_FILE = ROOT / "tests" / "engine" / "bpmn" / "long_loop.bpmn"
LEAD_START = {"lead_name": "x", "budget": 1}
LEAD_ANSWER = {"outcome": "not_interested"}
LOOP_START = {"limit": 1000}
RAW = "raw SpiffWorkflow, full save+restore"
REP = Actor("rita", frozenset({"rep"}))
N_INSTANCES = 300
N_WARMUP = 20
N_COMPLETIONS = 210
N_ROUNDS = 5
# 1-based completion numbers whose median stands for "around #5", "#50" and "#200".
WINDOWS = {"#5": (3, 7), "#50": (45, 55), "#200": (195, 205)}


class Clock:
    """Hand out fixed, aware UTC times, one second apart."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def tick(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


# --- raw SpiffWorkflow, saved and restored in full after every change --------------------------


def parse(path: Path, process_id: str) -> tuple[Any, dict[str, Any]]:
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(path))
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


def save_restore(workflow: BpmnWorkflow) -> BpmnWorkflow:
    restored = SERIALIZER.deserialize_json(SERIALIZER.serialize_json(workflow))
    restored.script_engine = StagecraftScriptEngine()
    return restored


def raw_start(spec: Any, subprocess_specs: dict[str, Any], data: dict[str, Any]) -> BpmnWorkflow:
    workflow = BpmnWorkflow(spec, subprocess_specs)
    workflow.script_engine = StagecraftScriptEngine()
    for task in [workflow.task_tree, *workflow.get_tasks(state=TaskState.READY)]:
        task.data.update(data)
    workflow.do_engine_steps()
    return save_restore(workflow)


def raw_complete(workflow: BpmnWorkflow, data: dict[str, Any]) -> BpmnWorkflow:
    task = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
    task.data.update(data)
    task.run()
    workflow.do_engine_steps()
    return save_restore(workflow)


def raw_instances(n: int) -> float:
    """Return the seconds taken to start and finish n lead follow-ups."""
    spec, subprocess_specs = parse(LEAD_FILE, "lead_followup")
    started = time.perf_counter()
    for _ in range(n):
        workflow = raw_complete(raw_start(spec, subprocess_specs, LEAD_START), LEAD_ANSWER)
        assert workflow.is_completed()
    return time.perf_counter() - started


def raw_completions(n: int) -> list[float]:
    spec, subprocess_specs = parse(LOOP_FILE, "long_loop")
    workflow = raw_start(spec, subprocess_specs, LOOP_START)
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        workflow = raw_complete(workflow, {})
        timings.append(time.perf_counter() - started)
    return timings


# --- ours: one transaction per change, committed ---------------------------------------------


@dataclass
class Database:
    name: str
    engine: Engine
    version: str


def prepare(name: str, url: str, clock: Clock) -> Database:
    migrate_to_head(url)
    engine = create_db_engine(url)
    with Session(engine) as session:
        files = collect_files([LEAD_FILE, LOOP_FILE])
        deploy_files(
            session, "admin", files, load_form=folder_form_loader(ROOT / "forms"), now=clock.tick()
        )
        session.commit()
    version = ".".join(str(part) for part in engine.dialect.server_version_info or ())
    return Database(name, engine, version)


def ours_start(db: Database, clock: Clock, process_id: str, data: dict[str, Any]) -> int:
    """Start an instance; return the id of the task it waits on."""
    with Session(db.engine) as session:
        outcome = start_instance(session, REP, process_id, now=clock.tick(), data=data)
        # The id of the task it opened, as the web app takes it to show the next form.
        task_id = outcome.new_tasks[0].id
        session.commit()
    return task_id


def ours_complete(
    db: Database, clock: Clock, task_id: int, data: dict[str, Any], cold: bool
) -> tuple[str, int | None]:
    """Complete a task; return the instance's status and the next task's id, if any."""
    if cold:
        LIVE_CACHE.clear()  # as after a restart, or when another worker made the last change
    with Session(db.engine) as session:
        outcome = complete_task(session, REP, task_id, data, now=clock.tick())
        found = outcome.instance.status, outcome.new_tasks[0].id if outcome.new_tasks else None
        session.commit()
    return found


def ours_instances(db: Database, clock: Clock, n: int, cold: bool) -> float:
    started = time.perf_counter()
    for _ in range(n):
        task_id = ours_start(db, clock, "lead_followup", LEAD_START)
        status, _ = ours_complete(db, clock, task_id, LEAD_ANSWER, cold)
        assert status == "completed", status
    return time.perf_counter() - started


def ours_completions(db: Database, clock: Clock, n: int, cold: bool) -> list[float]:
    next_task: int | None = ours_start(db, clock, "long_loop", LOOP_START)
    timings = []
    for _ in range(n):
        assert next_task is not None, "the loop ended early"
        started = time.perf_counter()
        _, next_task = ours_complete(db, clock, next_task, {}, cold)
        timings.append(time.perf_counter() - started)
    return timings


# --- running and reporting -------------------------------------------------------------------


@contextmanager
def databases(clock: Clock) -> Iterator[list[Database]]:
    with tempfile.TemporaryDirectory(prefix="stagecraft-bench-") as tmp:
        found = [prepare("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", clock)]
        server = start_postgres()
        try:
            if server is not None:
                found.append(prepare("PostgreSQL", server.url, clock))
            yield found
        finally:
            for db in found:
                db.engine.dispose()
            if server is not None:
                server.stop()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def rate_row(label: str, seconds: float, raw_seconds: float) -> list[str]:
    ms, ratio = seconds / N_INSTANCES * 1000, seconds / raw_seconds
    return [label, str(N_INSTANCES), f"{1000 / ms:.1f}", f"{ms:.2f}", f"{ratio:.2f}"]


def variants(
    clock: Clock, dbs: list[Database], raw: Callable[[int], Any], ours: Callable[..., Any]
) -> dict[str, Callable[[int], Any]]:
    found = {RAW: raw}
    for db in dbs:
        for cold in (False, True):
            found[f"ours, {db.name}" + (", no live cache" if cold else "")] = partial(
                ours, db, clock, cold=cold
            )
    return found


def throughput(clock: Clock, dbs: list[Database]) -> list[list[str]]:
    """Time N instances per variant, in interleaved rounds so that load drift hits all alike."""
    runs = variants(clock, dbs, raw_instances, ours_instances)
    for run in runs.values():
        run(N_WARMUP)
    totals = dict.fromkeys(runs, 0.0)
    for _ in range(N_ROUNDS):
        for label, run in runs.items():
            totals[label] += run(N_INSTANCES // N_ROUNDS)
    return [rate_row(label, seconds, totals[RAW]) for label, seconds in totals.items()]


def long_instance(clock: Clock, dbs: list[Database]) -> list[list[str]]:
    """Run one long instance per variant and round; pool each window's timings over rounds."""
    runs = variants(clock, dbs, raw_completions, ours_completions)
    for run in runs.values():
        run(N_WARMUP)
    timings: dict[str, list[list[float]]] = {label: [] for label in runs}
    for _ in range(N_ROUNDS):
        for label, run in runs.items():
            timings[label].append(run(N_COMPLETIONS))
    rows = []
    for label, per_round in timings.items():
        m = {
            key: statistics.median(t for ts in per_round for t in ts[first - 1 : last]) * 1000
            for key, (first, last) in WINDOWS.items()
        }
        rows.append([label, *(f"{m[k]:.2f}" for k in WINDOWS), f"{m['#200'] / m['#5']:.2f}"])
    return rows


def main() -> None:
    logging.disable(logging.INFO)  # Alembic announces every migration
    clock = Clock()
    begun = time.perf_counter()
    with databases(clock) as dbs:
        versions = {db.name: db.version for db in dbs}
        rates = throughput(clock, dbs)
        steps = long_instance(clock, dbs)
    print(f"Engine benchmark, {datetime.now(UTC):%Y-%m-%d}")
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"SQLite {versions['SQLite']}; PostgreSQL {versions.get('PostgreSQL', 'not installed')}"
    )
    print_table(
        f"1. lead_followup, start + complete call_lead: N={N_INSTANCES} instances per variant "
        f"in {N_ROUNDS} interleaved rounds, after {N_WARMUP} warm-up",
        ["variant", "N", "instances/s", "ms/instance", "time vs raw (target <= 2)"],
        rates,
    )
    print_table(
        f"2. long_loop, {N_COMPLETIONS} completions of `step` in one instance, {N_ROUNDS} "
        "interleaved instances per variant: ms, median of completions #3-7, #45-55, #195-205",
        ["variant", *WINDOWS, "#200 / #5 (target <= 3)"],
        steps,
    )
    print(f"\nTook {time.perf_counter() - begun:.0f} s.")


if __name__ == "__main__":
    main()
