"""What comes out of the bot is clean: no bot token in any case or encoding anywhere it
writes, and no control characters from Telegram in what it stores or shows."""

from __future__ import annotations

import logging
import string
import sys
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.config import ServiceConfig
from console.models import State
from console.telegram.token import token_pattern
from tests.telegram_phone import OWNER, BotPhone, error_event, open_phone


def token_forms(token: str) -> list[str]:
    secret = token.split(":", 1)[1]
    forms = [token, token.lower(), token.upper(), token.capitalize(), token.swapcase()]
    forms += [quote(token, safe=""), quote(token, safe="").lower(), secret, secret.lower()]
    return forms


async def test_the_token_echoed_by_the_server_in_any_case_reaches_no_log_output_or_message(
    bot_phone: BotPhone, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    api = bot_phone.api
    token = api.token
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(stderr)
    caplog.set_level(logging.DEBUG)
    try:
        dash = await bot_phone.say("/dashboard")
        api.fail_next(
            "answerCallbackQuery",
            "Bad Request: query is too old and response timeout expired "
            f"(POST /bot{token}/answerCallbackQuery)",
        )
        api.tap(OWNER, dash, dash.button("Recent Errors")["callback_data"])
        api.fail_next(
            "sendMessage",
            f"Bad Request: chat not found ({token.upper()} {quote(token, safe='')})",
        )
        api.send_text(OWNER, "/help")
        await bot_phone.until(
            lambda: sum("<bot token>" in n.text for n in bot_phone.notices()) >= 2,
            what="both refusals reported",
        )
        print(*(n.text for n in bot_phone.notices()), sep="\n")  # as `autofix serve` does
    finally:
        logging.getLogger().removeHandler(stderr)
    out, err = capfd.readouterr()
    sent = [str(c.params.get("text", "")) for c in api.calls]
    places = {"stdout": out, "stderr": err, "log records": caplog.text, "messages": "\n".join(sent)}
    assert "answercallbackquery)" in out.lower(), "the echoed error text is there, scrubbed"
    for where, text in places.items():
        for form in token_forms(token):
            assert form not in text, f"{form!r} in {where}"


@settings(max_examples=200, deadline=None)
@given(
    bot_id=st.integers(1000, 10**10),
    secret=st.text(string.ascii_letters + string.digits + "_-", min_size=30, max_size=46),
    flips=st.lists(st.booleans(), min_size=60, max_size=60),
    encode=st.lists(st.booleans(), min_size=60, max_size=60),
    around=st.text(max_size=20),
)  # fmt: skip
def test_any_mix_of_case_and_url_encoding_of_a_token_is_found(
    bot_id: int, secret: str, flips: list[bool], encode: list[bool], around: str
) -> None:
    token = f"{bot_id}:{secret}"
    shown = "".join(
        (f"%{ord(c):02X}" if enc else (c.swapcase() if flip else c))
        for c, flip, enc in zip(token, flips, encode, strict=False)
    )
    text = f"{around}(POST /bot{shown}/answerCallbackQuery){around}"
    clean = token_pattern(token).sub("<bot token>", text)
    assert clean == f"{around}(POST /bot<bot token>/answerCallbackQuery){around}"


HOSTILE = (
    "keep \x00it \x1b[31mred\x1b[0m \x1b]52;c;ZXZpbA==\x07 \u202eevil\u202c \x85c1 \x7fdel end"
)


def is_clean(text: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t" for c in text)


async def test_control_characters_from_telegram_are_stripped_before_stored_or_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ServiceConfig(name="PA", repo=tmp_path / "not-a-repo", test_command="true")
    async with open_phone(tmp_path, monkeypatch, console={"services": (service,)}) as phone:
        api = phone.api
        [_, retried] = await phone.engine.ingest(
            "prod-9", [error_event(1, "e" * 16, "boom"), error_event(2, "f" * 16, "bang")]
        )
        card = await phone.until(
            lambda: next((m for m in api.chat(OWNER) if "boom" in m.text), None), what="the card"
        )
        query = api.tap(
            OWNER, card, card.button("Skip")["callback_data"],
            first_name="Lev\x1b]0;owned\x07\u202e\x00",
        )  # fmt: skip
        await phone.until(lambda: api.answer_to(query), what="the skip answer")
        await phone.until(lambda: "by Lev (Telegram" in card.text, what="the edited card")
        assert is_clean(card.text) and "owned" not in card.text

        # A fix that failed (there is no repo), retried from the phone with an instruction.
        assert (await phone.engine.approve(retried, "keyboard")).ok

        async def failed() -> bool:
            error = await phone.engine.store.error(retried)
            return error is not None and error.state is State.FAILED

        await phone.until(failed, what="the attempt to fail")
        api.send_text(OWNER, f"/retry {retried} {HOSTILE}", username="x\x1b[2Jy")

        async def instruction() -> str | None:
            attempts = await phone.engine.store.attempts(error_id=retried)
            return next((a.extra_instruction for a in attempts if a.extra_instruction), None)

        stored = await phone.until(instruction, what="the retried attempt")
        assert is_clean(stored)
        assert "keep it" in stored and "red" in stored and "evil" in stored and "end" in stored
        assert "ZXZpbA" not in stored, "the OSC 52 clipboard payload went with its sequence"
        assert all(is_clean(n.text) for n in phone.notices())

        reply = await phone.reply_containing("fix attempt 2 of ")
        assert reply.endswith(" started"), reply
        mute = await phone.say("/mute \x1b[5mforever\x00")
        assert is_clean(mute.text) and "forever" in mute.text
