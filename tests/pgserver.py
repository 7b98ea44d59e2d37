"""Start a throwaway PostgreSQL server in a temporary folder for the test session."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TempPostgres:
    url: str
    datadir: Path
    bindir: Path
    as_postgres: list[str]

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_postgres() -> TempPostgres | None:
    """Return a running server, or None when PostgreSQL is not installed."""
    bindir = _bindir()
    if bindir is None:
        return None
    root = Path(tempfile.mkdtemp(prefix="stagecraft-pg-"))
    datadir = root / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root.
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o755)
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-A",
            "trust",
            "-U",
            "stagecraft",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = " ".join(
        [
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            # A throwaway server: durability buys nothing here and slows every commit.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        ]
    )
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            str(bindir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "stagecraft",
            "stagecraft_test",
        ],
        check=True,
        capture_output=True,
    )
    url = f"postgresql+psycopg://stagecraft@127.0.0.1:{port}/stagecraft_test"
    return TempPostgres(url, datadir, bindir, as_postgres)
