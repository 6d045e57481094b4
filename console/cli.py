"""``autofix``: the console's command line. Arguments only: each command is run by the
module that holds it (check, headless, app, demo)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from console import __version__
from console.config import (
    EXIT_CONFIG,
    ConfigError,
    ConsoleConfig,
    default_config_path,
    load_config,
)
from console.statelock import HeldLock, StateBusy, hold

# What the ``console`` extra installs, by import name: a prod host with the agent alone has
# none of them, and every ``autofix`` command needs them.
CONSOLE_MODULES = (
    "textual",
    "asyncssh",
    "aiosqlite",
    "orjson",
    "telegram",
    "httpx",
    "textual_plotext",
    "textual_serve",
)


def missing_console_modules() -> list[str]:
    return [name for name in CONSOLE_MODULES if importlib.util.find_spec(name) is None]


def no_config_message(path: Path) -> str:
    """What a first run without any config file is told: where it looked and what to run."""
    return (
        f"autofix: no config file at {path}\n"
        "  To try the whole loop on this machine without one: autofix demo\n"
        "  To write one for your own service from a few questions: autofix init\n"
        "  (or write it by hand, README: Console config reference, and pass it with "
        "--config FILE, before or after the command)"
    )


def _load(path: str | None) -> ConsoleConfig:
    where = Path(path or default_config_path()).expanduser()
    if path is None and not where.exists():
        print(no_config_message(where), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"autofix: config error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


# --- commands ------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from console.check import run_check

    return asyncio.run(run_check(_load(args.config)))


def _holding_store(config: ConsoleConfig) -> HeldLock:
    """The state directory's lock for a console or ``serve``; a second one on the same
    store is told who holds it and exits 1."""
    try:
        return hold(config.state_dir)
    except StateBusy as exc:
        print(f"autofix: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from console.headless import serve

    path = Path(args.config or default_config_path())
    config = _load(args.config)
    with _holding_store(config):
        return asyncio.run(serve(config, config_path=path))


def cmd_fix(args: argparse.Namespace) -> int:
    from console.headless import fix, publish

    config = _load(args.config)
    if args.publish is not None:
        return asyncio.run(publish(config, args.publish))
    if args.service is None or args.error_json is None:
        print(
            "autofix fix: --service and --error-json are required (or --publish ATTEMPT)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    again = "autofix fix" + (f" --config {shlex.quote(args.config)}" if args.config else "")
    try:
        text = sys.stdin.read() if args.error_json == "-" else Path(args.error_json).read_text()
    except OSError as exc:
        print(f"autofix fix: --error-json {args.error_json}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(fix(config, args.service, text, args.yes, again))


def cmd_init(args: argparse.Namespace) -> int:
    from console.init import InitOptions, run_init

    options = InitOptions(
        config=Path(args.config or default_config_path()).expanduser(),
        repo=args.repo,
        service=args.service,
        base_branch=args.base_branch,
        host=args.host,
        user=args.user,
        port=args.port,
        key=args.key,
        known_hosts=args.known_hosts,
        agent_command=args.agent_command,
        interactive=not args.non_interactive,
        trust_host_key=args.trust_host_key,
        force=args.force,
    )
    return asyncio.run(run_init(options))


# --- the console ---------------------------------------------------------------------------


def cmd_console(args: argparse.Namespace) -> int:
    from console.app import main as console_main

    config = _load(args.config)
    with _holding_store(config):
        return console_main(config, Path(args.config or default_config_path()))


def cmd_web(args: argparse.Namespace) -> int:
    from console.web import serve_web

    path = Path(args.config or default_config_path()).expanduser().resolve()
    config = _load(str(path))  # a bad config is named here, not in each browser session
    return asyncio.run(serve_web(path, args.host, args.port, state_dir=config.state_dir))


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
    # A command's own --config counts only when given, so that leaving it out does not
    # undo one given before the command (``autofix --config FILE check``).
    sub_config: dict[str, Any] = {"help": config_help, "default": argparse.SUPPRESS}

    check = sub.add_parser("check", help="validate the config and test every part it names")
    check.add_argument("--config", **sub_config)
    check.set_defaults(func=cmd_check)

    init = sub.add_parser(
        "init", help="write a commented starter config from a few questions, then check it"
    )
    init.add_argument(
        "--config",
        help="where to write it (default the default config path)",
        default=argparse.SUPPRESS,
    )
    init.add_argument("--repo", help="the service's local git checkout (default .)")
    init.add_argument("--service", help="the service name the agent reports (default: repo's)")
    init.add_argument("--base-branch", help="where fixes start (default: the checked-out one)")
    init.add_argument("--host", help="the agent's host, [user@]host[:port] ('' for none yet)")
    init.add_argument("--user", help="SSH user on the host (default autofix)")
    init.add_argument("--port", type=int, help="SSH port (default 22)")
    init.add_argument(
        "--key", help="private key of the stream's login (default ~/.ssh/autofix_ed25519)"
    )
    init.add_argument("--known-hosts", help="host keys file (default ~/.ssh/known_hosts)")
    init.add_argument("--agent-command", help="the command run on the host, if not the default")
    init.add_argument(
        "--non-interactive",
        action="store_true",
        help="ask nothing: flags or defaults for every answer",
    )
    init.add_argument(
        "--trust-host-key",
        action="store_true",
        help="add the host's key to known_hosts without asking",
    )
    init.add_argument("--force", action="store_true", help="replace an existing config")
    init.set_defaults(func=cmd_init)

    serve = sub.add_parser("serve", help="run the engine headless (no terminal UI)")
    serve.add_argument("--config", **sub_config)
    serve.set_defaults(func=cmd_serve)

    web = sub.add_parser(
        "web", help="serve the console in a browser (127.0.0.1, behind a printed token)"
    )
    web.add_argument("--config", **sub_config)
    web.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other is warned about)",
    )
    web.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    web.set_defaults(func=cmd_web)

    fix = sub.add_parser("fix", help="one fix attempt from the command line")
    fix.add_argument("--config", **sub_config)
    fix.add_argument("--service", help="service the error belongs to")
    fix.add_argument(
        "--error-json",
        metavar="FILE",
        help="the error as a stream line or a `autofix-agent scan` result (- for stdin)",
    )
    fix.add_argument("--yes", action="store_true", help="push and open the PR without asking")
    fix.add_argument(
        "--publish",
        type=int,
        metavar="ATTEMPT",
        help="publish an attempt an earlier `fix` left in review (Claude does not run again)",
    )
    fix.set_defaults(func=cmd_fix)

    demo = sub.add_parser("demo", help="the whole loop on this machine, no config needed")
    demo.add_argument("--workspace", help="where the demo keeps its repo and state")
    demo.add_argument("--fresh", action="store_true", help="start from a new workspace")
    demo.add_argument(
        "--config",
        default=argparse.SUPPRESS,
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
    missing = missing_console_modules()
    if missing:
        print(
            f"autofix: the console's dependencies are not installed (missing: "
            f"{', '.join(missing)}); this looks like an agent-only install. "
            "Install `levautofix[console]`: pip install 'levautofix[console]'",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.func(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
