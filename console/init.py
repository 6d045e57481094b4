"""``autofix init``: a first config from a few answers, the host's key shown before it is
trusted, then ``autofix check`` on the result.

Every answer can come from a flag instead (``--non-interactive`` asks nothing), so a
script can write the same file. A host key is added to known_hosts only after the person
compared its fingerprint and said yes, or, in a script, with ``--trust-host-key``: strict
host keys are the link's only defence against a host in the middle, and init must not
quietly undo that.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from console.config import ConfigError, default_config_path, load_config
from console.fix.git import git_argv

DEFAULT_KEY = "~/.ssh/autofix_ed25519"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_USER = "autofix"


class InitError(RuntimeError):
    """An answer init cannot use; the message names it."""


@dataclass(frozen=True)
class Destination:
    """Where the agent's host is reached: ``[user@]host[:port]`` as a person types it."""

    target: str
    port: int = 22
    user: str = DEFAULT_USER

    @classmethod
    def parse(cls, text: str, *, user: str | None = None, port: int | None = None) -> Destination:
        rest = text.strip()
        who, _, rest = rest.rpartition("@")
        if rest.startswith("["):  # [::1]:2222
            host, _, tail = rest[1:].partition("]")
            number = tail.removeprefix(":")
        elif rest.count(":") == 1:
            host, _, number = rest.partition(":")
        else:
            host, number = rest, ""
        if not host or any(c.isspace() for c in host):
            raise InitError(f"host {text!r}: expected [user@]host[:port]")
        if number and not (number.isascii() and number.isdigit() and 0 < int(number) < 65536):
            raise InitError(f"host {text!r}: port {number!r} is not a number from 1 to 65535")
        return cls(
            target=host,
            port=port or (int(number) if number else 22),
            user=user or who or DEFAULT_USER,
        )

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts (and so the link's check) uses for this host and port."""
        return self.target if self.port == 22 else f"[{self.target}]:{self.port}"


@dataclass(frozen=True)
class Answers:
    """What the starter config is made from."""

    repo: Path
    service: str
    base_branch: str
    host: Destination | None
    key: str
    known_hosts: str
    agent_command: str | None = None


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, control characters included."""
    return json.dumps(text, ensure_ascii=False)


def starter_config(answers: Answers) -> str:
    """The commented config a first run starts from; every key is in the README's
    Console config reference."""
    lines = [
        "# LevAutoFix console config, written by `autofix init`. Every key is described in",
        "# the README (Console config reference); `autofix check` tries each part for real.",
        "",
        'auto_approve = []   # severities whose fixes start without a person (e.g. ["low"])',
        "concurrency = 1     # fix attempts at once",
        "",
    ]
    if answers.host is None:
        lines += [
            "# The prod host whose autofix-agent the console reads over SSH:",
            "# [[hosts]]",
            '# name = "prod-1"',
            '# target = "prod-1.example.com"',
            f"# user = {toml_string(DEFAULT_USER)}",
            f"# key = {toml_string(answers.key)}",
            "",
        ]
    else:
        host = answers.host
        lines += [
            "[[hosts]]",
            f"name = {toml_string(host.target)}   # the host's name in the console",
            f"target = {toml_string(host.target)}",
            f"port = {host.port}",
            f"user = {toml_string(host.user)}   # its authorized_keys forces the agent's stream",
            f"key = {toml_string(answers.key)}   # the key of that forced-command login",
            f"known_hosts = {toml_string(answers.known_hosts)}   # host keys, checked strictly",
        ]
        if answers.agent_command:
            lines.append(f"agent_command = {toml_string(answers.agent_command)}")
        lines.append("")
    lines += [
        "[[services]]",
        f"name = {toml_string(answers.service)}   # the service name the agent reports",
        f"repo = {toml_string(str(answers.repo))}   # the local git checkout",
        f"base_branch = {toml_string(answers.base_branch)}   # where fixes start and PRs go",
        'test_command = "npm test"   # run caged on Claude\'s edits',
        '# setup_command = "npm ci"   # worktrees start without node_modules',
        "",
        "[claude]",
        "max_turns = 30",
        "max_budget_usd = 2.0   # one attempt's spending limit",
        "",
        "# Approvals open PRs with GITHUB_TOKEN (or `gh auth token`); for GitHub Enterprise:",
        "# [github]",
        '# api_url = "https://ghe.example.com/api/v3"',
        "",
        "# The phone workflow: the bot token in AUTOFIX_TELEGRAM_TOKEN, your numeric user id",
        "# [telegram]",
        "# allowed_user_ids = [123456789]",
        "",
    ]
    return "\n".join(lines)


def current_branch(repo: Path) -> str:
    """The branch the checkout is on, the likeliest base for fixes; ``main`` otherwise."""
    done = subprocess.run(
        git_argv("-C", str(repo), "symbolic-ref", "--short", "-q", "HEAD"),
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "main"


async def offered_key(host: Destination, timeout: float = 15.0) -> asyncssh.SSHKey:
    """The host key the server offers, read without logging in or trusting it."""
    try:
        async with asyncio.timeout(timeout):
            key = await asyncssh.get_server_host_key(host.target, host.port, config=None)
    except TimeoutError:
        raise InitError(f"{host.target}:{host.port} did not answer in {timeout:.0f}s") from None
    except (OSError, asyncssh.Error) as exc:
        raise InitError(f"cannot reach {host.target}:{host.port}: {exc}") from None
    if key is None:
        raise InitError(f"{host.target}:{host.port} offered no host key")
    return key


def known_keys(known_hosts: Path, host: Destination) -> list[asyncssh.SSHKey]:
    """Keys ``known_hosts`` already trusts for the host (none when the file is missing)."""
    if not known_hosts.is_file():
        return []
    try:
        return list(
            asyncssh.read_known_hosts(str(known_hosts)).match(host.target, "", host.port)[0]
        )
    except (OSError, ValueError) as exc:
        raise InitError(f"cannot read {known_hosts}: {exc}") from None


def add_known_host(known_hosts: Path, host: Destination, key: asyncssh.SSHKey) -> None:
    """Append the host's key as ssh-keyscan would write it."""
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    entry = key.export_public_key("openssh").decode().split()[:2]
    existing = known_hosts.read_text() if known_hosts.is_file() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    with known_hosts.open("a", encoding="utf-8") as out:
        out.write(f"{separator}{host.known_hosts_name} {' '.join(entry)}\n")
    known_hosts.chmod(0o600)


Ask = Callable[[str, str], str]


def asker(interactive: bool) -> Ask:
    """``ask(question, default)``: the typed answer, or the default on an empty line, at the
    end of input, or when nothing may be asked."""

    def ask(question: str, default: str) -> str:
        if not interactive:
            return default
        shown = f" [{default}]" if default else ""
        print(f"{question}{shown}: ", end="", flush=True)
        line = sys.stdin.readline()
        if not sys.stdin.isatty():  # a terminal echoes the typed line's end itself
            print(line.strip())
        return line.strip() or default

    return ask


@dataclass(frozen=True)
class InitOptions:
    """``autofix init``'s flags; a None answer is asked (or defaulted when non-interactive)."""

    config: Path
    repo: str | None = None
    service: str | None = None
    base_branch: str | None = None
    host: str | None = None
    user: str | None = None
    port: int | None = None
    key: str | None = None
    known_hosts: str | None = None
    agent_command: str | None = None
    interactive: bool = True
    trust_host_key: bool = False
    force: bool = False


def gather(options: InitOptions, ask: Ask) -> Answers:
    """The answers, from the flags first and questions for the rest."""
    repo_text = options.repo or ask("Repository of the service (a local git checkout)", ".")
    repo = Path(repo_text).expanduser().resolve()
    if not (repo / ".git").exists():
        raise InitError(f"repo {repo}: not a git checkout (no .git in it)")
    service = options.service or ask("Service name, as the agent reports it", repo.name)
    host_text = options.host
    if host_text is None:
        host_text = ask("Prod host running autofix-agent, [user@]host[:port] (empty: none yet)", "")
    host = (
        Destination.parse(host_text, user=options.user, port=options.port)
        if host_text.strip()
        else None
    )
    key = options.key or (
        ask("SSH key for the agent's stream", DEFAULT_KEY) if host else DEFAULT_KEY
    )
    return Answers(
        repo=repo,
        service=service.strip(),
        base_branch=options.base_branch or current_branch(repo),
        host=host,
        key=key,
        known_hosts=options.known_hosts or DEFAULT_KNOWN_HOSTS,
        agent_command=options.agent_command,
    )


async def trust_host(answers: Answers, options: InitOptions, ask: Ask) -> None:
    """Show the host's key; add it to known_hosts only when the person (or the flag) says so."""
    host = answers.host
    assert host is not None
    known_hosts = Path(answers.known_hosts).expanduser()
    key = await offered_key(host)
    fingerprint = key.get_fingerprint()
    where = f"{host.target}:{host.port}"
    print(f"{where} offers the host key {key.get_algorithm()} {fingerprint}")
    known = known_keys(known_hosts, host)
    if any(k.public_data == key.public_data for k in known):
        print(f"  already trusted in {known_hosts}")
        return
    if known:
        print(
            f"  {known_hosts} has a DIFFERENT key for {where} "
            f"({', '.join(k.get_fingerprint() for k in known)}); not changed. If the host was "
            "reinstalled, check the new key on it and remove the old line first."
        )
        return
    print(
        "  Compare it with what the host itself says, e.g. "
        "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run there."
    )
    if options.trust_host_key:
        yes = True
    elif options.interactive:
        yes = ask(f"  Add it to {known_hosts}? (yes/no)", "no").lower() in ("y", "yes")
    else:
        yes = False
    if not yes:
        how = "" if options.interactive else " (--trust-host-key adds it)"
        print(f"  not added to {known_hosts}{how}; the link refuses the host until it is there")
        return
    add_known_host(known_hosts, host, key)
    print(f"  added to {known_hosts} as {host.known_hosts_name}")


async def run_init(options: InitOptions) -> int:
    """``autofix init``: 0 when the written config passes ``check``, 1 when a check failed,
    2 when no config was written."""
    from console.check import run_check

    path = options.config
    if path.exists() and not options.force:
        print(f"autofix init: {path} exists; --force replaces it", file=sys.stderr)
        return 2
    ask = asker(options.interactive)
    try:
        answers = gather(options, ask)
        if answers.host is not None:
            await trust_host(answers, options, ask)
    except InitError as exc:
        print(f"autofix init: {exc}", file=sys.stderr)
        return 2
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(starter_config(answers), encoding="utf-8")
    print(f"wrote {path}")
    try:
        config = load_config(path)
    except ConfigError as exc:  # an answer the config refuses, named by its key
        print(f"autofix init: config error: {exc}", file=sys.stderr)
        return 2
    hint = "" if path == default_config_path() else f" --config {path}"
    print(f"autofix check{hint}:", flush=True)
    return await run_check(config)
