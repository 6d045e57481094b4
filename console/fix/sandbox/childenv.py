"""The environment of every child process that can run code the model influenced.

Claude Code, and the test command run on its edits, execute code nobody has reviewed yet. The
console's own environment holds secrets that must never reach that code (the GitHub and
Telegram tokens, the ssh agent, cloud keys), so children never inherit it: they get an allow
list of what a process needs to run at all, optionally the Claude Code CLI's own credentials,
and whatever the user configured explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping

# What any program needs to find binaries, its home and temp dir, and to print text.
BASE_NAMES = frozenset({"PATH", "HOME", "TERM", "TMPDIR", "LANG", "LANGUAGE"})
LOCALE_PREFIX = "LC_"
# What the Claude Code CLI needs to authenticate and find its endpoint and config; only the
# CLI itself gets these, never the test run.
CREDENTIAL_NAMES = frozenset(
    {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "CLAUDE_CONFIG_DIR"}
)


def is_allowed(name: str, *, allow_credentials: bool) -> bool:
    """Whether a variable of the console's environment may pass to a child."""
    if name in BASE_NAMES or (name.startswith(LOCALE_PREFIX) and len(name) > len(LOCALE_PREFIX)):
        return True
    return allow_credentials and name in CREDENTIAL_NAMES


def child_env(
    base: Mapping[str, str],
    *,
    allow_credentials: bool,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The allow-listed part of ``base`` (usually ``os.environ``) plus ``extra``.

    ``allow_credentials`` carries the Claude Code CLI's credentials and config dir over; leave
    it off for anything else. ``extra`` (``claude.extra_env``) is added last and verbatim: it
    is the user's explicit choice, so it may set any name, including one the allow list drops.
    """
    env = {
        name: value
        for name, value in base.items()
        if is_allowed(name, allow_credentials=allow_credentials)
    }
    env.update({str(name): str(value) for name, value in (extra or {}).items()})
    return env
