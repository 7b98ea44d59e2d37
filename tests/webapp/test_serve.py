"""`stagecraft serve` (what `make run` starts) really serves pages and runs the rules."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import migrate_to_head


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_and_runs_the_scheduler(tmp_path: Path):
    database = tmp_path / "serve.db"
    url = f"sqlite:///{database}"
    migrate_to_head(url)
    port = _free_port()
    command = [sys.executable, "-m", "webapp.cli", "serve", "--port", str(port)]
    env = {**os.environ, "DATABASE_URL": url}
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status = None
        for _ in range(100):  # wait for the server to come up, at most about 20 s
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as reply:
                    status = reply.status
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200
        for _ in range(100):  # the scheduler fires every rule once at start
            with sqlite3.connect(database) as db:
                if db.execute(
                    "select count(*) from rule_run where rule = 'fire_timers'"
                ).fetchone()[0]:
                    break
            time.sleep(0.2)
        with sqlite3.connect(database) as db:
            assert db.execute(
                "select error from rule_run where rule = 'fire_timers'"
            ).fetchone() == (None,)
    finally:
        server.terminate()
        server.wait(timeout=10)
