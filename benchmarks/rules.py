"""Time the scheduled rules at scale on PostgreSQL: pool recycling and firing BPMN timers.

Run from the repository root: `.venv/bin/python benchmarks/rules.py` (about 5 minutes).
1. 1,000,000 owned customers, 100,000 of them due for recycling (and 100,000 idle but exempt,
   20,000 inside the warning days): one `recycle_pools` run, with owner history and warnings.
2. 100,000 lead_followup instances waiting on a timer (clones of one real instance), 1,000 due
   at once: the time until all have fired, back to back and with two workers at once.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, benchmarks/ comes first on sys.path and this file would shadow `rules`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from crm.customers.models import OwnerChange
from crm.directory.models import Notification
from engine.actor import Actor
from engine.db import create_db_engine
from engine.deploy import collect_files, deploy_files, folder_form_loader
from engine.instances import start_instance
from engine.models import HumanTask, InstanceEvent, InstanceTimer, ProcessInstance
from engine.tasks import complete_task
from rules import scheduler as scheduler_module
from rules.models import Reminder
from rules.runner import INTERVALS, run_rule
from rules.scheduler import build_scheduler
from tests.conftest import FORMS, PROCESSES, migrate_to_head
from tests.pgserver import start_postgres

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LEAD_FILE = PROCESSES / "lead_followup.bpmn"
# Smaller figures for a quick trial: BENCH_CUSTOMERS=10000 BENCH_WAITING=3000 (0: no timers).
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", 1_000_000))
REPS = 200
WAITING = int(os.environ.get("BENCH_WAITING", 100_000))
DUE_TIMERS = 1_000
LIMITS = {"A": 90, "B": 60, "C": 30, "D": 30, "E": 30}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sql(engine: Engine, statement: str, **params: Any) -> Any:
    with engine.begin() as conn:
        return conn.execute(text(statement), params)


def seed_recycling(engine: Engine) -> None:
    """Bulk-generate a territory, reps, a pool with a rule, customers and their activities."""
    sql(engine, "INSERT INTO territory (code, name) VALUES ('B', 'Bench')")
    territory = sql(engine, "SELECT id FROM territory WHERE code = 'B'").scalar_one()
    sql(
        engine,
        """INSERT INTO app_user (username, display_name, email, locale, territory_id, active,
                                 on_leave, created_at)
           SELECT 'rep' || g, 'Rep ' || g, 'rep' || g || '@example.com',
                  CASE WHEN g % 2 = 0 THEN 'zh_CN' ELSE 'en' END, :t, true, false, :now
           FROM generate_series(0, :reps) g""",
        t=territory,
        now=NOW,
        reps=REPS,
    )
    sql(engine, "INSERT INTO user_role (user_id, role) SELECT id, 'rep' FROM app_user")
    sql(
        engine,
        "UPDATE user_role SET role = 'manager' WHERE user_id = (SELECT min(id) FROM app_user)",
    )
    manager, first_rep = sql(engine, "SELECT min(id), min(id) + 1 FROM app_user").one()
    sql(
        engine,
        "INSERT INTO pool (name, kind, territory_id) VALUES ('Bench pool', 'customer', :t)",
        t=territory,
    )
    pool = sql(engine, "SELECT id FROM pool").scalar_one()
    sql(
        engine,
        """INSERT INTO pool_policy (pool_id, manager_id, warning_days, cooldown_days,
               daily_claim_cap, weekly_quota, auto_allocate, exempt_locked, exempt_open_approval,
               exempt_win_rate, updated_at)
           VALUES (:p, :m, 3, 30, 10, 20, false, true, true, 60, :now)""",
        p=pool,
        m=manager,
        now=NOW,
    )
    sql(
        engine,
        "INSERT INTO pool_recycle_rule (pool_id, trigger_kind, active, created_at) "
        "VALUES (:p, 'no_followup', true, :now)",
        p=pool,
        now=NOW,
    )
    rule = sql(engine, "SELECT id FROM pool_recycle_rule").scalar_one()
    for tier, days in LIMITS.items():
        sql(
            engine,
            "INSERT INTO pool_recycle_limit (rule_id, tier, days) VALUES (:r, :t, :d)",
            r=rule,
            t=tier,
            d=days,
        )
    # id % 10 = 0: idle 200 days, due; id % 10 = 5: idle too, but locked or in a late-stage deal;
    # id % 50 = 1: due within the 3 warning days; everyone else called in the last 20 days.
    sql(
        engine,
        """INSERT INTO customer (name, name_key, tier, territory_id, owner_id, home_pool_id,
                                 locked, owner_since, created_at)
           SELECT 'Customer ' || g, 'customer' || g, (ARRAY['A','B','C','D','E'])[1 + g % 5],
                  :t, :first_rep + g % :reps, :p, (g % 20 = 5),
                  :now - interval '400 days', :now - interval '401 days'
           FROM generate_series(1, :n) g""",
        t=territory,
        first_rep=first_rep,
        reps=REPS,
        p=pool,
        now=NOW,
        n=CUSTOMERS,
    )
    sql(
        engine,
        """INSERT INTO activity (customer_id, user_id, kind, subject, happened_at)
           SELECT c.id, c.owner_id, 'call', 'Call', :now - make_interval(days =>
                  CASE WHEN c.id % 10 IN (0, 5) THEN 200
                       WHEN c.id % 50 = 1 THEN
                           (CASE c.tier WHEN 'A' THEN 90 WHEN 'B' THEN 60 ELSE 30 END) - 2
                       ELSE c.id % 20 END)
           FROM customer c""",
        now=NOW,
    )
    sql(
        engine,
        """INSERT INTO opportunity (customer_id, owner_id, name, amount, currency, pipeline,
                                    stage, stage_win_rate, status, created_at, stage_since)
           SELECT c.id, c.owner_id, 'Deal', 1000, 'CNY', 'new_business', 'negotiation', 80,
                  'open', :now - interval '300 days', :now - interval '300 days'
           FROM customer c WHERE c.id % 20 = 15""",
        now=NOW,
    )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def bench_recycling(engine: Engine) -> list[list[str]]:
    begun = time.perf_counter()
    seed_recycling(engine)
    seeded = time.perf_counter() - begun
    print(f"  seeded {CUSTOMERS:,} customers and their activities in {seeded:.0f} s", flush=True)
    make_session = sessionmaker(bind=engine, expire_on_commit=False)
    rss_before = peak_rss_mb()
    begun = time.perf_counter()
    run = run_rule(make_session, "recycle_pools", NOW)
    took = time.perf_counter() - begun
    rss_growth = peak_rss_mb() - rss_before
    assert run.error is None, run.error
    with make_session() as check:
        recycled = check.scalar(
            select(func.count()).select_from(OwnerChange).where(OwnerChange.reason == "recycle")
        )
        warnings = check.scalar(
            select(func.count()).select_from(Reminder).where(Reminder.kind == "recycle_warning")
        )
        notes = check.scalar(select(func.count()).select_from(Notification))
    begun = time.perf_counter()
    again = run_rule(make_session, "recycle_pools", NOW)
    took_again = time.perf_counter() - begun
    assert again.error is None, again.error
    assert again.rows == 0, again.rows
    return [
        [
            "recycle_pools, first run",
            f"{took:.1f}",
            f"{recycled:,}",
            f"{warnings:,}",
            f"{notes:,}",
            f"{rss_growth:.0f}",
        ],
        ["recycle_pools, run again (nothing to do)", f"{took_again:.1f}", "0", "0", "0", "-"],
    ]


def template_instance(engine: Engine) -> int:
    """Start one real lead_followup instance and leave it waiting one day to call again."""
    rep = Actor("rita", frozenset({"rep"}))
    with Session(engine) as session:
        deploy_files(
            session,
            "admin",
            collect_files([PROCESSES / "lead_followup.bpmn"]),
            load_form=folder_form_loader(FORMS),
            now=NOW,
        )
        instance = start_instance(
            session, rep, "lead_followup", now=NOW, data={"lead_name": "Acme", "budget": 1}
        ).instance
        task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
        complete_task(session, rep, task.id, {"outcome": "no_answer"}, now=NOW)
        session.commit()
        return instance.id


def clone_instances(engine: Engine, template: int, copies: int) -> None:
    """Copy the template's instance, task-state and timer rows `copies` times, in SQL.

    A human task's id must be unique, and the user tasks the library already predicted (the
    next "Call the lead") keep their ids when they become ready. So in each copy the ids of
    unfinished user tasks are rewritten to md5(old id || copy id) wherever they appear; every
    other id may repeat, since task-state rows are keyed by instance.
    """
    user_tasks = set(re.findall(r'<bpmn:userTask id="([^"]+)"', LEAD_FILE.read_text()))
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT task_id, body FROM instance_task_state WHERE instance_id = :t"),
            {"t": template},
        ).all()
    predicted = [
        task_id
        for task_id, body in rows
        if json.loads(body)["task_spec"] in user_tasks and json.loads(body)["state"] < 64
    ]

    def rewrite(column: str) -> str:
        for task_id in predicted:
            column = f"replace({column}, '{task_id}', md5('{task_id}' || n.id)::uuid::text)"
        return column

    sql(
        engine,
        """INSERT INTO process_instance (id, definition_id, process_id, business_key, subject_type,
               subject_id, status, state, serializer_version, state_token, version, next_timer_at,
               started_by, started_at, updated_at, ended_at)
           SELECT p.id + g, definition_id, process_id, business_key, subject_type, subject_id,
                  status, state, serializer_version, state_token, version, next_timer_at,
                  started_by, started_at, updated_at, ended_at
           FROM process_instance p, generate_series(1, :copies) g WHERE p.id = :t""",
        t=template,
        copies=copies,
    )
    sql(
        engine,
        "SELECT setval(pg_get_serial_sequence('process_instance', 'id'), "
        "(SELECT max(id) FROM process_instance))",
    )
    sql(
        engine,
        f"""INSERT INTO instance_task_state (instance_id, task_id, workflow_key, body)
            SELECT n.id, {rewrite("s.task_id")}, s.workflow_key, {rewrite("s.body")}
            FROM instance_task_state s, process_instance n
            WHERE s.instance_id = :t AND n.id > :t""",
        t=template,
    )
    sql(
        engine,
        """INSERT INTO instance_timer (instance_id, task_id, bpmn_id, fire_at, status, attempts)
            SELECT n.id, s.task_id, s.bpmn_id, s.fire_at, s.status, 0
            FROM instance_timer s, process_instance n
            WHERE s.instance_id = :t AND s.status = 'waiting' AND n.id > :t""",
        t=template,
    )
    # The template and the first copies are due first; every later 1,000 a day after the last.
    sql(
        engine,
        """UPDATE instance_timer
           SET fire_at = fire_at + make_interval(days => (instance_id - :t) / :due)
           WHERE instance_id >= :t + :due AND status = 'waiting'""",
        t=template,
        due=DUE_TIMERS,
    )
    sql(
        engine,
        """UPDATE process_instance p SET next_timer_at = i.fire_at
           FROM instance_timer i
           WHERE i.instance_id = p.id AND i.status = 'waiting' AND p.id >= :t + :due""",
        t=template,
        due=DUE_TIMERS,
    )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def fire_until_done(engine: Engine, at: datetime, workers: int) -> tuple[float, int]:
    make_session = sessionmaker(bind=engine, expire_on_commit=False)
    runs = [0]

    def worker() -> None:
        while True:
            run = run_rule(make_session, "fire_timers", at)
            assert run.error is None, run.error
            runs[0] += 1
            if run.rows == 0:
                return

    begun = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - begun, runs[0]


def fired(engine: Engine) -> int:
    with Session(engine) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(InstanceEvent)
                .where(InstanceEvent.kind == "timer_fired")
            )
            or 0
        )


def bench_timers(engine: Engine) -> list[list[str]]:
    template = template_instance(engine)
    begun = time.perf_counter()
    clone_instances(engine, template, WAITING - 1)
    print(
        f"  cloned {WAITING:,} waiting instances in {time.perf_counter() - begun:.0f} s", flush=True
    )
    with Session(engine) as session:
        waiting = session.scalar(
            select(func.count()).select_from(InstanceTimer).where(InstanceTimer.status == "waiting")
        )
        due_at = session.scalar(select(func.min(ProcessInstance.next_timer_at)))
    assert waiting == WAITING, waiting
    rows = []
    for workers, offset in ((1, 0), (2, 1)):
        # The second round fires the next day's 1,000.
        at = due_at + timedelta(days=offset, minutes=1)
        before = fired(engine)
        took, runs = fire_until_done(engine, at, workers)
        count = fired(engine) - before
        rows.append(
            [
                f"{count:,} due at once, {workers} worker(s) back to back",
                f"{took:.1f}",
                f"{count / took:.0f}",
                str(runs),
            ]
        )
    at = due_at + timedelta(days=2, minutes=1)
    took, count = fire_with_scheduler(engine, at)
    rows.append(
        [
            f"{count:,} due at once, the scheduler (every {INTERVALS['fire_timers']} s)",
            f"{took:.1f}",
            f"{count / took:.0f}",
            "-",
        ]
    )
    return rows


def fire_with_scheduler(engine: Engine, at: datetime) -> tuple[float, int]:
    """Run the real APScheduler clock (fire_timers only) until the due timers have fired."""
    make_session = sessionmaker(bind=engine, expire_on_commit=False)
    before = fired(engine)
    with Session(engine) as session:
        due = session.scalar(
            select(func.count())
            .select_from(ProcessInstance)
            .where(ProcessInstance.next_timer_at <= at)
        )
    # The scheduler reads the wall clock; here it reads the benchmark's fixed time instead.
    scheduler_module.utcnow = lambda: at
    scheduler_module.INTERVALS = {"fire_timers": INTERVALS["fire_timers"]}
    scheduler = build_scheduler(make_session, blocking=False)
    begun = time.perf_counter()
    scheduler.start()
    try:
        while fired(engine) - before < (due or 0) and time.perf_counter() - begun < 300:
            time.sleep(0.2)
        took = time.perf_counter() - begun
    finally:
        scheduler.shutdown(wait=True)
    return took, fired(engine) - before


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def main() -> None:
    begun = time.perf_counter()
    server = start_postgres()
    if server is None:
        sys.exit("PostgreSQL is not installed (initdb not found)")
    print(
        f"Rules benchmark, {datetime.now(UTC):%Y-%m-%d}; {os.cpu_count()} cores; "
        f"Python {platform.python_version()}"
    )
    try:
        migrate_to_head(server.url)
        engine = create_db_engine(server.url)
        print("1. recycling", flush=True)
        recycling = bench_recycling(engine)
        timers = []
        if WAITING:
            print("2. timers", flush=True)
            timers = bench_timers(engine)
        engine.dispose()
    finally:
        server.stop()
    table(
        f"1. Pool recycling: {CUSTOMERS:,} owned customers, {CUSTOMERS // 10:,} due "
        "(target <= 10 s)",
        ["run", "seconds", "recycled", "warnings", "notifications", "peak RSS growth MB"],
        recycling,
    )
    if timers:
        table(
            f"2. Timers: {WAITING:,} instances waiting, {DUE_TIMERS:,} due at once",
            ["case", "seconds until all fired", "fired/s", "rule runs"],
            timers,
        )
    print(f"\nTook {time.perf_counter() - begun:.0f} s.")


if __name__ == "__main__":
    main()
