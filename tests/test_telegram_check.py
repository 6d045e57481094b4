"""``autofix check``'s Telegram line, from the real command against the Bot API stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.telegram_api import OWN_NUMBER, TelegramApi

TOKEN_ENV = "AUTOFIX_TEST_TELEGRAM_TOKEN"


def telegram_line(tmp_path: Path, api: TelegramApi, token: str | None) -> str:
    config = tmp_path / "console.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "console"}"\n'
        f'[telegram]\nallowed_user_ids = [4242]\ntoken_env = "{TOKEN_ENV}"\n'
        f'api_base_url = "{api.url}"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    proc = subprocess.run(
        [sys.executable, "-m", "console.cli", "check", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    for form in (api.token, api.token.lower(), api.token.split(":")[1]):
        assert form not in proc.stdout + proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if " telegram: " in x]
    return line


def test_check_says_whether_the_bot_logs_in_and_can_poll_without_confirming_anything(
    tmp_path: Path,
) -> None:
    with TelegramApi() as api:
        line = telegram_line(tmp_path, api, api.token)
        assert line == (
            "ok   telegram: @autofix_test_bot answers in chat(s) 4242; 0 update(s) waiting"
        )

        api.push_raw(None, {"update_id": OWN_NUMBER, "message": api.message_json(4242, "/q")})
        line = telegram_line(tmp_path, api, api.token)
        assert line.startswith("warn telegram:") and "2 update(s) waiting, 1 unreadable" in line
        assert api.pending_updates() == 2, "the peek confirmed nothing"

        api.webhook_url = "https://old.example/hook"
        line = telegram_line(tmp_path, api, api.token)
        assert line.startswith("warn") and "a webhook is set (https://old.example/hook)" in line

        line = telegram_line(tmp_path, api, "999999:not-the-right-token-at-all")
        assert line.startswith("FAIL telegram: Telegram refused the bot token")

        line = telegram_line(tmp_path, api, None)
        assert line.startswith("FAIL telegram: bot token:") and TOKEN_ENV in line


def test_check_reports_an_unreachable_api_without_the_token(tmp_path: Path) -> None:
    with TelegramApi() as api:
        pass  # closed: its address now refuses connections
    line = telegram_line(tmp_path, api, api.token)
    assert line.startswith("FAIL telegram:") and "unreachable" in line, line
