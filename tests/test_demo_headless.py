"""``autofix demo`` on a machine without a logged-in ``claude``: the real, pinned Claude Code
CLI against the scripted demo model really fixes the first error, and a user's own config
is read, never written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.demo.model import PREPARED_FIXES, PreparedFix, demo_model
from tests.conftest import (
    SERVICE_DIR,
    node_env,
    require_demo_claude,
    require_tool,
    scan_service_error,
    without_claude_login,
)
from tests.service_repo import make_service_repo

BIN = Path(sys.executable).parent
SCRIPTED_LINE = "autofix demo: Claude: scripted demo model; log in to `claude` for real fixes"
# From start to a diff in review on a busy 2-core machine: settle, worktree, CLI, tests.
REVIEW_WITHIN_SECONDS = 240


class Demo:
    """``autofix demo --headless`` as a user starts it, read line by line as it runs."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.workspace = tmp_path / "ws"
        self.proc = subprocess.Popen(
            [str(BIN / "autofix"), "demo", "--headless", "--workspace", str(self.workspace),
             "--settle-seconds", "1", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=without_claude_login(tmp_path / "home"),
            start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.out = ""

    def read(self) -> str:
        assert self.proc.stdout is not None
        self.out += (self.proc.stdout.read() or b"").decode()
        return self.out

    def wait_for(self, text: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.proc.poll() is None:
            if text in self.read():
                return True
            time.sleep(0.2)
        return text in self.read()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), True)
        self.out += self.proc.stdout.read().decode()
        return self.out


@pytest.mark.slow
def test_headless_demo_without_login_fixes_the_first_error_with_the_real_cli(
    tmp_path: Path,
) -> None:
    require_tool("node")
    require_tool("git")
    require_tool("bwrap")
    require_demo_claude()
    demo = Demo(tmp_path)
    started = time.monotonic()
    try:
        reached = demo.wait_for("fix ready for review", REVIEW_WITHIN_SECONDS)
        took = time.monotonic() - started
    finally:
        out = demo.stop()
    assert reached, out
    lines = out.splitlines()
    assert lines[0] == SCRIPTED_LINE, out
    [approved] = re.findall(r"^autofix demo: approving error (\d+) \(headless: the first error\)$",
                            out, flags=re.M)  # fmt: skip
    # Error lines name the state as the table does ("awaiting approval", not "awaiting_approval").
    message = re.search(
        rf"^error {approved} \(awaiting approval\) \w+ \[PA\] x\d+ (.*)$", out, flags=re.M
    )
    assert message is not None, out
    [fix] = [f for f in PREPARED_FIXES if f.pattern.search(message.group(1))]
    # The CLI really read, edited, wrote and ran the tests, as the Claude panel words it.
    label = f"  claude, attempt 1 of error {approved}: "
    claude = [line.removeprefix(label) for line in lines if line.startswith(label)]
    edited = fix.edits[0].path
    assert f"→ Read {edited}" in claude, claude
    assert any(line.startswith(f"→ Edit {edited} (+") for line in claude), claude
    assert any(line.startswith(f"→ Write {fix.test_path}") for line in claude), claude
    assert "→ Bash node --test" in claude and "⎿ exit 0" in claude, claude
    # The scripted model spends nothing, and the CLI's own price for the run says so.
    [done] = [line for line in claude if line.startswith("✓ done · ")]
    assert done.startswith("✓ done · 6 turns · "), claude
    assert done.endswith(" · $0.0000"), done
    assert "fix ready for review: 2 file(s), tests passed" in out
    # The diff in review is the prepared fix, and the service's tests pass in the worktree.
    [worktree] = (demo.workspace / "pa" / ".worktrees" / "hotfix").iterdir()
    for edit in fix.edits:
        original = (SERVICE_DIR / edit.path).read_text()
        assert (worktree / edit.path).read_text() == original.replace(edit.old, edit.new)
        assert f"diff --git a/{edit.path} b/{edit.path}" in out
    assert (worktree / fix.test_path).read_text() == fix.test_source
    assert f"diff --git a/{fix.test_path} b/{fix.test_path}\nnew file mode 100644" in out
    changed = subprocess.run(
        ["git", "status", "--porcelain"], cwd=worktree, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == sorted(
        [*(e.path for e in fix.edits), fix.test_path]
    )
    tests = subprocess.run(
        [require_tool("node"), "--test"], cwd=worktree, capture_output=True, text=True,
        env=node_env(), timeout=120,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert took < REVIEW_WITHIN_SECONDS
    assert "autofix demo: stopped" in out and demo.proc.returncode == 0, out


def test_demo_with_a_config_of_the_users_own_reads_it_and_never_writes_it(
    tmp_path: Path,
) -> None:
    require_tool("node")
    require_tool("git")
    state = tmp_path / "my-state"
    mine = tmp_path / "mine.toml"
    repo = tmp_path / "ws" / "pa"
    mine.write_text(
        f'# my variation\nstate_dir = "{state}"\n'
        f'[[services]]\nname = "PA"\nrepo = "{repo}"\ntest_command = "node --test"\n'
    )
    before = (mine.read_bytes(), mine.stat().st_mtime_ns)
    demo = Demo(tmp_path, "--config", str(mine))
    try:
        served = demo.wait_for("Ctrl+C stops", 60)
    finally:
        out = demo.stop()
    assert served, out
    assert (mine.read_bytes(), mine.stat().st_mtime_ns) == before
    # The engine ran on the user's state_dir, not the workspace's default one.
    assert (state / "console.db").is_file(), out
    assert not (tmp_path / "ws" / "console" / "console.db").exists()
    assert demo.proc.returncode == 0, out


def test_demo_with_a_broken_config_names_the_key_and_starts_nothing(tmp_path: Path) -> None:
    require_tool("node")
    require_tool("git")
    mine = tmp_path / "mine.toml"
    mine.write_text('concurrency = "two"\n')
    demo = Demo(tmp_path, "--config", str(mine))
    demo.proc.wait(60)
    out = demo.stop()
    assert demo.proc.returncode == 2, out
    assert out.startswith(f"autofix demo: config error: {mine}: concurrency"), out
    assert "Traceback" not in out


# The demo service's --once scenario that logs each prepared fix's error.
SCENARIOS = {
    "unknown user": "users",
    "malformed product list": "products",
    "payments without a Stripe key": "payments",
    "stock service down": "inventory",
}


@pytest.mark.slow
@pytest.mark.parametrize("fix", PREPARED_FIXES, ids=lambda fix: fix.name)
def test_every_prepared_fix_passes_the_caged_tests_through_the_real_cli(
    tmp_path: Path, fix: PreparedFix, isolated_git_config: None
) -> None:
    require_tool("bwrap")
    cli = require_demo_claude()
    repo, _ = make_service_repo(tmp_path)
    error_json = tmp_path / "error.json"
    error_json.write_text(json.dumps(scan_service_error(tmp_path, SCENARIOS[fix.name])))
    with demo_model() as model:
        extra = "\n".join(f'{k} = "{v}"' for k, v in model.endpoint_env().items())
        config = tmp_path / "console.toml"
        config.write_text(
            f'state_dir = "{tmp_path / "console"}"\n'
            f'[[services]]\nname = "PA"\nrepo = "{repo}"\ntest_command = "node --test"\n'
            f'[claude]\ncommand = "{cli}"\ntimeout_seconds = 120\n[claude.extra_env]\n{extra}\n'
        )
        proc = subprocess.run(
            [str(BIN / "autofix"), "fix", "--config", str(config), "--service", "PA",
             "--error-json", str(error_json)],
            capture_output=True, text=True, timeout=240,
            env=without_claude_login(tmp_path / "home"),
        )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Claude Code was refused no calls" in out, out
    assert "fix ready for review: 2 file(s), tests passed" in out
    for edit in fix.edits:
        added = [line for line in edit.new.splitlines() if line not in edit.old.splitlines()]
        assert all(f"\n+{line}\n" in proc.stdout for line in added), out
    assert all(f"\n+{line}\n" in proc.stdout for line in fix.test_source.splitlines() if line)
