"""Time the funnel and forecast pages on a large PostgreSQL database.

Generates 1,000,000 opportunities with 10,000,000 stage-history rows (by default) in a throwaway
PostgreSQL with INSERT … SELECT generate_series, then requests the pages through the Flask test
client signed in as a director (everything) and as a manager (one team subtree, 5% of the reps),
and prints the server time per page (target: ≤ 500 ms each), after building the funnel's daily
roll-up; it also prints what keeping the roll-up adds to a stage move.

Run from the repository root: `.venv/bin/python benchmarks/analytics.py`
(small run: `--opportunities 20000 --history 200000`).
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

# Run as a script, benchmarks/ comes first on sys.path and this file would shadow `engine`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from werkzeug.security import generate_password_hash

from crm.analytics.periods import add_months, quarter_start
from engine.db import utcnow
from engine.deploy import collect_files, deploy_files, folder_form_loader
from tests.conftest import migrate_to_head
from tests.pgserver import start_postgres

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench pass"
TEAMS, SUBTEAMS_PER_TEAM, REPS_PER_SUBTEAM = 20, 5, 10  # 1,000 reps
CUSTOMERS = 100_000
TERRITORIES = 10
ROUNDS = 5
NEW_BUSINESS = (
    "qualification", "needs_analysis", "proposal", "needs_analysis", "proposal",
    "negotiation", "proposal", "negotiation", "closing", "negotiation",
)  # fmt: skip
RENEWAL = (
    "renewal_review", "renewal_quote", "renewal_review", "renewal_quote", "renewal_signed",
    "renewal_quote", "renewal_signed", "renewal_quote", "renewal_signed", "renewal_quote",
)  # fmt: skip
RATES = {
    "qualification": 10, "needs_analysis": 20, "proposal": 50, "negotiation": 75, "closing": 90,
    "renewal_review": 60, "renewal_quote": 80, "renewal_signed": 95,
}  # fmt: skip


def _array(stages: tuple[str, ...]) -> str:
    return "ARRAY[" + ",".join(f"'{s}'" for s in stages) + "]"


def _rate_case(column: str) -> str:
    whens = " ".join(f"WHEN '{s}' THEN {r}" for s, r in RATES.items())
    return f"CASE {column} {whens} WHEN 'won' THEN 100 ELSE 0 END"


def build_people(app: Any) -> dict[str, str]:
    """Create territories, a director, 20 managers with 5 sub-teams of 10 reps each."""
    from crm.directory.models import Team, Territory
    from crm.directory.services import create_user
    from webapp import db

    now = utcnow()
    password = generate_password_hash(PASSWORD)
    with app.app_context():
        session = db.session
        territories = [Territory(code=f"T{i}", name=f"Territory {i}") for i in range(TERRITORIES)]
        session.add_all(territories)
        session.flush()
        director = create_user(session, "dir", "Director", ["director"], now=now,
                               password_hash=password)  # fmt: skip
        top = Team(name="Company", manager_id=director.id)
        session.add(top)
        session.flush()
        director.team_id = top.id
        seq = 0
        for t in range(TEAMS):
            manager = create_user(session, f"mgr{t}", f"Manager {t}", ["manager"], now=now,
                                  password_hash=password)  # fmt: skip
            team = Team(name=f"Team {t}", parent_id=top.id, manager_id=manager.id,
                        territory_id=territories[t % TERRITORIES].id)  # fmt: skip
            session.add(team)
            session.flush()
            manager.team_id = team.id
            for s in range(SUBTEAMS_PER_TEAM):
                sub = Team(name=f"Team {t}.{s}", parent_id=team.id)
                session.add(sub)
                session.flush()
                for _ in range(REPS_PER_SUBTEAM):
                    seq += 1
                    create_user(session, f"rep{seq}", f"Rep {seq}", ["rep"], now=now,
                                team_id=sub.id, territory_id=team.territory_id)  # fmt: skip
        session.commit()
    return {"director": "dir", "manager": "mgr0"}


def generate(engine: Any, opportunities: int, history: int) -> None:
    """Fill customers, opportunities and stage history with INSERT … SELECT."""
    steps = max(1, history // opportunities)
    now = utcnow()
    newest = now - timedelta(days=steps * 8 + 1)  # every generated stage move is in the past
    oldest = newest - timedelta(days=3 * 365)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customer (name, name_key, tier, territory_id, owner_id, locked, "
                "created_at) SELECT 'Customer ' || i, 'customer ' || i, 'C', "
                "(SELECT min(id) FROM territory) + i % :territories, NULL, false, :at "
                "FROM generate_series(1, :n) AS i"
            ),
            {"n": CUSTOMERS, "territories": TERRITORIES, "at": oldest},
        )
        reps = "(SELECT array_agg(u.id ORDER BY u.id) FROM app_user u WHERE u.username LIKE 'rep%')"
        first_customer = "(SELECT min(id) FROM customer)"
        nb, rn = _array(NEW_BUSINESS[:steps] or NEW_BUSINESS), _array(RENEWAL[:steps] or RENEWAL)
        last = f"(CASE WHEN b.pipeline = 'renewal' THEN {rn} ELSE {nb} END)[{min(steps, 10)}]"
        conn.execute(
            text(
                f"""
                INSERT INTO opportunity (id, customer_id, owner_id, name, amount, currency,
                    expected_close, pipeline, stage, stage_win_rate, win_rate_override, status,
                    close_reason, created_at, stage_since, closed_at)
                SELECT b.i, {first_customer} + b.i % :customers,
                    r.ids[1 + b.i % array_length(r.ids, 1)],
                    'Deal ' || b.i, 1000 + (b.i::bigint * 7919) % 500000, 'CNY',
                    CAST(:today AS date) + ((b.i % 210) - 30),
                    b.pipeline,
                    CASE WHEN b.status = 'open' THEN {last} ELSE b.status END,
                    CASE WHEN b.status = 'open' THEN {_rate_case(last)}
                         WHEN b.status = 'won' THEN 100 ELSE 0 END,
                    CASE WHEN b.i % 10 = 7 THEN 35 END,
                    b.status,
                    CASE b.status
                        WHEN 'won' THEN (ARRAY['price','relationship','product'])[1 + b.i % 3]
                        WHEN 'lost' THEN (ARRAY['budget','competitor','timing'])[1 + b.i % 3]
                    END,
                    b.created,
                    b.created + make_interval(days => :steps * b.step_days),
                    CASE WHEN b.status <> 'open'
                         THEN b.created + make_interval(days => :steps * b.step_days) END
                FROM (
                    SELECT i,
                        CAST(:oldest AS timestamptz) + (CAST(:newest AS timestamptz)
                            - CAST(:oldest AS timestamptz)) * (i::float8 / :n) AS created,
                        CASE WHEN i % 9 = 0 THEN 'renewal' ELSE 'new_business' END AS pipeline,
                        CASE WHEN i % 10 < 3 THEN 'won' WHEN i % 10 < 6 THEN 'lost'
                             ELSE 'open' END AS status,
                        2 + i % 7 AS step_days
                    FROM generate_series(1, :n) AS i
                ) AS b, (SELECT {reps} AS ids) AS r
                """  # noqa: S608 (generated constants, not input)
            ),
            {
                "n": opportunities,
                "customers": CUSTOMERS,
                "today": now.date(),
                "steps": steps,
                "oldest": oldest,
                "newest": newest,
            },  # fmt: skip
        )
        conn.execute(text("SELECT setval(pg_get_serial_sequence('opportunity', 'id'), :n)"),
                     {"n": opportunities})  # fmt: skip
        stage = f"(CASE WHEN o.pipeline = 'renewal' THEN {rn} ELSE {nb} END)"
        conn.execute(
            text(
                f"""
                INSERT INTO stage_change (opportunity_id, from_stage, to_stage, win_rate,
                    changed_at, changed_by)
                SELECT o.id,
                    CASE WHEN k > 1 THEN {stage}[k - 1] END,
                    CASE WHEN k = :steps AND o.status <> 'open' THEN o.status ELSE {stage}[k] END,
                    CASE WHEN k = :steps AND o.status = 'won' THEN 100
                         WHEN k = :steps AND o.status = 'lost' THEN 0
                         ELSE {_rate_case(stage + "[k]")} END,
                    o.created_at + make_interval(days => k * (2 + o.id % 7)),
                    NULL
                FROM opportunity o CROSS JOIN generate_series(1, :steps) AS k
                """  # noqa: S608
            ),
            {"steps": steps},
        )
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM ANALYZE"))


def build_rollup(app: Any) -> None:
    """Build the funnel's daily roll-up (the rule does this once after the migration)."""
    from crm.analytics.rollup_build import rebuild_funnel_rollups
    from webapp import db

    started = time.perf_counter()
    with app.app_context():
        rebuild_funnel_rollups(db.session, utcnow())
        db.session.commit()
        built = time.perf_counter() - started
        with db.engine.connect() as conn:  # as autovacuum would after the build
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("VACUUM ANALYZE funnel_entry_day, funnel_dwell_day, funnel_deal, "
                              "funnel_stale_deal"))  # fmt: skip
        sizes = db.session.execute(
            text(
                "SELECT relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables"
                " WHERE relname LIKE 'funnel%' OR relname = 'stage_change' ORDER BY relname"
            )
        )
        print(f"# funnel roll-up built in {built:.0f} s; table sizes: "
              + ", ".join(f"{name} {size / 2**20:,.0f} MB" for name, _, size in sizes))  # fmt: skip


def time_stage_moves(app: Any, moves: int = 200) -> None:
    """Print what keeping the roll-up adds to a stage move (enter_stage and flush)."""
    from crm.sales import services
    from crm.sales.models import Opportunity
    from webapp import db

    def run(refresh: Any) -> float:
        original = services.refresh_funnel_deal
        services.refresh_funnel_deal = refresh
        timings = []
        try:
            with app.app_context():
                deals = db.session.execute(
                    text("SELECT id, pipeline, stage FROM opportunity WHERE status = 'open' "
                         "ORDER BY id LIMIT :n"), {"n": moves}
                ).all()  # fmt: skip
                at = utcnow()
                for deal_id, pipeline, stage in deals:
                    target = "closing" if pipeline == "new_business" else "renewal_signed"
                    target = "negotiation" if stage == target else target
                    started = time.perf_counter()
                    services.enter_stage(db.session, deal_id, target, 50, now=at, by="bench")
                    db.session.flush()
                    timings.append((time.perf_counter() - started) * 1000)
                db.session.rollback()
                assert db.session.get(Opportunity, deals[0][0]) is not None
        finally:
            services.refresh_funnel_deal = original
        return statistics.median(timings)

    without = run(lambda session, opportunity_id: None)
    kept = run(services.refresh_funnel_deal)
    print(f"# a stage move (enter_stage + flush), median of {moves}: {without:.1f} ms without "
          f"the roll-up, {kept:.1f} ms keeping it")  # fmt: skip


def sign_in(app: Any, username: str) -> Any:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.status_code == 302, f"could not sign in as {username}"
    return client


def time_page(client: Any, path: str) -> tuple[float, float]:
    response = client.get(path)  # warm-up (and a check that the page works)
    assert response.status_code == 200, (path, response.status_code)
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(timings), max(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=10_000_000)
    args = parser.parse_args()
    server = start_postgres()
    if server is None:
        sys.exit("PostgreSQL is not installed")
    try:
        from webapp import create_app, db

        try:
            migrate_to_head(server.url)
        except Exception as exc:  # noqa: BLE001 (another area's migration may be mid-way)
            print(f"# migrations failed ({type(exc).__name__}); schema created from the models")
            from engine.db import Base, create_db_engine

            create_app({"SQLALCHEMY_DATABASE_URI": server.url})  # imports every model
            engine = create_db_engine(server.url)
            Base.metadata.create_all(engine)
            engine.dispose()
        app = create_app({"SQLALCHEMY_DATABASE_URI": server.url, "SECRET_KEY": "bench"})
        users = build_people(app)
        with app.app_context():  # the pipelines' stage properties come from the deployed BPMN
            deploy_files(
                db.session,
                "admin",
                collect_files([ROOT / "processes"]),
                load_form=folder_form_loader(ROOT / "forms"),
                now=utcnow(),
            )
            db.session.commit()
        started = time.perf_counter()
        with app.app_context():
            generate(db.engine, args.opportunities, args.history)
            rows = db.session.execute(text("SELECT count(*) FROM stage_change")).scalar()
        generated = time.perf_counter() - started
        print(f"# {args.opportunities:,} opportunities, {rows:,} stage-history rows "
              f"(generated and analyzed in {generated:.0f} s)")  # fmt: skip
        build_rollup(app)
        print(f"# {platform.platform()}, Python {platform.python_version()}, "
              f"median and max of {ROUNDS} requests after one warm-up")  # fmt: skip
        print(f"{'page':<34} {'user':<10} {'median ms':>10} {'max ms':>10}")
        # The default period is the current quarter; a full past quarter reads more history.
        past = add_months(quarter_start(utcnow().date()), -6)
        year = add_months(past, -9)
        pages = (
            ("/analytics/funnel", "/analytics/funnel"),
            ("/analytics/funnel (past quarter)",
             f"/analytics/funnel?start={past}&end={add_months(past, 3)}"),
            ("/analytics/funnel (past year)",
             f"/analytics/funnel?start={year}&end={add_months(year, 12)}"),
            ("/analytics/forecast", "/analytics/forecast"),
        )  # fmt: skip
        time_stage_moves(app)
        for who in ("director", "manager"):
            client = sign_in(app, users[who])
            for name, path in pages:
                median, worst = time_page(client, path)
                print(f"{name:<34} {who:<10} {median:>10.0f} {worst:>10.0f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
