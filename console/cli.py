"""``autofix``: the console's command line (check, serve, fix)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from agent.wire import ErrorEvent, WireError, decode
from console import __version__
from console.config import (
    ConfigError,
    ConsoleConfig,
    ServiceConfig,
    default_config_path,
    load_config,
)
from console.models import AttemptRow, Denial

EXIT_CONFIG = 2


def _load(path: str | None) -> ConsoleConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"autofix: config error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


# --- check -----------------------------------------------------------------------------------


async def _check(config: ConsoleConfig) -> int:
    from console.fix.git import GitError
    from console.fix.github import repo_from_remote_url, resolve_token
    from console.fix.worktree import check_repo
    from console.link import ProbeError, probe

    failures = 0

    def line(ok: bool | None, text: str) -> None:
        nonlocal failures
        word = "ok  " if ok else ("warn" if ok is None else "FAIL")
        failures += ok is False
        print(f"{word} {text}", flush=True)

    line(True, f"config: {len(config.hosts)} host(s), {len(config.services)} service(s)")
    for host in config.hosts:
        where = "local agent" if host.local else f"{host.user or ''}@{host.target}:{host.port}"
        try:
            hello = await probe(host)
        except ProbeError as exc:
            line(False, f"host {host.name} ({where}): {exc}")
        else:
            line(
                True,
                f"host {host.name} ({where}): agent {hello.agent_version} on {hello.host!r}, "
                f"host key known, last seq {hello.last_seq}",
            )
    token = resolve_token(config.github.token)
    for service in config.services:
        try:
            url = await check_repo(
                service.repo, base_branch=service.base_branch, remote=service.remote
            )
        except GitError as exc:
            line(False, f"service {service.name}: {exc}")
            continue
        repo = service.repo
        line(True, f"service {service.name}: {repo} on {service.base_branch}, remote {url}")
        github_repo = service.github_repo or repo_from_remote_url(url)
        if github_repo is None:
            line(
                None,
                f"service {service.name}: no GitHub repository; approvals push the branch only",
            )
        elif token is None:
            line(
                False,
                f"service {service.name}: no GitHub token (github.token, GITHUB_TOKEN or "
                "`gh auth token`) to open PRs",
            )
        else:
            line(True, f"service {service.name}: PRs go to {github_repo}")
    claude = shutil.which(config.claude.command)
    if claude is None:
        line(
            False,
            f"claude: {config.claude.command!r} not found; install Claude Code "
            "(npm i -g @anthropic-ai/claude-code) and log in",
        )
    else:
        proc = await asyncio.create_subprocess_exec(
            claude, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        line(proc.returncode == 0, f"claude: {claude} ({out.decode().strip()[:80]})")
    line(*await _check_sandbox())
    from console.telegram.probe import check_telegram

    telegram = await check_telegram(config.telegram)
    line(telegram.ok, telegram.text)
    return 1 if failures else 0


async def _check_sandbox() -> tuple[bool, str]:
    """Whether bubblewrap can build the cage that an unreviewed fix's tests run in, tried
    for real on a scratch directory: without it every attempt fails at its test step."""
    import tempfile

    from console.fix.sandbox.cage import CageUnavailable, cage_for, check_cage

    with tempfile.TemporaryDirectory(prefix="autofix-check-") as scratch:
        try:
            cage = cage_for(Path(scratch))
            await check_cage(cage)
        except CageUnavailable as exc:
            return False, f"sandbox: {exc}"
    return (
        True,
        f"sandbox: {cage.bwrap} builds the test cage (no network, writes only in the worktree)",
    )


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    return asyncio.run(_check(config))


# --- serve -----------------------------------------------------------------------------------


def describe_event(event: Any) -> str | None:
    """One line per engine event for the headless modes (serve, fix, demo --headless)."""
    from console.engine import AttemptChanged, ErrorChanged, LinkChanged, Notice

    if isinstance(event, Notice):
        return f"[{event.level}] {event.text}"
    if isinstance(event, ErrorChanged):
        e = event.error
        return (
            f"error {e.id} {e.state.value} {e.severity} [{e.service}] x{e.count} "
            f"{e.error_type}: {e.message[:100]}"
        )
    if isinstance(event, AttemptChanged):
        a = event.attempt
        return f"attempt {a.id} (error {a.error_id}) {a.state.value}" + (
            f": {a.reason}" if a.reason else ""
        )
    if isinstance(event, LinkChanged):
        s = event.status
        return f"link {s.host} {s.state}" + (f": {s.error}" if s.error else "")
    return None


class EventPrinter:
    """Prints engine events as lines; a link's repeated status (its lag ticking) once."""

    def __init__(self) -> None:
        self._links: dict[str, str] = {}

    def __call__(self, event: Any) -> None:
        from console.engine import LinkChanged

        text = describe_event(event)
        if text is None:
            return
        if isinstance(event, LinkChanged):
            if self._links.get(event.status.host) == text:
                return
            self._links[event.status.host] = text
        print(text, flush=True)


async def _serve(config: ConsoleConfig) -> int:
    from console.session import running

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    printer = EventPrinter()
    async with running(config) as engine:
        engine.subscribe(printer)
        telegram = "Telegram on" if config.telegram.enabled else "Telegram not configured"
        print(f"autofix serve: {len(config.hosts)} host(s), {telegram}; Ctrl+C stops", flush=True)
        await stop.wait()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    return asyncio.run(_serve(config))


# --- fix -------------------------------------------------------------------------------------


def error_from_json(text: str, service: str, seq: int) -> ErrorEvent:
    """Accept a stream line (``error_type``) or a ``scan`` result (``type``) as the error."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object describing one error")
    if "error_type" not in obj and "type" in obj:
        obj["error_type"] = obj["type"]
    obj.update(type="error", seq=seq, host=obj.get("host") or "cli", service=service)
    obj.setdefault("count", 1)
    obj.setdefault("severity", "medium")
    obj.setdefault("route", None)
    obj.setdefault("stack", [])
    for key in ("first_seen", "last_seen"):
        obj.setdefault(key, "")
    if not obj.get("fingerprint"):
        raise ValueError("the error has no 'fingerprint'")
    known = {
        "type", "seq", "host", "service", "fingerprint", "count", "severity", "message",
        "error_type", "stack", "route", "first_seen", "last_seen",
    }  # fmt: skip
    try:
        event = decode(json.dumps({k: v for k, v in obj.items() if k in known}))
    except WireError as exc:
        raise ValueError(str(exc)) from None
    assert isinstance(event, ErrorEvent)
    return event


def print_denials(denials: list[Denial]) -> None:
    """Every call Claude Code was refused, with its rule or reason, after the run."""
    if not denials:
        print("Claude Code was refused no calls", flush=True)
        return
    print(f"Claude Code was refused {len(denials)} call(s):", flush=True)
    for denial in denials:
        print(f"  {denial.line[:300]}", flush=True)


def print_review_notice(attempt: AttemptRow, service: ServiceConfig | None) -> None:
    """What a reviewer must know before the diff goes anywhere: tests, sensitive paths."""
    from console.fix.paths import touched_sensitive

    stats = attempt.diff_stat
    sensitive = touched_sensitive(stats, service.sensitive_paths) if service else []
    if attempt.test_exit_code is None:
        tests = "tests not run"
    elif attempt.test_exit_code == 0:
        tests = "tests passed"
    else:
        tests = f"tests FAILED (exit {attempt.test_exit_code})"
    print(f"fix ready for review: {len(stats)} file(s), {tests}", flush=True)
    if sensitive:
        print(f"⚠ touches sensitive paths: {', '.join(sensitive)}", flush=True)
    if attempt.reason:
        print(f"⚠ {attempt.reason}", flush=True)


async def _fix(config: ConsoleConfig, service: str, error_json: str, yes: bool) -> int:
    from console.engine import AttemptChanged, ClaudeActivity, Engine
    from console.models import State
    from console.widgets.claude_log import ClaudeFormatter

    if config.service(service) is None:
        print(f"autofix fix: service {service!r} is not in the config", file=sys.stderr)
        return EXIT_CONFIG
    engine = await Engine.open(config)
    try:
        seq = await engine.store.last_seq("cli") + 1
        try:
            event = error_from_json(error_json, service, seq)
        except ValueError as exc:
            print(f"autofix fix: --error-json: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        printer = EventPrinter()
        claude = ClaudeFormatter()

        def show(ev: Any) -> None:
            if isinstance(ev, ClaudeActivity):
                for text in claude.lines(ev.event):
                    print(f"  claude: {text.plain.strip()[:200]}", flush=True)
                return
            printer(ev)
            if (
                isinstance(ev, AttemptChanged)
                and ev.attempt.state in (State.REVIEW, State.FAILED, State.INTERRUPTED)
                and not finished.done()
            ):
                finished.set_result(ev.attempt)

        engine.subscribe(show)
        await engine.start(links=False)
        await engine.ingest(event.host, [event])
        errors = await engine.store.errors(limit=10_000, service=service)
        error = next(e for e in errors if e.fingerprint == event.fingerprint)
        if error.state is State.SKIPPED:
            await engine.reopen(error.id, actor="cli")
        if error.state in (State.FAILED, State.INTERRUPTED, State.REVIEW):
            result = await engine.retry(error.id, actor="cli")
        elif error.state is State.PR_OPENED:
            print(f"autofix fix: a PR is already open: {error.state.value}", file=sys.stderr)
            return 1
        else:
            result = await engine.approve(error.id, actor="cli")
        if not result.ok and "already decided" not in result.message:
            print(f"autofix fix: {result.message}", file=sys.stderr)
            return 1
        attempt = await finished
        print_denials(attempt.denials)
        if attempt.state is not State.REVIEW:
            return 1
        if attempt.diff:
            print(attempt.diff)
        print_review_notice(attempt, config.service(service))
        if not yes:
            print("review the diff above; rerun with --yes to push and open the PR")
            return 0
        published = await engine.publish(attempt.id, actor="cli")
        print(published.message)
        return 0 if published.ok else 1
    finally:
        await engine.stop()


def cmd_fix(args: argparse.Namespace) -> int:
    config = _load(args.config)
    try:
        text = sys.stdin.read() if args.error_json == "-" else Path(args.error_json).read_text()
    except OSError as exc:
        print(f"autofix fix: --error-json {args.error_json}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_fix(config, args.service, text, args.yes))


# --- the console ---------------------------------------------------------------------------


def cmd_console(args: argparse.Namespace) -> int:
    from console.app import main as console_main

    return console_main(_load(args.config))


# --- demo ------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from console.demo.run import run_demo
    from console.demo.workspace import default_workspace

    root = Path(args.workspace).expanduser() if args.workspace else default_workspace()
    config = Path(args.config).expanduser() if args.config else None
    return asyncio.run(
        run_demo(
            root,
            fresh=args.fresh,
            headless=args.headless,
            settle_seconds=args.settle_seconds,
            config_path=config,
        )
    )


# --- main ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autofix",
        description="LevAutoFix console: production errors in, reviewed fixes out. "
        "Without a command it opens the full-screen console.",
    )
    parser.add_argument("--version", action="version", version=f"autofix {__version__}")
    config_help = f"console TOML config (default {default_config_path()})"
    parser.add_argument("--config", help=config_help)
    parser.set_defaults(func=cmd_console)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="validate the config and test every part it names")
    check.add_argument("--config", help=config_help)
    check.set_defaults(func=cmd_check)

    serve = sub.add_parser("serve", help="run the engine headless (no terminal UI)")
    serve.add_argument("--config", help=config_help)
    serve.set_defaults(func=cmd_serve)

    fix = sub.add_parser("fix", help="one fix attempt from the command line")
    fix.add_argument("--config", help=config_help)
    fix.add_argument("--service", required=True, help="service the error belongs to")
    fix.add_argument(
        "--error-json",
        required=True,
        metavar="FILE",
        help="the error as a stream line or a `autofix-agent scan` result (- for stdin)",
    )
    fix.add_argument("--yes", action="store_true", help="push and open the PR without asking")
    fix.set_defaults(func=cmd_fix)

    demo = sub.add_parser("demo", help="the whole loop on this machine, no config needed")
    demo.add_argument("--workspace", help="where the demo keeps its repo and state")
    demo.add_argument("--fresh", action="store_true", help="start from a new workspace")
    demo.add_argument(
        "--config",
        help="a console config of your own (read, never written; default: the workspace's "
        "console.toml, regenerated on each start)",
    )
    demo.add_argument(
        "--headless",
        action="store_true",
        help="print events instead of the terminal UI, approving the first error",
    )
    demo.add_argument(
        "--settle-seconds", type=float, default=5.0, help="agent settle window (default 5)"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="autofix: %(message)s")
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.func(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
