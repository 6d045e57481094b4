"""The cage for code nobody has reviewed yet: the service's tests run on Claude's edits.

Claude may edit the test files and whatever defines the test run, so the test command is
treated as hostile code. It runs under bubblewrap with:

* no network: its own network namespace, which has only a loopback of its own (a listener
  on the developer's loopback is out of reach);
* the whole file system read-only, except the worktree, a private ``/tmp`` and a private,
  empty ``HOME``; the worktree's ``.git`` file is bound read-only over itself, so the
  repository's shared git directory (hooks, config) cannot be written nor re-pointed;
* the developer's home directory, ``/run`` (sockets of ssh agents, Docker, D-Bus) and the
  console's state directory hidden behind empty tmpfs mounts;
* its own PID, IPC and UTS namespaces, every capability dropped, and death with the console:
  when bubblewrap's first process ends, the kernel ends every process left in the
  namespace, including ones that left the process group.

The environment is built by the caller (an allow list without any credential); bubblewrap
adds nothing to it. There is no fallback: without a working bubblewrap the tests do not run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from console.children import end, spawn

INSTALL_HINT = "apt-get install bubblewrap"
# Inside the cage: the private home sits in the private /tmp, so both vanish with the run.
CAGE_TMP = "/tmp"
CAGE_HOME = "/tmp/home"
_PROBE_TIMEOUT_S = 20.0


class CageUnavailable(RuntimeError):
    """bubblewrap is missing or cannot build its sandbox here, so nothing is run."""


@dataclass(frozen=True)
class Cage:
    """Where one caged run may write and what it must not see.

    ``worktree`` is the only host directory it can change; ``hidden`` are host paths covered
    by empty tmpfs mounts (the developer's home, the console's state); ``bwrap`` is the
    bubblewrap executable.
    """

    bwrap: str
    worktree: Path
    hidden: tuple[Path, ...] = ()

    def argv(self, command: Sequence[str]) -> list[str]:
        """The bubblewrap command line that runs ``command`` in the worktree, caged."""
        wt = str(self.worktree)
        args = [
            self.bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", CAGE_TMP,
            "--tmpfs", "/run",
        ]  # fmt: skip
        for path in self.hidden:
            args += ["--tmpfs", str(path)]
        # Binds come after the tmpfs mounts, so a worktree inside a hidden directory (a
        # checkout under the developer's home, a test's tmp dir) is still there.
        args += ["--bind", wt, wt]
        gitfile = self.worktree / ".git"
        if gitfile.exists() or gitfile.is_symlink():
            args += ["--ro-bind", str(gitfile), str(gitfile)]
        args += [
            "--dir", CAGE_HOME,
            "--chdir", wt,
            "--unshare-all",
            "--cap-drop", "ALL",
            "--die-with-parent",
            "--",
            *command,
        ]  # fmt: skip
        return args


def find_bwrap() -> str:
    """The bubblewrap executable, or :class:`CageUnavailable` naming how to install it."""
    found = shutil.which("bwrap")
    if found is None:
        raise CageUnavailable(
            "bubblewrap (bwrap) is not installed, and the tests of an unreviewed fix only "
            f"run inside its sandbox; install it with `{INSTALL_HINT}`"
        )
    return found


def cage_for(worktree: Path, *, hidden: Iterable[Path] = ()) -> Cage:
    """The cage of one worktree; the real ``HOME`` is always among the hidden paths.

    A hidden path that is the worktree itself, or inside it, or ``/``, is left alone:
    covering it would hide the code under test or everything.
    """
    worktree = Path(worktree).resolve()
    candidates = [Path(os.environ.get("HOME") or "/"), *hidden]
    kept: list[Path] = []
    for path in candidates:
        if not path.is_absolute():
            continue
        resolved = path.resolve()
        if resolved == Path("/") or resolved == worktree or worktree in resolved.parents:
            continue
        if resolved.is_dir() and resolved not in kept:
            kept.append(resolved)
    return Cage(bwrap=find_bwrap(), worktree=worktree, hidden=tuple(kept))


def cage_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` (already free of credentials) with the cage's private home and tmp."""
    return {**base, "HOME": CAGE_HOME, "TMPDIR": CAGE_TMP}


async def check_cage(cage: Cage) -> None:
    """Prove that bubblewrap can build this very sandbox (user namespaces may be off, a
    mount may fail); it costs a few milliseconds before a run of minutes.

    A failing probe is :class:`CageUnavailable` with bubblewrap's own words, so the attempt
    says why its tests did not run instead of reporting a failed suite.
    """
    try:
        proc = await spawn(
            *cage.argv(["/bin/true"]),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.defpath},
        )
    except OSError as exc:
        raise CageUnavailable(f"bubblewrap ({cage.bwrap}) could not be started: {exc}") from exc
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT_S):
            _, err = await proc.communicate()
    except TimeoutError:
        await end(proc, group=False)
        raise CageUnavailable(
            f"bubblewrap ({cage.bwrap}) did not start a sandbox in {_PROBE_TIMEOUT_S:g}s"
        ) from None
    except asyncio.CancelledError:  # the attempt stopped: no probe is left behind
        await end(proc, group=False)
        raise
    if proc.returncode != 0:
        detail = err.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        raise CageUnavailable(f"bubblewrap cannot build the test sandbox here: {detail}")
