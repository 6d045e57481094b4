"""The demo's workspace: the service's git repo, its bare ``origin``, and both configs.

It lives in the user's data dir and is reused by the next ``autofix demo`` (errors, fixes
and decisions survive), unless ``--fresh`` asks for a new one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from console.config import ConsoleConfig, default_state_dir, load_config
from console.fix.git import git_argv, git_env

SERVICE_SOURCE = Path(__file__).resolve().parent / "service"
SERVICE_NAME = "PA"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "pa"

    @property
    def origin(self) -> Path:
        return self.root / "origin.git"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def agent_state(self) -> Path:
        return self.root / "agent-state"

    @property
    def agent_config(self) -> Path:
        return self.root / "agent.toml"

    @property
    def console_config(self) -> Path:
        return self.root / "console.toml"


def default_workspace() -> Path:
    return default_state_dir() / "demo"


class WorkspaceError(RuntimeError):
    """The workspace cannot be made; the message says what is missing."""


def _git(cwd: Path, *args: str) -> None:
    proc = subprocess.run(git_argv(*args), cwd=cwd, capture_output=True, text=True, env=git_env())
    if proc.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")


def console_state_dir(root: Path) -> Path:
    """Where the demo's own console config keeps its store (and the lock on it)."""
    return root / "console"


def _clear(directory: Path, keep: Path | None) -> None:
    """Remove everything in ``directory`` but ``keep`` (the held lock: removing it would
    let a second demo take a new one while this one runs)."""
    for child in directory.iterdir():
        if keep is not None and child == keep:
            continue
        if keep is not None and child.is_dir() and keep.is_relative_to(child):
            _clear(child, keep)
        elif child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def prepare(
    root: Path, *, fresh: bool = False, settle_seconds: float = 5.0, keep: Path | None = None
) -> Workspace:
    """Create the workspace, or reuse the one already there; ``fresh`` empties it first,
    all but ``keep``."""
    if shutil.which("git") is None:
        raise WorkspaceError("git is not installed; the demo keeps the service in a git repo")
    ws = Workspace(root)
    if fresh and root.exists():
        _clear(root, keep)
    root.mkdir(parents=True, exist_ok=True)
    if not (ws.repo / ".git").exists():
        if ws.repo.exists():
            shutil.rmtree(ws.repo)
        if ws.origin.exists():
            shutil.rmtree(ws.origin)
        _git(root, "init", "-q", "--bare", "-b", "main", str(ws.origin))
        shutil.copytree(
            SERVICE_SOURCE,
            ws.repo,
            ignore=shutil.ignore_patterns("node_modules", "*.log", "__pycache__"),
        )
        _git(ws.repo, "init", "-q", "-b", "main")
        _git(ws.repo, "config", "user.name", "LevAutoFix demo")
        _git(ws.repo, "config", "user.email", "demo@localhost")
        _git(ws.repo, "add", ".")
        _git(ws.repo, "commit", "-q", "-m", "pa-service: the demo's Node.js service")
        _git(ws.repo, "remote", "add", "origin", str(ws.origin))
        _git(ws.repo, "push", "-q", "origin", "main")
    ws.logs.mkdir(exist_ok=True)
    ws.agent_state.mkdir(exist_ok=True)
    ws.agent_config.write_text(
        f'state_dir = "{ws.agent_state}"\nhost = "demo-host"\n'
        f"[detection]\nsettle_seconds = {settle_seconds}\nmax_settle_seconds = 60\n"
        'update_seconds = 5\nmin_severity = "low"\n'
        f'[[sources]]\nservice = "{SERVICE_NAME}"\npaths = ["{ws.logs}/*.log"]\n'
        "from_beginning = true\n"
    )
    ws.console_config.write_text(
        f'state_dir = "{console_state_dir(root)}"\n'
        f'[[hosts]]\nname = "demo-host"\nlocal = true\n'
        f'agent_command = "{sys.executable} -m agent.cli stream"\n'
        f'agent_config = "{ws.agent_config}"\n'
        f'[[services]]\nname = "{SERVICE_NAME}"\nrepo = "{ws.repo}"\n'
        'test_command = "node --test"\ntest_timeout_seconds = 120\n'
    )
    return ws


def load(ws: Workspace) -> ConsoleConfig:
    """The demo's console config, loaded like any user's (it is a plain TOML file)."""
    return load_config(ws.console_config)
