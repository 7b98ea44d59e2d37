"""Time the ops console at scale on PostgreSQL: the instance list and the heatmap's counts.

Run from the repository root: `.venv/bin/python benchmarks/ops.py` (1,000,000 instances; about
10 minutes, most of it generating rows). `--instances 20000` makes a quick trial.

Rows are generated with INSERT … SELECT generate_series over the real deployed processes: every
instance serves a lead or an opportunity of 200 reps' 100,000 customers; running and suspended
instances have an open human task at one of their process's user tasks, waiting ones a timer or
a message subscription, failed ones an open incident; finished ones keep a completed task.
Pages are timed through the Flask test client (server time: query + render), as an ops user.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text
from werkzeug.security import generate_password_hash

from engine.db import create_db_engine
from tests.conftest import FORMS, PROCESSES, migrate_to_head
from tests.pgserver import start_postgres

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
REPS = 200
PASSWORD = "bench password"
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
# Share of instances per status (the rest completed), as a long-running installation has them.
STATUS_SHARES = (
    ("running", 20),
    ("waiting", 10),
    ("error", 2),
    ("suspended", 1),
    ("terminated", 7),
    ("completed", 60),
)


def sql(engine: Engine, statement: str, **params: Any) -> Any:
    with engine.begin() as conn:
        return conn.execute(text(statement), params)


def deploy(url: str) -> None:
    from engine.deploy import collect_files, deploy_files, folder_form_loader
    from webapp import create_app, db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        deploy_files(
            db.session,
            "admin",
            collect_files([PROCESSES]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        db.session.commit()
        db.engine.dispose()


def elements_of(xml: str, process_id: str) -> dict[str, list[str]]:
    """Return the process's user tasks, timer and message catches and scripts, by kind."""
    root = ET.fromstring(xml.encode())
    found: dict[str, list[str]] = {"user": [], "timer": [], "message": [], "script": []}
    for process in root.iter(f"{BPMN}process"):
        if process.get("id") != process_id:
            continue
        for node in process.iter():
            tag, element_id = node.tag.replace(BPMN, ""), node.get("id")
            if element_id is None:
                continue
            if tag in ("userTask", "manualTask"):
                found["user"].append(element_id)
            elif tag in ("scriptTask", "serviceTask", "businessRuleTask"):
                found["script"].append(element_id)
            elif tag in ("intermediateCatchEvent", "boundaryEvent", "receiveTask"):
                if node.find(f"{BPMN}timerEventDefinition") is not None:
                    found["timer"].append(element_id)
                elif node.find(f"{BPMN}messageEventDefinition") is not None or tag == "receiveTask":
                    found["message"].append(element_id)
    return found


def seed_elements(engine: Engine) -> list[tuple[int, str]]:
    """Fill bench_element with each definition's elements; return (definition id, process id)."""
    sql(engine, "CREATE TABLE bench_element (definition_id int, kind text, idx int, bpmn_id text)")
    with engine.connect() as conn:
        definitions = conn.execute(
            text(
                "SELECT d.id, d.process_id, dep.sources ->> d.source_file FROM process_definition d"
                " JOIN deployment dep ON dep.id = d.deployment_id ORDER BY d.id"
            )
        ).all()
    rows = []
    for definition_id, process_id, xml in definitions:
        kinds = elements_of(xml, process_id)
        fallback = next((ids for ids in kinds.values() if ids), ["start"])
        for kind, ids in kinds.items():
            for idx, bpmn_id in enumerate(ids or fallback):
                rows.append({"d": definition_id, "k": kind, "i": idx, "b": bpmn_id})
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO bench_element VALUES (:d, :k, :i, :b)"), rows)
    sql(
        engine,
        "CREATE TABLE bench_kind AS SELECT definition_id, kind, count(*) AS n"
        " FROM bench_element GROUP BY definition_id, kind",
    )
    return [(d, p) for d, p, _ in definitions]


def seed_crm(engine: Engine, customers: int) -> None:
    sql(engine, "INSERT INTO territory (code, name) VALUES ('B', 'Bench')")
    sql(
        engine,
        """INSERT INTO app_user (username, display_name, locale, active, on_leave, created_at,
                                 password_hash)
           SELECT 'rep' || g, 'Rep ' || g, 'en', true, false, :now, NULL
           FROM generate_series(1, :reps) g""",
        now=NOW,
        reps=REPS,
    )
    sql(engine, "INSERT INTO user_role (user_id, role) SELECT id, 'rep' FROM app_user")
    sql(
        engine,
        """INSERT INTO app_user (username, display_name, locale, active, on_leave, created_at,
                                 password_hash)
           VALUES ('olga', 'Olga Ops', 'en', true, false, :now, :hash)""",
        now=NOW,
        hash=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
    )
    sql(
        engine,
        "INSERT INTO user_role (user_id, role) SELECT id, 'ops' FROM app_user"
        " WHERE username = 'olga'",
    )
    sql(
        engine,
        """INSERT INTO customer (name, name_key, tier, owner_id, locked, created_at)
           SELECT 'Customer ' || g, 'customer ' || g, 'C',
                  (SELECT min(id) FROM app_user) + g % :reps, false, :now
           FROM generate_series(1, :n) g""",
        now=NOW,
        n=customers,
        reps=REPS,
    )
    # One lead and one opportunity per customer, owned by the customer's owner.
    sql(
        engine,
        """INSERT INTO lead (name, owner_id, status, customer_id, created_at)
           SELECT 'Lead ' || c.id, c.owner_id, 'working', c.id, :now FROM customer c""",
        now=NOW,
    )
    sql(
        engine,
        """INSERT INTO opportunity (customer_id, owner_id, name, amount, currency, pipeline,
                                    stage_win_rate, status, created_at)
           SELECT c.id, c.owner_id, 'Deal ' || c.id, 1000, 'CNY', 'new_business', 10, 'open', :now
           FROM customer c""",
        now=NOW,
    )


def seed_instances(
    engine: Engine, definitions: list[tuple[int, str]], instances: int, customers: int
) -> None:
    """Generate the instances and their live rows; 40% serve the first process (lead_to_cash)."""
    ids = [d for d, _ in definitions]
    main = next((d for d, p in definitions if p == "lead_to_cash"), ids[0])
    others = [d for d in ids if d != main]
    bounds, total = [], 0
    for status, share in STATUS_SHARES:
        total += share
        bounds.append(f"WHEN g % 100 < {total} THEN '{status}'")
    status_case = "CASE " + " ".join(bounds) + " END"
    sql(
        engine,
        f"""INSERT INTO process_instance (definition_id, process_id, business_key, subject_type,
                subject_id, status, state, serializer_version, state_token, version, started_by,
                started_at, updated_at, ended_at)
           SELECT x.definition_id, d.process_id, 'BK-' || x.g,
                  CASE WHEN x.g % 2 = 0 THEN 'lead' ELSE 'opportunity' END,
                  (SELECT min(id) FROM lead) + x.g % :customers,
                  x.status, '{{}}', '1', md5(x.g::text), 1, 'rep1',
                  x.started, x.started + (x.g % 200) * interval '1 hour',
                  CASE WHEN x.status IN ('completed', 'terminated')
                       THEN x.started + (x.g % 200) * interval '1 hour' END
           FROM (SELECT g,
                        CASE WHEN g % 10 < 4 THEN :main
                             ELSE (:others)[1 + (g / 10) % cardinality(:others)]
                        END AS definition_id,
                        {status_case} AS status,
                        :now - ((:n - g) * interval '1 minute') * (730.0 * 24 * 60 / :n)
                          AS started
                 FROM generate_series(1, :n) g) x
           JOIN process_definition d ON d.id = x.definition_id""",
        main=main,
        others=others,
        now=NOW,
        n=instances,
        customers=customers,
    )
    # The subject ids above point at leads; odd instances serve the same-numbered opportunity.
    sql(
        engine,
        """UPDATE process_instance SET subject_id = subject_id - (SELECT min(id) FROM lead)
                                                  + (SELECT min(id) FROM opportunity)
           WHERE subject_type = 'opportunity'""",
    )
    live_rows(engine)


def _element(kind: str) -> str:
    # The element of `kind` an instance is at: picked by instance id among its process's ones.
    return f"""JOIN bench_kind k ON k.definition_id = pi.definition_id AND k.kind = '{kind}'
               JOIN bench_element e ON e.definition_id = pi.definition_id AND e.kind = '{kind}'
                                   AND e.idx = pi.id % k.n"""


def live_rows(engine: Engine) -> None:
    sql(
        engine,
        f"""INSERT INTO human_task (instance_id, task_id, process_id, bpmn_id, title, lane,
                candidate_role, assignee, status, properties, subject_type, subject_id, created_at,
                completed_at, completed_by)
           SELECT pi.id, md5(pi.id::text || 'h'), pi.process_id, e.bpmn_id, e.bpmn_id, 'Rep',
                  'rep', 'rep' || (1 + pi.id % {REPS}),
                  CASE WHEN pi.status IN ('running', 'suspended') THEN 'open' ELSE 'completed' END,
                  '{{}}', pi.subject_type, pi.subject_id,
                  pi.updated_at - (pi.id % 240) * interval '1 hour',
                  CASE WHEN pi.status IN ('running', 'suspended') THEN NULL ELSE pi.updated_at END,
                  CASE WHEN pi.status IN ('running', 'suspended') THEN NULL ELSE 'rep1' END
           FROM process_instance pi {_element("user")}
           WHERE pi.status IN ('running', 'suspended', 'completed', 'terminated')""",
    )
    sql(
        engine,
        f"""INSERT INTO instance_timer (instance_id, task_id, bpmn_id, fire_at, status, attempts,
                                        created_at)
           SELECT pi.id, md5(pi.id::text || 't'), e.bpmn_id,
                  pi.updated_at + interval '3 days', 'waiting', 0, pi.updated_at
           FROM process_instance pi {_element("timer")}
           WHERE pi.status = 'waiting' AND pi.id % 2 = 0""",
    )
    sql(
        engine,
        f"""INSERT INTO message_subscription (instance_id, task_id, bpmn_id, message_name,
                                              correlation_key, created_at)
           SELECT pi.id, md5(pi.id::text || 'm'), e.bpmn_id, 'payment_received',
                  pi.business_key, pi.updated_at
           FROM process_instance pi {_element("message")}
           WHERE pi.status = 'waiting' AND pi.id % 2 = 1""",
    )
    sql(
        engine,
        f"""INSERT INTO incident (instance_id, task_id, bpmn_id, element_name, line, error_type,
                                  message, status, created_at, resolved_at, resolved_by)
           SELECT pi.id, md5(pi.id::text || 'i'), e.bpmn_id, e.bpmn_id, 1 + pi.id % 9,
                  'ZeroDivisionError', 'division by zero',
                  CASE WHEN pi.status = 'error' THEN 'open' ELSE 'resolved' END, pi.updated_at,
                  CASE WHEN pi.status = 'error' THEN NULL ELSE pi.updated_at END,
                  CASE WHEN pi.status = 'error' THEN NULL ELSE 'olga' END
           FROM process_instance pi {_element("script")}
           WHERE pi.status = 'error' OR (pi.status = 'completed' AND pi.id % 50 = 0)""",
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def time_get(client: Any, path: str, repeat: int) -> tuple[float, float, int]:
    client.get(path)  # warm-up: the first run pays for plans and caches
    timings = []
    size = 0
    for _ in range(repeat):
        begun = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - begun) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code}")
        size = len(response.data)
    return statistics.median(timings), percentile(timings, 0.95), size


def scenarios(engine: Engine, instances: int) -> list[tuple[str, str]]:
    """Return (label, path) for the list pages and overlays to time."""
    with engine.connect() as conn:
        main = conn.execute(
            text(
                "SELECT definition_id, count(*) FROM process_instance GROUP BY definition_id"
                " ORDER BY 2 DESC, 1 LIMIT 1"
            )
        ).one()[0]
        small = conn.execute(
            text(
                "SELECT definition_id FROM process_instance GROUP BY definition_id"
                " ORDER BY count(*), 1 LIMIT 1"
            )
        ).scalar_one()
        process = conn.execute(
            text("SELECT process_id FROM process_definition WHERE id = :d"), {"d": main}
        ).scalar_one()
        busy_task = conn.execute(
            text(
                "SELECT bpmn_id FROM human_task WHERE status = 'open'"
                " GROUP BY bpmn_id ORDER BY count(*) DESC LIMIT 1"
            )
        ).scalar_one()
        timer = conn.execute(
            text("SELECT bpmn_id FROM instance_timer GROUP BY bpmn_id ORDER BY count(*) LIMIT 1")
        ).scalar_one()
        customer = conn.execute(text("SELECT min(id) + 4321 FROM customer")).scalar_one()
        deep = conn.execute(
            text("SELECT id FROM process_instance ORDER BY id OFFSET :o LIMIT 1"),
            {"o": instances // 2},
        ).scalar_one()
    return [
        ("list: no filter, first page", "/ops/instances"),
        ("list: no filter, deep page (middle of 1M)", f"/ops/instances?before={deep}"),
        ("list: status=error", "/ops/instances?status=error"),
        ("list: in error + process", f"/ops/instances?in_error=1&process={process}"),
        (
            "list: process + running, deep page",
            f"/ops/instances?process={process}&status=running&before={deep}",
        ),
        ("list: version + waiting", f"/ops/instances?definition={main}&status=waiting"),
        ("list: waiting at busiest task", f"/ops/instances?waiting_at={busy_task}"),
        (
            "list: waiting at a timer + version",
            f"/ops/instances?waiting_at={timer}&definition={main}",
        ),
        ("list: owner=rep7", "/ops/instances?owner=rep7"),
        ("list: owner=rep7 + running", "/ops/instances?owner=rep7&status=running"),
        ("list: customer", f"/ops/instances?customer={customer}"),
        ("list: business key prefix", "/ops/instances?key=BK-12345*"),
        ("list: business key exact", "/ops/instances?key=BK-4242"),
        (
            "list: started in a month + completed",
            "/ops/instances?started_from=2026-01-01&started_to=2026-01-31&status=completed",
        ),
        ("list: idle > 30 days", "/ops/instances?idle_days=30"),
        (
            "list: updated in a week + suspended",
            "/ops/instances?updated_from=2026-10-01&updated_to=2026-10-07&status=suspended",
        ),
        ("heatmap counts: biggest version (JSON)", f"/ops/heatmap/{main}.json"),
        ("heatmap page: biggest version", f"/ops/heatmap?process={process}&definition={main}"),
        ("heatmap counts: smallest version (JSON)", f"/ops/heatmap/{small}.json"),
    ]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def timed(label: str, step: Callable[[], Any]) -> Any:
    begun = time.perf_counter()
    result = step()
    print(f"  {label}: {time.perf_counter() - begun:.0f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    server = start_postgres()
    if server is None:
        raise SystemExit("PostgreSQL is not installed")
    begun = time.perf_counter()
    try:
        print(f"Generating {args.instances:,} instances in PostgreSQL …", flush=True)
        timed("migrate", lambda: migrate_to_head(server.url))
        timed("deploy processes/", lambda: deploy(server.url))
        engine = create_db_engine(server.url)
        definitions = seed_elements(engine)
        customers = min(args.customers, max(args.instances // 10, 100))
        timed("customers, leads, deals", lambda: seed_crm(engine, customers))
        timed(
            "instances and live rows",
            lambda: seed_instances(engine, definitions, args.instances, customers),
        )
        counts = {
            table: sql(engine, f"SELECT count(*) FROM {table}").scalar_one()
            for table in (
                "process_instance",
                "human_task",
                "instance_timer",
                "message_subscription",
                "incident",
            )
        }
        version = sql(engine, "SHOW server_version").scalar_one()
        paths = scenarios(engine, args.instances)
        engine.dispose()
        rows = run_pages(server.url, paths, args.repeat)
    finally:
        server.stop()
    print(f"\nOps console benchmark, {datetime.now(UTC):%Y-%m-%d}")
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores (shared with other work); "
        f"Python {platform.python_version()}; PostgreSQL {version}"
    )
    print("Rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    print(
        f"\nServer time per request through the Flask test client, {args.repeat} requests "
        "after one warm-up; target <= 200 ms\n"
    )
    header = ["page", "p50 ms", "p95 ms", "KB"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(f"\nTook {time.perf_counter() - begun:.0f} s.")


def run_pages(url: str, paths: list[tuple[str, str]], repeat: int) -> list[list[str]]:
    from webapp import create_app

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False}
    )
    client = app.test_client()
    response = client.post("/login", data={"username": "olga", "password": PASSWORD})
    if response.status_code != 302:
        raise SystemExit("could not sign in as the ops user")
    rows = []
    for label, path in paths:
        p50, p95, size = time_get(client, path, repeat)
        rows.append([label, f"{p50:.1f}", f"{p95:.1f}", f"{size / 1024:.0f}"])
        print(f"  {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
    return rows


if __name__ == "__main__":
    main()
