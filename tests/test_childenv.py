"""The allow-listed environment children of the console get: nothing secret leaks through."""

from __future__ import annotations

import string
import subprocess

from hypothesis import given
from hypothesis import strategies as st

from console.fix.sandbox.childenv import BASE_NAMES, CREDENTIAL_NAMES, child_env

SECRETS = {
    "GITHUB_TOKEN": "ghp_secretsecret",
    "AUTOFIX_TELEGRAM_TOKEN": "123456:AAsecret",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "GH_TOKEN": "gho_secret",
    "NPM_TOKEN": "npm_secret",
    "LD_PRELOAD": "/tmp/evil.so",
    "NODE_OPTIONS": "--require /tmp/evil.js",
}
CONSOLE_ENV = {
    **SECRETS,
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/dev",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "xterm-256color",
    "TMPDIR": "/tmp",
    "ANTHROPIC_API_KEY": "sk-ant-key",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "CLAUDE_CONFIG_DIR": "/home/dev/.claude",
}

NAMES = st.text(alphabet=string.ascii_uppercase + string.digits + "_", min_size=1, max_size=24)


def test_secrets_of_the_console_never_reach_a_child() -> None:
    for allow_credentials in (True, False):
        env = child_env(CONSOLE_ENV, allow_credentials=allow_credentials)
        assert not set(SECRETS) & set(env)
        assert env["PATH"] == "/usr/bin:/bin" and env["HOME"] == "/home/dev"
        assert env["LC_ALL"] == "C.UTF-8" and env["TERM"] == "xterm-256color"


def test_only_the_cli_gets_its_credentials() -> None:
    cli = child_env(CONSOLE_ENV, allow_credentials=True)
    tests = child_env(CONSOLE_ENV, allow_credentials=False)
    assert cli["ANTHROPIC_API_KEY"] == "sk-ant-key"
    assert cli["CLAUDE_CONFIG_DIR"] == "/home/dev/.claude"
    assert not CREDENTIAL_NAMES & set(tests)


def test_configured_extra_variables_are_added_verbatim() -> None:
    env = child_env(CONSOLE_ENV, allow_credentials=False, extra={"NODE_ENV": "test", "HOME": "/h"})
    assert env["NODE_ENV"] == "test"
    assert env["HOME"] == "/h"


def test_a_real_child_process_sees_only_the_allowed_names() -> None:
    env = child_env(CONSOLE_ENV, allow_credentials=False, extra={"EXTRA": "1"})
    shown = subprocess.run(["/usr/bin/env"], env=env, capture_output=True, text=True, check=True)
    names = {line.split("=", 1)[0] for line in shown.stdout.splitlines()}
    assert names == set(env)
    assert "ghp_secretsecret" not in shown.stdout


def _expected(name: str, credentials: bool) -> bool:
    locale = name.startswith("LC_") and name != "LC_"
    return name in BASE_NAMES or locale or (credentials and name in CREDENTIAL_NAMES)


@given(
    st.dictionaries(
        st.one_of(NAMES, st.sampled_from(sorted(BASE_NAMES | CREDENTIAL_NAMES | {"LC_", "LC_X"}))),
        st.text(max_size=8),
        max_size=30,
    ),
    st.booleans(),
)
def test_exactly_the_allow_listed_names_pass(base: dict[str, str], credentials: bool) -> None:
    env = child_env(base, allow_credentials=credentials)
    assert env == {n: v for n, v in base.items() if _expected(n, credentials)}
