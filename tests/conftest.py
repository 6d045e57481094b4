"""Shared test plumbing: locating the real components the suite drives.

Tests that need a real component (node, logrotate, sshd, the Claude Code CLI) ask for it
through :func:`require_tool`. Locally a missing component skips the test with the command
that installs it; under ``CI=true`` it fails the run, so CI can never pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.parse import Assembler
from agent.record import ErrorRecord

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
# The sample Node.js service with real bugs; it ships in the package for `autofix demo`.
SERVICE_DIR = ROOT / "console" / "demo" / "service"
NODE_BIN = TESTS / "node_modules" / ".bin"
IN_CI = os.environ.get("CI", "").lower() == "true"

# The service's logging libraries (pino, winston, bunyan) are installed for the tests in
# tests/node_modules, not beside the service: let every node the tests start find them.
os.environ["NODE_PATH"] = os.pathsep.join(
    p for p in (str(TESTS / "node_modules"), os.environ.get("NODE_PATH", "")) if p
)

_KNOWN_LOCATIONS = {
    "claude": [NODE_BIN / "claude"],
    "sshd": [Path("/usr/sbin/sshd")],
    "logrotate": [Path("/usr/sbin/logrotate")],
    "systemd-journal-remote": [
        Path("/lib/systemd/systemd-journal-remote"),
        Path("/usr/lib/systemd/systemd-journal-remote"),
    ],
}


def require_tool(name: str) -> str:
    """Return the path of a real component, or fail (CI) / skip (local) if it is missing."""
    for candidate in _KNOWN_LOCATIONS.get(name, []):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed; `make test` installs it"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_module(name: str) -> Any:
    """Import a Python package from the dev extra, or fail (CI) / skip (local) without it."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python package {name} is not installed; `make test` installs the dev extra"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def require_demo_claude() -> Path:
    """The pinned Claude Code CLI ``autofix demo`` runs without a login (``.venv/claude``)."""
    from console.demo.claude_cli import PINNED_PREFIX, pinned_cli

    cli = pinned_cli()
    if cli is not None:
        return cli
    message = f"the demo's Claude Code CLI is not in {PINNED_PREFIX}; `make test` links it"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def without_claude_login(home: Path) -> dict[str, str]:
    """The environment of a machine where no logged-in ``claude`` can be found: an empty
    home, no Anthropic or Claude variables, and no ``claude`` on PATH."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "CLAUDE_")) and k != "STRIPE_SECRET_KEY"
    }
    dirs = [
        d for d in env.get("PATH", "").split(os.pathsep) if d and not Path(d, "claude").exists()
    ]
    env.update(HOME=str(home), PATH=os.pathsep.join([str(Path(sys.executable).parent), *dirs]))
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    return env


def scan_service_error(tmp_path: Path, scenario: str) -> dict[str, Any]:
    """Run the demo service's ``--once`` scenario into a log dir and return the one error
    group ``autofix-agent scan`` reads from its error log."""
    import json

    logs = tmp_path / f"logs-{scenario}"
    subprocess.run(
        [require_tool("node"), str(SERVICE_DIR / "app.js"), "--once", scenario,
         "--log-dir", str(logs)],
        check=True, capture_output=True, env=node_env(), timeout=30,
    )  # fmt: skip
    scan = subprocess.run(
        [sys.executable, "-m", "agent.cli", "scan", "--service", "PA", str(logs / "pa-error.log")],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    [group] = [json.loads(line) for line in scan.stdout.splitlines()]
    assert isinstance(group, dict)
    return group


def require_node_modules(*packages: str) -> Path:
    """The pinned npm packages (logging libraries, Claude CLI) installed by `make test`.

    ``packages`` names the ones a test needs beyond pino (an older install may lack them).
    """
    modules = TESTS / "node_modules"
    missing = [p for p in ("pino", *packages) if not (modules / p).is_dir()]
    if missing:
        message = (
            f"tests/node_modules lacks {', '.join(missing)}; "
            "`make test` runs `npm ci --prefix tests`"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return modules


@pytest.fixture
def agent_cmd() -> list[str]:
    """The `autofix-agent` command as an operator would run it (same interpreter)."""
    return [sys.executable, "-m", "agent.cli"]


@pytest.fixture
def isolated_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git without the developer's own config (and git required)."""
    from tests.service_repo import isolate_git

    isolate_git(tmp_path, monkeypatch)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """An empty bare repository with ``main`` as its default branch."""
    from tests.service_repo import git

    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    return bare


@pytest.fixture
def clone(tmp_path: Path, remote: Path) -> Path:
    """A developer's checkout of ``remote`` with one pushed commit on ``main``."""
    from tests.service_repo import git

    work = tmp_path / "service"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "main")
    (work / "src").mkdir()
    (work / "src" / "app.js").write_text("module.exports = 1;\n")
    (work / ".gitignore").write_text("node_modules/\n")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "initial")
    git(work, "push", "-q", "origin", "main")
    return work


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The engine's world (tests/engine_world.py): real agent stream, repo, Claude, GitHub."""
    from tests.engine_world import open_world

    async with open_world(tmp_path, monkeypatch) as w:
        yield w


@pytest.fixture
def notifications() -> Callable[[Any], list[tuple[str, str]]]:
    """Records what an app notifies from the moment it is attached, as (severity, message),
    through the app's public ``notify``: kept after a toast times out (on a busy machine a
    toast can be gone before the test gets to look at it)."""

    def attach(app: Any) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        notify = app.notify

        def recording(message: str, *args: Any, **kwargs: Any) -> None:
            seen.append((str(kwargs.get("severity", "information")), str(message)))
            notify(message, *args, **kwargs)

        app.notify = recording
        return seen

    return attach


@pytest.fixture
async def bot_phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The Telegram bot on a bare engine and the Bot API stand-in (tests/telegram_phone.py)."""
    from tests.telegram_phone import open_phone

    async with open_phone(tmp_path, monkeypatch) as phone:
        yield phone


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server for the session (Debian's binaries, a cluster in a temp dir), with
    a migrated template database each test's database is cloned from."""
    from postgres_server import PostgresServer, binary

    if binary("initdb") is None or binary("pg_ctl") is None:
        message = "PostgreSQL (initdb, pg_ctl) is not installed; `make test` installs it"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    require_module("psycopg")
    server = PostgresServer.start()
    try:
        asyncio.run(_make_template(server))
        yield server
    finally:
        server.stop()


PG_TEMPLATE = "autofix_template"


async def _make_template(server: Any) -> None:
    import psycopg

    from console.store import Store

    async with await psycopg.AsyncConnection.connect(server.dsn(), autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {PG_TEMPLATE}")
    store = await Store.open(server.dsn(PG_TEMPLATE))
    await store.close()


@pytest.fixture
def pg_database(postgres: Any) -> Iterator[Callable[..., str]]:
    """Make fresh databases on the session's server: ``make()`` clones the migrated
    template, ``make(empty=True)`` is a database with no tables. Dropped after the test."""
    import psycopg

    made: list[str] = []

    def make(*, empty: bool = False) -> str:
        name = f"t{os.getpid()}_{len(made)}_{time.monotonic_ns()}"
        template = "template0" if empty else PG_TEMPLATE
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        made.append(name)
        return postgres.dsn(name)

    yield make
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_address(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a store test's store lives: a SQLite file, then a PostgreSQL database, so the
    store's whole behaviour is pinned down on both backends."""
    if request.param == "sqlite":
        return tmp_path / "state" / "console.db"
    make: Callable[..., str] = request.getfixturevalue("pg_database")
    return make()


@pytest.fixture
async def store(store_address: str | Path) -> AsyncIterator[Any]:
    from console.store import Store

    s = await Store.open(store_address)
    yield s
    await s.close()


def _store_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "connection_worker" in t.name and t.is_alive()}


@pytest.fixture(autouse=True)
def no_store_left_open() -> Iterator[None]:
    """A store left open keeps aiosqlite's worker thread, and so the test run, alive."""
    before = _store_threads()
    yield
    deadline = time.monotonic() + 2.0
    while (_store_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = _store_threads() - before
    if left:
        pytest.fail(f"the test left {len(left)} store(s) open; close them (or stop the engine)")


def pytest_unconfigure(config: pytest.Config) -> None:
    """A non-daemon thread still running here would hang the run forever (and CI until its
    time limit): name it and end the run as failed instead."""
    alive = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if alive:
        names = ", ".join(t.name for t in alive)
        sys.stderr.write(f"\ntests left {len(alive)} thread(s) running: {names}\n")
        sys.stderr.flush()
        os._exit(3)


def node_env() -> dict[str, str]:
    """The environment for node scripts run by tests: no secrets, no inherited options."""
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_SECRET_KEY"}
    env["NODE_OPTIONS"] = ""
    return env


def run_node_script(tmp_path: Path, source: str, name: str = "script.js") -> str:
    """Run ``source`` with the real node; return stdout+stderr as a log would hold them."""
    node = require_tool("node")
    script = tmp_path / name
    script.write_text(source)
    done = subprocess.run(
        [node, str(script)], capture_output=True, text=True, timeout=30, env=node_env()
    )
    return done.stdout + done.stderr


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[ErrorRecord]:
    """Every record an Assembler finds in ``data`` fed in pieces cut at ``cuts``."""
    assembler = Assembler()
    records: list[ErrorRecord] = []
    start = 0
    for cut in [*cuts, len(data)]:
        records.extend(assembler.feed(data[start:cut], start))
        start = cut
    records.extend(assembler.flush(eof=True))
    return records


@pytest.fixture
def agent_factory() -> Iterator:
    """Makes `autofix-agent run` processes (see tests.agent_process); all stopped after."""
    from tests.agent_process import Agent

    agents: list[Agent] = []

    def make(config: Path, log: Path) -> Agent:
        agent = Agent(config, log)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


async def eventually(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    context: Callable[[], str] = lambda: "",
) -> Any:
    """The first truthy value of ``predicate`` (sync or async), polled every ``interval``
    seconds; past ``timeout`` an AssertionError naming ``what`` and ``context()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; {context()}")


# How long a teardown step (an engine's or a bot's stop) may take on a busy machine.
STOP_SECONDS = 60.0


async def stopped(stop: Awaitable[None], what: str, seconds: float = STOP_SECONDS) -> None:
    """Await a teardown step; one still running after ``seconds`` fails the test, naming
    ``what`` and where the loop's other tasks wait, instead of hanging until the run's
    time limit with nothing to say."""
    task = asyncio.ensure_future(stop)
    done, _ = await asyncio.wait({task}, timeout=seconds)  # waits without cancelling it
    if done:
        task.result()
        return
    me = asyncio.current_task()
    waiting = [_waits_at(t) for t in asyncio.all_tasks() if t is not me and not t.done()]
    task.cancel()
    raise AssertionError(
        f"{what} did not finish within {seconds:g} s; tasks still waiting: " + "; ".join(waiting)
    )


def _waits_at(task: asyncio.Task[Any]) -> str:
    """A task's name and the innermost line its coroutine chain is suspended at."""
    coro: Any = task.get_coro()
    where = "?"
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return f"{task.get_name()} at {where}"
