"""The console without its screen: ``autofix serve``, ``autofix fix`` and ``demo --headless``.

Each prints the engine's events as lines (:class:`EventPrinter`) instead of painting them;
every decision is still the engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.wire import ErrorEvent, WireError, decode
from console.config import EXIT_CONFIG, ConsoleConfig, ServiceConfig
from console.events import Listener
from console.models import STATE_LABELS, AttemptRow, Denial, attempt_name

if TYPE_CHECKING:
    from console.engine import Engine

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def describe_event(event: Any) -> str | None:
    """One line per engine event for the headless modes (serve, fix, demo --headless)."""
    from console.events import AttemptChanged, ErrorChanged, LinkChanged, Notice

    if isinstance(event, Notice):
        return f"[{event.level}] {event.text}"
    if isinstance(event, ErrorChanged):
        e = event.error
        return (
            f"error {e.id} ({STATE_LABELS.get(e.state, e.state.value)}) {e.severity} "
            f"[{e.service}] x{e.count} "
            f"{e.error_type}: {e.message[:100]}"
        )
    if isinstance(event, AttemptChanged):
        a = event.attempt
        return f"{attempt_name(a)} of error {a.error_id}: {STATE_LABELS[a.state]}" + (
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
        from console.events import LinkChanged

        text = describe_event(event)
        if text is None:
            return
        if isinstance(event, LinkChanged):
            if self._links.get(event.status.host) == text:
                return
            self._links[event.status.host] = text
        print(text, flush=True)


class ClaudeLines:
    """Claude's stream as the Claude panel words it: what it read, edited and ran;
    ``numbered`` names the attempt on each line (the demo may run several), by its error
    and its number on that error, as the attempt events tell them."""

    def __init__(self, *, numbered: bool = False) -> None:
        from console.widgets.claude_log import ClaudeFormatter

        self.formatter = ClaudeFormatter()
        self.numbered = numbered
        self._names: dict[int, str] = {}

    def __call__(self, event: Any) -> None:
        from console.events import AttemptChanged, ClaudeActivity

        if isinstance(event, AttemptChanged):
            a = event.attempt
            self._names[a.id] = f"claude, {attempt_name(a)} of error {a.error_id}"
        elif isinstance(event, ClaudeActivity):
            label = self._names.get(event.attempt_id, "claude") if self.numbered else "claude"
            for line in self.formatter.lines(event.event):
                print(f"  {label}: {line.plain.strip()[:200]}", flush=True)


async def serve(
    config: ConsoleConfig,
    banner: str | None = None,
    listeners: Callable[[Engine], Sequence[Listener]] = lambda engine: (),
    config_path: Path | None = None,
) -> int:
    """Run the engine (and Telegram when configured), its events printed, until Ctrl+C,
    SIGTERM or a closed terminal. The printer (and ``listeners`` made for the engine)
    subscribe before the engine starts, so the notices of its recovery are printed too.
    ``banner`` is printed once it runs. SIGUSR1 reads ``config_path`` again, as ``R``
    does in the console (a closed terminal's SIGHUP stops it, so that one cannot)."""
    from console.engine import Engine
    from console.session import running

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    engine = await Engine.open(config)
    engine.config_path = config_path
    engine.subscribe(EventPrinter())
    for listener in listeners(engine):
        engine.subscribe(listener)
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        result = await engine.reload_config()
        print(f"autofix serve: {result.message}", flush=True)

    def on_reload_signal() -> None:
        task = asyncio.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, on_reload_signal)
    async with running(config, engine=engine):
        if banner is None:
            telegram = "Telegram on" if config.telegram.enabled else "Telegram not configured"
            print(
                f"autofix serve: {len(config.hosts)} host(s), {telegram}; Ctrl+C stops",
                flush=True,
            )
        else:
            print(banner, flush=True)
        await stop.wait()
    return 0


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


async def fix(
    config: ConsoleConfig, service: str, error_json: str, yes: bool, again: str = "autofix fix"
) -> int:
    """``autofix fix``: one attempt on one error, its diff printed, published with ``yes``.
    Without ``yes`` the attempt stays in review with its worktree, and the last line says
    how to publish it (``again`` is how this command was started, ``--config`` included)
    without running Claude again."""
    from console.engine import Engine
    from console.events import AttemptChanged, ClaudeActivity
    from console.models import State

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
        claude = ClaudeLines()

        def show(ev: Any) -> None:
            if isinstance(ev, ClaudeActivity):
                claude(ev)
                return
            printer(ev)
            if (
                isinstance(ev, AttemptChanged)
                and ev.attempt.state in (State.REVIEW, State.FAILED, State.INTERRUPTED)
                and not finished.done()
            ):
                finished.set_result(ev.attempt)

        unsubscribe = engine.subscribe(show)
        await engine.start(links=False)
        await engine.ingest(event.host, [event])
        errors = await engine.store.errors(limit=10_000, service=service)
        error = next(e for e in errors if e.fingerprint == event.fingerprint)
        result = await engine.fix(error.id, actor="cli")
        if not result.ok:
            print(f"autofix fix: {result.message}", file=sys.stderr)
            return 1
        attempt = await finished
        # From here on this function says what happens itself, each thing once.
        unsubscribe()
        print_denials(attempt.denials)
        if attempt.state is not State.REVIEW:
            return 1
        if attempt.diff:
            print(attempt.diff)
        print_review_notice(attempt, config.service(service))
        if not yes:
            print(
                f"{attempt_name(attempt, error)} waits in review with its worktree; to publish "
                f"it without running Claude again: {again} --publish {attempt.id}"
            )
            return 0
        return await _publish(engine, attempt.id)
    finally:
        await engine.stop()


async def publish(config: ConsoleConfig, attempt_id: int) -> int:
    """``autofix fix --publish ATTEMPT``: push (and open the PR of) an attempt a run without
    ``--yes`` left in review, from its own worktree; Claude does not run again."""
    from console.engine import Engine

    engine = await Engine.open(config)
    try:
        await engine.start(links=False)
        return await _publish(engine, attempt_id)
    finally:
        await engine.stop()


async def _publish(engine: Engine, attempt_id: int) -> int:
    published = await engine.publish(attempt_id, actor="cli")
    print(published.message, file=sys.stdout if published.ok else sys.stderr, flush=True)
    return 0 if published.ok else 1
