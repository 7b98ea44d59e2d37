"""Time the inbox pages on a large PostgreSQL database, and task completions over HTTP.

Run from the repository root: `.venv/bin/python benchmarks/inbox.py` (or `make bench`); at the
default size (5,000 users, 1,000,000 open and 1,000,000 completed tasks) it takes about
10 minutes on a 2-core VM. A quick trial: `--users 500 --tasks 50000 --samples 20 --seconds 5`.

1. Generate, in SQL, a sales organisation (directors over managers over teams of about ten
   reps), their customers, leads and deals, and open and completed human tasks of the deployed
   processes (assigned, offered to roles and to teams, due at varied times). The instances the
   tasks belong to carry a placeholder state: the inbox never loads it.
2. Request inbox views through the Flask test client, signed in as many different users, and
   report the server time of each: p50, p95 and max.
3. Start gunicorn on the same database and let concurrent clients sign in and complete distinct
   tasks of real `lead_followup` instances through the task page's form: completions per second.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import os
import platform
import pstats
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

# Run as a script, benchmarks/ comes first on sys.path and this file would shadow packages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

import crm  # noqa: F401  (the CRM's operators and lane rules: a lead's call goes to its owner)
from engine.actor import Actor
from engine.db import create_db_engine
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.errors import DeployRejected
from engine.instances import start_instance
from engine.models import HumanTask, ProcessDefinition
from tests.conftest import FORMS, PROCESSES, migrate_to_head
from tests.pgserver import start_postgres

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password"
CUSTOMERS_PER_REP = 40
LEADS_PER_REP = 10
DEALS_PER_REP = 20
TEAM_SIZE = 10  # reps under one manager
TEAMS_PER_DIRECTOR = 10
TARGET_MS = 50
TARGET_PER_S = 200
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sql(engine: Engine, statement: str, **params: Any) -> Any:
    with engine.begin() as conn:
        return conn.execute(text(statement), params)


# --- 1. generating the data ------------------------------------------------------------------


@dataclass(frozen=True)
class Org:
    """Id ranges of the generated people; a team's id is its manager's (or director's) id."""

    directors: int
    managers: int
    others: int
    reps: int

    @property
    def first_manager(self) -> int:
        return self.directors + 1

    @property
    def first_rep(self) -> int:
        return self.directors + self.managers + self.others + 1


def plan_org(users: int) -> Org:
    managers = max(1, users // (TEAM_SIZE + 1))
    directors = max(1, -(-managers // TEAMS_PER_DIRECTOR))
    others = min(20, max(0, users // 250))  # finance, marketing, ops, admin
    managers = min(managers, users - directors - others - 1)
    return Org(directors, managers, others, users - directors - managers - others)


def user_task_steps(deployed: set[str]) -> list[tuple[str, str, str, str | None, str | None]]:
    """Return (process id, task id, title, stage, form) of every deployed user task."""
    steps = []
    for path in sorted(PROCESSES.glob("*.bpmn")):
        source = path.read_text()
        process_id = re.search(r'<bpmn:process id="([^"]+)"', source)
        assert process_id, path
        if process_id.group(1) not in deployed:
            continue
        for match in re.finditer(
            r'<bpmn:userTask id="([^"]+)" name="([^"]+)"(.*?)</bpmn:userTask>', source, re.S
        ):
            body = match.group(3)
            stage = re.search(r'property name="stage" value="([^"]+)"', body)
            form = re.search(r'name="formJsonSchemaFilename" value="([^"]+)"', body)
            steps.append(
                (
                    process_id.group(1),
                    match.group(1),
                    match.group(2),
                    stage.group(1) if stage else None,
                    form.group(1) if form else None,
                )
            )
    return steps


def deploy_processes(engine: Engine, now: datetime) -> set[str]:
    """Deploy processes/; leave out (and name) files the deploy rejects; return the process ids."""
    files = collect_files([PROCESSES])
    while True:
        with Session(engine) as session:
            try:
                deploy_files(session, "admin", files, load_form=folder_form_loader(FORMS), now=now)
            except DeployRejected as exc:
                bad = {p.file for p in exc.problems}
                print(f"  left out, the deploy rejects them: {', '.join(sorted(bad))}")
                files = {k: v for k, v in files.items() if Path(k).name not in bad}
                if not bad or not files:
                    raise
                continue
            session.commit()
            return set(session.scalars(select(ProcessDefinition.process_id)))


def seed_org(engine: Engine, org: Org, now: datetime) -> None:
    """Directors lead regions, managers lead teams of reps under a region; ids are planned."""
    d, m, o = org.directors, org.managers, org.others
    sql(
        engine,
        """INSERT INTO team (id, name, parent_id)
           SELECT g, 'Region ' || g, NULL FROM generate_series(1, CAST(:d AS int)) g""",
        d=d,
    )
    sql(
        engine,
        """INSERT INTO team (id, name, parent_id)
           SELECT g, 'Team ' || g, 1 + (g - :fm) / :per
           FROM generate_series(CAST(:fm AS int), CAST(:lm AS int)) g""",
        fm=org.first_manager,
        lm=d + m,
        per=TEAMS_PER_DIRECTOR,
    )
    sql(
        engine,
        """INSERT INTO app_user (id, username, display_name, email, locale, team_id, active,
                                 on_leave, created_at)
           SELECT g,
                  CASE WHEN g <= :d THEN 'director' || g
                       WHEN g <= :d + :m THEN 'manager' || g
                       WHEN g < :fr THEN 'staff' || g
                       ELSE 'rep' || g END,
                  'Person ' || g, 'user' || g || '@example.com',
                  CASE WHEN g % 3 = 0 THEN 'zh_CN' ELSE 'en' END,
                  CASE WHEN g <= :d + :m THEN g
                       WHEN g < :fr THEN NULL
                       ELSE :fm + (g - :fr) % :m END,
                  true, false, :now
           FROM generate_series(1, CAST(:n AS int)) g""",
        d=d,
        m=m,
        fr=org.first_rep,
        fm=org.first_manager,
        n=d + m + o + org.reps,
        now=now,
    )
    sql(engine, "UPDATE team SET manager_id = id")
    sql(
        engine,
        """INSERT INTO user_role (user_id, role)
           SELECT id, CASE WHEN id <= :d THEN 'director'
                           WHEN id <= :d + :m THEN 'manager'
                           WHEN id < :fr THEN
                               (ARRAY['finance', 'finance', 'marketing', 'ops', 'admin'])
                               [1 + (id - :d - :m - 1) % 5]
                           ELSE 'rep' END
           FROM app_user""",
        d=d,
        m=m,
        fr=org.first_rep,
    )


def seed_records(engine: Engine, org: Org, now: datetime) -> None:
    """Customers, leads and deals; record n belongs to rep (n - 1) % reps."""
    params = {"reps": org.reps, "fr": org.first_rep, "now": now}
    sql(
        engine,
        """INSERT INTO customer (id, name, name_key, tier, owner_id, locked, owner_since,
                                 created_at)
           SELECT g, 'Customer ' || g || ' Ltd', 'customer ' || g,
                  (ARRAY['A', 'B', 'C', 'D', 'E'])[1 + g % 5], :fr + (g - 1) % :reps, false,
                  :now - interval '200 days', :now - interval '400 days'
           FROM generate_series(1, CAST(:n AS int)) g""",
        n=org.reps * CUSTOMERS_PER_REP,
        **params,
    )
    sql(
        engine,
        """INSERT INTO lead (id, name, company, owner_id, status, created_at)
           SELECT g, 'Lead ' || g, 'Prospect ' || g, :fr + (g - 1) % :reps, 'new',
                  :now - interval '30 days'
           FROM generate_series(1, CAST(:n AS int)) g""",
        n=org.reps * LEADS_PER_REP,
        **params,
    )
    sql(
        engine,
        """INSERT INTO opportunity (id, customer_id, owner_id, name, amount, currency, pipeline,
                                    stage, stage_win_rate, status, created_at, stage_since)
           SELECT g, g, :fr + (g - 1) % :reps, 'Deal ' || g, 1000 + g % 50000, 'CNY',
                  'new_business', 'proposal', 50, 'open', :now - interval '60 days',
                  :now - interval '20 days'
           FROM generate_series(1, CAST(:n AS int)) g""",
        n=org.reps * DEALS_PER_REP,
        **params,
    )


def seed_steps(engine: Engine, deployed: set[str]) -> int:
    """Put the deployed user tasks in a scratch table numbered from 0; return how many."""
    steps = user_task_steps(deployed)
    with Session(engine) as session:
        definitions = dict(
            session.execute(select(ProcessDefinition.process_id, ProcessDefinition.id)).all()
        )
    sql(
        engine,
        """CREATE TABLE bench_step (n int PRIMARY KEY, process_id text, definition_id int,
                                    bpmn_id text, title text, stage text, form text)""",
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO bench_step VALUES (:n, :p, :d, :b, :t, :s, :f)"),
            [
                {"n": n, "p": p, "d": definitions[p], "b": b, "t": t, "s": s, "f": f}
                for n, (p, b, t, s, f) in enumerate(steps)
            ],
        )
    return len(steps)


# Who a task is for, by g % 100. Lanes name a person (the record's owner, the owner's manager),
# so most tasks are assigned: to a rep (60) or a manager (9). The rest wait unclaimed in a
# queue: of a team (15), of everyone with a role: finance (5), marketing (3), ops (5) and, for
# records without an owner, all reps (1), all managers (1) and all directors (1).
_OFFER = """
    CASE WHEN s.slot < 60 THEN 'rep' WHEN s.slot < 69 THEN 'manager' WHEN s.slot < 84 THEN NULL
         WHEN s.slot < 85 THEN 'rep' WHEN s.slot < 90 THEN 'finance'
         WHEN s.slot < 93 THEN 'marketing' WHEN s.slot < 94 THEN 'manager'
         WHEN s.slot < 95 THEN 'director' ELSE 'ops' END"""
# The rep whose record the task is about: for a team's queue or its manager, a team member.
_TASK_ROWS = """
    SELECT s.*, st.process_id, st.definition_id, st.bpmn_id, st.title, st.stage, st.form,
           CASE WHEN s.slot BETWEEN 60 AND 83
                THEN s.team_no + :m * ((s.g / 100) % greatest(1, :reps / :m))
                ELSE (s.g::bigint * 7919) % :reps END AS rep_no
    FROM (SELECT g, g % 100 AS slot, (g::bigint * 31) % :m AS team_no,
                 (g / 100) % 20 AS kind_no, ((hashint4(g)::bigint % 100) + 100) % 100 AS due_no
          FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g) s
    JOIN bench_step st ON st.n = (s.g / 7) % :steps"""


def seed_tasks(engine: Engine, org: Org, steps: int, tasks: int, completed: int, now: datetime):
    """Instances and their open tasks (task g in instance g), then completed tasks."""
    params = {
        "m": org.managers,
        "fm": org.first_manager,
        "reps": org.reps,
        "fr": org.first_rep,
        "steps": steps,
        "now": now,
    }
    subject = """
        CASE WHEN t.kind_no < 10 THEN 'customer' WHEN t.kind_no < 17 THEN 'opportunity'
             ELSE 'lead' END,
        1 + t.rep_no + :reps * (t.g % CASE WHEN t.kind_no < 10 THEN 40
                                             WHEN t.kind_no < 17 THEN 20 ELSE 10 END)"""
    batch = 250_000
    for lo in range(1, tasks + 1, batch):
        hi = min(tasks, lo + batch - 1)
        sql(
            engine,
            f"""INSERT INTO process_instance (id, definition_id, process_id, subject_type,
                    subject_id, status, state, serializer_version, state_token, version,
                    started_by, started_at, updated_at)
                SELECT t.g, t.definition_id, t.process_id, {subject}, 'waiting', '{{}}', '1.4',
                       md5(t.g::text), 1, 'rep' || (:fr + t.rep_no),
                       :now - make_interval(days => t.g % 90), :now
                FROM ({_TASK_ROWS}) t""",
            lo=lo,
            hi=hi,
            **params,
        )
        sql(
            engine,
            f"""INSERT INTO human_task (id, instance_id, task_id, process_id, bpmn_id, title,
                    lane, candidate_role, candidate_team, candidate_user, assignee, status, form,
                    properties, subject_type, subject_id, due_at, created_at)
                SELECT t.g, t.g, md5('open' || t.g)::uuid::text, t.process_id, t.bpmn_id,
                       t.title, NULL, {_OFFER.replace("s.slot", "t.slot")},
                       CASE WHEN t.slot BETWEEN 69 AND 83 THEN 'team:' || (:fm + t.team_no) END,
                       p.who, p.who, 'open', t.form,
                       CASE WHEN t.stage IS NULL THEN '{{}}'::jsonb
                            ELSE jsonb_build_object('stage', t.stage) END,
                       {subject},
                       CASE WHEN t.due_no < 20 THEN :now - make_interval(hours => 1 + t.g % 700)
                            WHEN t.due_no < 30 THEN date_trunc('day', :now)
                                                    + make_interval(hours => t.g % 24)
                            WHEN t.due_no < 50 THEN :now + make_interval(days => 1 + t.g % 6)
                            WHEN t.due_no < 85 THEN :now + make_interval(days => 7 + t.g % 50)
                       END,
                       :now - make_interval(days => t.g % 90, hours => t.g % 24)
                FROM ({_TASK_ROWS}) t
                CROSS JOIN LATERAL (SELECT CASE
                    WHEN t.slot < 60 THEN 'rep' || (:fr + t.rep_no)
                    WHEN t.slot < 69 THEN 'manager' || (:fm + t.team_no) END AS who) p""",
            lo=lo,
            hi=hi,
            **params,
        )
    for lo in range(1, completed + 1, batch):
        hi = min(completed, lo + batch - 1)
        # Completed task g sits in instance 1 + (g - 1) % tasks: an earlier step of it.
        sql(
            engine,
            f"""INSERT INTO human_task (id, instance_id, task_id, process_id, bpmn_id, title,
                    candidate_role, candidate_user, assignee, status, form, properties,
                    subject_type, subject_id, due_at, created_at, completed_at, completed_by)
                SELECT :tasks + t.g, 1 + (t.g - 1) % :tasks, md5('done' || t.g)::uuid::text,
                       t.process_id, t.bpmn_id, t.title, 'rep', p.who, p.who, 'completed',
                       t.form, '{{}}', {subject},
                       p.done + interval '1 day', p.done - interval '2 days', p.done, p.who
                FROM ({_TASK_ROWS}) t
                CROSS JOIN LATERAL (SELECT
                    CASE WHEN t.slot < 90 THEN 'rep' || (:fr + t.rep_no)
                         ELSE 'manager' || (:fm + t.team_no) END AS who,
                    :now - make_interval(days => t.g % 365, mins => t.g % 1440) AS done) p""",
            lo=lo,
            hi=hi,
            tasks=tasks,
            **params,
        )


def reset_sequences(engine: Engine) -> None:
    for table in (
        "team",
        "app_user",
        "customer",
        "lead",
        "opportunity",
        "process_instance",
        "human_task",
    ):
        sql(
            engine,
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)",
        )


def generate(engine: Engine, org: Org, tasks: int, completed: int, now: datetime) -> None:
    begun = time.perf_counter()
    deployed = deploy_processes(engine, now)
    seed_org(engine, org, now)
    seed_records(engine, org, now)
    steps = seed_steps(engine, deployed)
    print(f"  organisation and records: {time.perf_counter() - begun:.0f} s", flush=True)
    # A bulk load: build the secondary indexes once at the end instead of row by row.
    indexes = sql(
        engine,
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           WHERE i.tablename IN ('human_task', 'process_instance')
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
    ).all()
    for name, _ in indexes:
        sql(engine, f"DROP INDEX {name}")
    seed_tasks(engine, org, steps, tasks, completed, now)
    print(f"  + instances and tasks: {time.perf_counter() - begun:.0f} s", flush=True)
    for _, definition in indexes:
        sql(engine, definition)
    print(f"  + {len(indexes)} indexes: {time.perf_counter() - begun:.0f} s", flush=True)
    sql(engine, "DROP TABLE bench_step")
    reset_sequences(engine)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    print(f"  + VACUUM ANALYZE: {time.perf_counter() - begun:.0f} s", flush=True)


# --- 2. timing the inbox views ---------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    ms: float  # wall-clock time of the request
    cpu_ms: float  # CPU time this process spent on it (the database server's is not included)
    status: int
    body: str


def signed_in_get(app: Flask, user_id: int, path: str) -> Answer:
    """GET `path` as the user through the test client."""
    client = app.test_client()
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(user_id)
        flask_session["_fresh"] = True
    begun, begun_cpu = time.perf_counter(), time.process_time()
    response = client.get(path)
    took, cpu = time.perf_counter() - begun, time.process_time() - begun_cpu
    return Answer(took * 1000, cpu * 1000, response.status_code, response.get_data(as_text=True))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(frozen=True)
class View:
    name: str
    path: str
    people: str  # "rep" or "manager"


def busiest_process(engine: Engine) -> str:
    return str(
        sql(
            engine,
            "SELECT process_id FROM human_task WHERE status = 'open' "
            "GROUP BY process_id ORDER BY count(*) DESC LIMIT 1",
        ).scalar_one()
    )


def inbox_views(engine: Engine) -> list[View]:
    process = busiest_process(engine)
    return [
        View("rep: first inbox page (/), nav counts included", "/", "rep"),
        View("rep: open for my roles and teams", "/inbox?tab=open", "rep"),
        View("rep: on my customers", "/inbox?tab=customers", "rep"),
        View("rep: completed by me", "/inbox?tab=completed", "rep"),
        View(
            f"rep: filtered, process={process} and due=overdue",
            "/inbox?" + urlencode({"process": process, "due": "overdue"}),
            "rep",
        ),
        View("manager: first inbox page (/)", "/", "manager"),
        View("manager: on my team's customers", "/inbox?tab=customers", "manager"),
    ]


def people_and_views(app: Flask, org: Org) -> tuple[dict[str, list[int]], list[View]]:
    """Return the user ids of each kind of person, and the views they open."""
    people = {
        "rep": list(range(org.first_rep, org.first_rep + org.reps)),
        "manager": list(range(org.first_manager, org.first_manager + org.managers)),
    }
    with app.app_context():
        from webapp import db

        return people, inbox_views(db.engine)


def bench_views(app: Flask, org: Org, samples: int, seed: int = 7) -> list[list[str]]:
    picker = random.Random(seed)
    people, views = people_and_views(app, org)
    rows = []
    for view in views:
        for user_id in picker.sample(people[view.people], min(3, len(people[view.people]))):
            signed_in_get(app, user_id, view.path)  # warm-up: templates, caches, plans
        chosen = [picker.choice(people[view.people]) for _ in range(samples)]
        times, cpu_times, shown = [], [], 0
        for user_id in chosen:
            answer = signed_in_get(app, user_id, view.path)
            assert answer.status == 200, (view.path, answer.status, answer.body[:500])
            times.append(answer.ms)
            cpu_times.append(answer.cpu_ms)
            shown += answer.body.count('class="task-row')
        p95 = percentile(times, 0.95)
        rows.append(
            [
                view.name,
                str(len(times)),
                f"{statistics.median(times):.1f}",
                f"{p95:.1f}",
                f"{max(times):.1f}",
                f"{statistics.median(cpu_times):.1f}",
                f"{shown / len(times):.0f}",
                f"{os.getloadavg()[0]:.1f}",
                "yes" if p95 <= TARGET_MS else "NO",
            ]
        )
        print(f"  {rows[-1]}", flush=True)
    return rows


def explain_views(app: Flask, org: Org) -> None:
    """Print EXPLAIN ANALYZE of every statement one request of each view runs (--explain)."""
    with app.app_context():
        from webapp import db

        engine = db.engine
        views = inbox_views(engine)
        captured: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            captured.append((statement, params))

        event.listen(engine, "before_cursor_execute", capture)
    users = {"rep": org.first_rep + org.reps // 2, "manager": org.first_manager}
    for view in views:
        captured.clear()
        signed_in_get(app, users[view.people], view.path)
        statements = list(captured)
        print(f"\n=== {view.name}: {len(statements)} statements")
        with app.app_context():
            raw = db.engine.raw_connection()
            try:
                cursor = raw.cursor()
                for statement, params in statements:
                    if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                        continue
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    plan = [row[0] for row in cursor.fetchall()]
                    took = plan[-1]
                    print(f"\n--- {took}\n{statement[:600]}\n" + "\n".join(plan[:40]))
            finally:
                raw.close()
    event.remove(engine, "before_cursor_execute", capture)


def profile_views(app: Flask, org: Org, samples: int, top: int, seed: int = 11) -> None:
    """Print where each view's requests spend their CPU time (--profile), after the timing.

    cProfile slows the requests down several times, so these runs are not the timed ones.
    """
    picker = random.Random(seed)
    people, views = people_and_views(app, org)
    for view in views:
        signed_in_get(app, picker.choice(people[view.people]), view.path)
        profiler = cProfile.Profile(time.process_time)
        for _ in range(samples):
            user_id = picker.choice(people[view.people])
            profiler.enable()
            signed_in_get(app, user_id, view.path)
            profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        print(f"\n=== profile of {view.name}, {samples} requests\n{out.getvalue()}", flush=True)


# --- 3. completions per second over HTTP ------------------------------------------------------


def prepare_completions(
    engine: Engine, clients: int, per_client: int, now: datetime
) -> list[tuple[str, list[int]]]:
    """Create the clients' users and start `per_client` lead_followup instances for each."""
    password_hash = generate_password_hash(PASSWORD)
    work: list[tuple[str, list[int]]] = []
    with Session(engine) as session:
        for n in range(clients):
            username = f"closer{n}"
            user_id = sql(
                engine,
                """INSERT INTO app_user (username, display_name, password_hash, locale, active,
                                         on_leave, created_at)
                   VALUES (:u, :u, :h, 'en', true, false, :now) RETURNING id""",
                u=username,
                h=password_hash,
                now=now,
            ).scalar_one()
            sql(engine, "INSERT INTO user_role VALUES (:i, 'rep')", i=user_id)
            lead_ids = sql(
                engine,
                """INSERT INTO lead (name, company, owner_id, status, created_at)
                   SELECT 'Bench lead ' || g, 'Bench Co ' || g, :o, 'new', :now
                   FROM generate_series(1, CAST(:k AS int)) g RETURNING id""",
                o=user_id,
                k=per_client,
                now=now,
            ).scalars()
            actor = Actor(username, frozenset({"rep"}))
            task_ids = []
            for lead_id in lead_ids:
                outcome = start_instance(
                    session,
                    actor,
                    "lead_followup",
                    now=now,
                    data={"lead_name": f"Lead {lead_id}", "budget": 1000},
                    subject=("lead", lead_id),
                )
                task = session.scalars(
                    select(HumanTask).where(
                        HumanTask.instance_id == outcome.instance.id, HumanTask.status == "open"
                    )
                ).one()
                assert task.assignee == username, (task.assignee, username)
                task_ids.append(task.id)
                session.commit()
            work.append((username, task_ids))
    return work


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebClient:
    """A signed-in browser stand-in: one cookie jar, the CSRF token from a page."""

    def __init__(self, port: int) -> None:
        self.port, self.cookies, self.csrf = port, {}, ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        match = _CSRF.search(data)
        if match:
            self.csrf = match.group(1)
        return response.status, data

    def sign_in(self, username: str) -> None:
        self.request("GET", "/login")
        status, _ = self.request(
            "POST", "/login", {"username": username, "password": PASSWORD, "csrf_token": self.csrf}
        )
        assert status == 302, f"sign-in of {username} answered {status}"


def start_gunicorn(url: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench-secret")
    process = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "webapp:create_app()",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("gunicorn did not start")
    return process, port


def bench_completions(
    url: str, work: list[tuple[str, list[int]]], seconds: float, workers: int
) -> list[str]:
    process, port = start_gunicorn(url, workers)
    try:
        clients = []
        for username, task_ids in work:
            client = WebClient(port)
            client.sign_in(username)
            client.request("GET", f"/tasks/{task_ids[0]}")  # the form and its CSRF token
            clients.append(client)
        outcomes: Counter[int] = Counter()
        done_at: list[float] = []
        lock = threading.Lock()
        begun = time.perf_counter()

        def complete_all(client: WebClient, task_ids: list[int]) -> None:
            for task_id in task_ids:
                if time.perf_counter() - begun > seconds:
                    break
                status, _ = client.request(
                    "POST",
                    f"/tasks/{task_id}",
                    {"outcome": "not_interested", "notes": "", "csrf_token": client.csrf},
                )
                with lock:
                    outcomes[status] += 1
                    if status == 303:
                        done_at.append(time.perf_counter())

        threads = [
            threading.Thread(target=complete_all, args=(client, task_ids))
            for client, (_, task_ids) in zip(clients, work, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = (max(done_at) if done_at else time.perf_counter()) - begun
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    completed = outcomes.pop(303, 0)
    errors = ", ".join(f"{status}: {n}" for status, n in sorted(outcomes.items())) or "0"
    rate = completed / took if took else 0.0
    return [
        f"{len(work)} clients, gunicorn -w {workers}",
        f"{os.getloadavg()[0]:.1f}",
        f"{took:.1f}",
        f"{completed:,}",
        f"{rate:.0f}",
        errors,
        "yes" if rate >= TARGET_PER_S and not outcomes else "NO",
    ]


# --- the report ------------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5_000, help="people (default 5,000)")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="open tasks (1,000,000)")
    parser.add_argument(
        "--completed", type=int, default=None, help="completed tasks (default: as many as open)"
    )
    parser.add_argument("--samples", type=int, default=200, help="requests per inbox view")
    parser.add_argument("--seconds", type=float, default=25, help="length of the completion run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent completing clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--per-client", type=int, default=800, help="tasks prepared for each client"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of each view's queries"
    )
    parser.add_argument("--skip-http", action="store_true", help="leave out the gunicorn run")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the timing, profile N more requests of each view and print where the CPU "
        "time goes",
    )
    parser.add_argument(
        "--profile-top", type=int, default=30, help="functions listed per profile (30)"
    )
    args = parser.parse_args(argv)
    if args.completed is None:
        args.completed = args.tasks
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    org = plan_org(args.users)
    print(f"Inbox benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"Machine: {machine()} (a VM shared with other jobs while measuring)")
    server = start_postgres()
    if server is None:
        sys.exit("PostgreSQL is not installed (see `make system-deps`)")
    # Stopped with SIGTERM, still stop the server in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    try:
        print(f"PostgreSQL at {server.bindir}")
        migrate_to_head(server.url)
        engine = create_db_engine(server.url)
        now = datetime.now(UTC)
        print(
            f"\nGenerating {org.directors:,} directors, {org.managers:,} managers, "
            f"{org.reps:,} reps, {org.others:,} staff; {args.tasks:,} open and "
            f"{args.completed:,} completed tasks",
            flush=True,
        )
        begun = time.perf_counter()
        generate(engine, org, args.tasks, args.completed, now)
        generated = time.perf_counter() - begun
        from webapp import create_app

        app = create_app(
            {"SQLALCHEMY_DATABASE_URI": server.url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": True}
        )
        if args.explain:
            explain_views(app, org)
        print("\nTiming inbox views", flush=True)
        rows = bench_views(app, org, args.samples)
        if args.profile:
            profile_views(app, org, args.profile, args.profile_top)
        http_rows: list[list[str]] = []
        if not args.skip_http:
            print("\nPreparing tasks to complete over HTTP", flush=True)
            begun = time.perf_counter()
            work = prepare_completions(engine, args.clients, args.per_client, datetime.now(UTC))
            print(
                f"  started {args.clients * args.per_client:,} instances in "
                f"{time.perf_counter() - begun:.0f} s",
                flush=True,
            )
            http_rows.append(bench_completions(server.url, work, args.seconds, args.workers))
        engine.dispose()
        print(f"\nGenerated the data in {generated:.0f} s.")
        table(
            f"Inbox views: server time through the Flask test client, ms "
            f"({args.users:,} users, {args.tasks:,} open + {args.completed:,} completed tasks)",
            [
                "view",
                "N",
                "p50",
                "p95",
                "max",
                "app CPU p50",
                "rows",
                "load avg",
                f"p95 <= {TARGET_MS} ms",
            ],
            rows,
        )
        if http_rows:
            table(
                "Task completions over HTTP (POST of the task form, answered 303)",
                ["setup", "load avg", "s", "completed", "per s", "errors", f">= {TARGET_PER_S}/s"],
                http_rows,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
