"""``autofix-agent``: run, stream, scan and check."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

from agent import __version__
from agent.config import AgentConfig, ConfigError, SourceConfig, load_config

DEFAULT_CONFIG = "/etc/autofix-agent/agent.toml"
EXIT_CONFIG = 2


def _config_path(value: str | None) -> str:
    return value or os.environ.get("AUTOFIX_AGENT_CONFIG") or DEFAULT_CONFIG


def _load(path: str) -> AgentConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"autofix-agent: config error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from agent.daemon import Daemon
    from agent.outbox import OutboxError

    config = _load(_config_path(args.config))
    if not config.sources:
        print("autofix-agent: config error: sources: no [[sources]] configured", file=sys.stderr)
        return EXIT_CONFIG
    try:
        daemon = Daemon(config)
    except OutboxError as exc:
        print(f"autofix-agent: {exc}", file=sys.stderr)
        return 1
    asyncio.run(daemon.run())
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from agent.stream import StreamRefused, parse_since, run_stream, since_from_ssh_command

    config_path = _config_path(args.config)
    original = os.environ.get("SSH_ORIGINAL_COMMAND")
    try:
        if original is not None:
            since = since_from_ssh_command(original, config_path)
        else:
            since = parse_since(args.since)
    except StreamRefused as exc:
        print(f"autofix-agent: refused: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    config = _load(config_path)
    return run_stream(config, since)


def cmd_scan(args: argparse.Namespace) -> int:
    from agent.scan import run_scan

    return run_scan(
        args.files,
        service=args.service,
        settle_seconds=args.settle_seconds,
        output_format=args.format,
    )


def cmd_check(args: argparse.Namespace) -> int:
    import glob  # here, not at the top: every `scan` would load it, and only `check` needs it

    path = _config_path(args.config)
    config = _load(path)
    print(f"ok   config {path}: host {config.host!r}, {len(config.sources)} source(s)")
    failures = 0
    state = config.state_dir
    probe = state if state.exists() else next((p for p in state.parents if p.exists()), Path("/"))
    if os.access(probe, os.W_OK):
        print(f"ok   state_dir {state} is writable")
    else:
        print(f"FAIL state_dir {state}: not writable by this user")
        failures += 1
    for i, src in enumerate(config.sources):
        if src.journald is not None:
            failures += _check_journald(i, src)
            continue
        if src.otlp is not None:
            failures += _check_otlp(i, src)
            continue
        if src.command:
            exe = src.command[0]
            found = exe if os.path.isabs(exe) and os.access(exe, os.X_OK) else None
            if found is None:
                found = shutil.which(exe)
            if found:
                print(f"ok   sources[{i}] {src.service}: command {exe} found at {found}")
            else:
                print(f"FAIL sources[{i}] {src.service}: command {exe!r} not found on PATH")
                failures += 1
            continue
        for pattern in src.paths:
            matches = glob.glob(pattern, recursive=True)
            unreadable = [m for m in matches if not os.access(m, os.R_OK)]
            if unreadable:
                print(f"FAIL sources[{i}] {src.service}: cannot read {', '.join(unreadable[:5])}")
                failures += 1
            elif matches:
                print(f"ok   sources[{i}] {src.service}: {pattern} matches {len(matches)} file(s)")
            else:
                print(
                    f"warn sources[{i}] {src.service}: {pattern} matches no file yet "
                    "(files that appear later are picked up)"
                )
    return 1 if failures + _check_health(config) else 0


def _check_journald(index: int, src: SourceConfig) -> int:
    """journalctl found, and the journal files or directory it is given exist."""
    assert src.journald is not None
    name = f"sources[{index}] {src.service}"
    exe = src.journald.journalctl
    found = exe if os.path.isabs(exe) and os.access(exe, os.X_OK) else shutil.which(exe)
    if not found:
        print(f"FAIL {name}: journalctl {exe!r} not found on PATH")
        return 1
    missing = [f for f in src.journald.files if not os.path.exists(f)]
    if src.journald.directory and not os.path.isdir(src.journald.directory):
        missing.append(src.journald.directory)
    if missing:
        print(f"FAIL {name}: journal {', '.join(missing)} does not exist")
        return 1
    print(f"ok   {name}: {src.journald.describe()} with {found}")
    return 0


def _check_otlp(index: int, src: SourceConfig) -> int:
    """The address can be listened on (or is already, by a running agent), and whether
    protobuf bodies can be read here."""
    import errno
    import importlib.util
    import socket

    from agent.otlp import is_loopback

    assert src.otlp is not None
    name = f"sources[{index}] {src.otlp.describe()}"
    try:
        proto = importlib.util.find_spec("opentelemetry.proto") is not None
    except (ImportError, ValueError):
        proto = False
    bodies = "JSON and protobuf" if proto else "JSON only (install levautofix[otlp] for protobuf)"
    try:
        infos = socket.getaddrinfo(src.otlp.host, src.otlp.port, type=socket.SOCK_STREAM)
        family, kind, _, _, address = infos[0]
        with socket.socket(family, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"ok   {name}: in use (by the running agent?); accepts {bodies}")
            return 0
        print(f"FAIL {name}: cannot listen there: {exc.strerror or exc}")
        return 1
    if not is_loopback(src.otlp.host):
        print(f"warn {name}: not a loopback address; anyone who can reach it can send records")
    print(f"ok   {name}: can listen; accepts {bodies}")
    return 0


def _check_health(config: AgentConfig) -> int:
    """Say which sources ``run`` had to restart; a source waiting for its restart fails."""
    from agent.outbox import OutboxReader

    reader = OutboxReader(config.db_path)
    try:
        health = {h.source: h for h in reader.source_health()}
    finally:
        reader.close()
    failures = 0
    for i, src in enumerate(config.sources):
        h = health.get(src.label)
        if h is None:
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.last_failure))
        said = f"failed {h.failures} time(s), last at {when}: {h.last_error}"
        if h.state == "failed":
            print(f"FAIL sources[{i}] {src.service}: {said}; waiting to be restarted")
            failures += 1
        else:
            print(f"warn sources[{i}] {src.service}: {said}; restarted and running")
    return failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autofix-agent",
        description="LevAutoFix prod agent: tails logs, groups errors, relays them to the console.",
    )
    parser.add_argument("--version", action="version", version=f"autofix-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the daemon: tail sources and keep events in the outbox")
    run.add_argument("--config", help=f"agent TOML config (default {DEFAULT_CONFIG})")
    run.set_defaults(func=cmd_run)

    stream = sub.add_parser("stream", help="print stored and new events as JSON lines")
    # Checked by the command itself, so a bad value is one line on stderr, not a usage dump.
    stream.add_argument("--since", default="0", help="last seq already seen")
    stream.add_argument("--config", help=f"agent TOML config (default {DEFAULT_CONFIG})")
    stream.set_defaults(func=cmd_stream)

    scan = sub.add_parser("scan", help="one-shot analysis of existing logs, from the beginning")
    scan.add_argument("files", nargs="+", metavar="FILE", help="log files, or - for stdin")
    scan.add_argument("--service", help="service name (default: the file name)")
    scan.add_argument(
        "--settle-seconds",
        type=_non_negative_float,
        default=30.0,
        help="gap that separates bursts of one error (default 30)",
    )
    scan.add_argument(
        "--format",
        choices=("table", "json"),
        help="a table for people or one JSON object per group and line "
        "(default: table when stdout is a terminal, json otherwise)",
    )
    scan.set_defaults(func=cmd_scan)

    check = sub.add_parser("check", help="validate the config and the sources it names")
    check.add_argument("--config", help=f"agent TOML config (default {DEFAULT_CONFIG})")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`, a closed SSH channel) went away: not an error of ours.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
