"""A throwaway PostgreSQL server for the tests: Debian's binaries, a cluster in a temp dir.

The cluster is made with ``initdb`` and run with ``pg_ctl`` listening only on a Unix socket in
its own directory (no TCP port, so parallel runs never collide). PostgreSQL refuses to run as
root, so when the tests run as root both commands run as the ``postgres`` user, who then owns
the directory. Each test gets a fresh database cloned from a migrated template, which is far
faster than migrating a new database per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Debian installs the server binaries per major version, off PATH.
_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def binary(name: str) -> str | None:
    """A PostgreSQL server binary (``initdb``, ``pg_ctl``), newest version first."""
    for directory in _BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@dataclass
class PostgresServer:
    """A running cluster: ``dsn(db)`` names a database on its socket."""

    root: Path
    user: str

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def dsn(self, database: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.user}@/{database}?host={self.socket_dir}"

    @classmethod
    def start(cls) -> PostgresServer:
        initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise FileNotFoundError("initdb/pg_ctl")
        root = Path(tempfile.mkdtemp(prefix="autofix-pg-"))
        server = cls(root, "autofix")
        server.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(server.socket_dir, "postgres", "postgres")
        subprocess.run(
            _as_server_user(
                [
                    initdb,
                    "-D",
                    str(server.data_dir),
                    "-U",
                    server.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        # The superuser the fixtures use needs no password; every other role logs in with
        # one (SCRAM), so a test can check that the store's password reaches the server.
        hba = server.data_dir / "pg_hba.conf"
        hba.write_text(f"local all {server.user} trust\nlocal all all scram-sha-256\n")
        if os.geteuid() == 0:
            shutil.chown(hba, "postgres", "postgres")
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{server.socket_dir}' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        subprocess.run(
            _as_server_user(
                [
                    pg_ctl,
                    "-D",
                    str(server.data_dir),
                    "-l",
                    str(server.root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return server

    def stop(self) -> None:
        pg_ctl = binary("pg_ctl")
        if pg_ctl is not None:
            subprocess.run(
                _as_server_user([pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def lock_holder(dsn: str, role: str) -> int | None:
    """The server backend holding a store's advisory lock on ``role`` (``host web-1``, the
    ``telegram bot``), if any."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 0)",
            (role,),
        ).fetchone()
    return int(row[0]) if row else None


def terminate(dsn: str, pid: int) -> None:
    """End a server backend from a connection of its own, as an operator would with
    ``pg_terminate_backend``; returns once it has ended (and so released its locks)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()
    if row != (True,):
        raise RuntimeError(f"backend {pid} did not end")
