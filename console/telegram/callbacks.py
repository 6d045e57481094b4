"""Button data that only this bot can have made: action, target id and an HMAC tag.

Anyone can send a callback query with any data (a modified client, an old message from a
bot whose token was changed), so each button carries a tag over its action and target keyed
by a secret derived from the bot token. Data without a valid tag is refused before it can
reach the engine. Everything fits Telegram's 64-byte callback data limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

MAX_CALLBACK_BYTES = 64
_TAG_CHARS = 16  # 96 bits of the HMAC, base64url

Action = Literal[
    "approve",  # error: start a fix
    "skip",  # error: shelve it
    "publish",  # attempt: open the pull request
    "skip_attempt",  # attempt: discard the fix and shelve the error
    "retry",  # attempt: start again from a clean base
    "stop_merge",  # attempt: stop its automatic merge during the soak
    "resume_merge",  # attempt: resume auto-merge for its service after a pause
    "revert",  # attempt: open a PR reverting its merged fix (a regression)
    "mute",  # attempt: mute its error's notifications for an hour (a regression)
    "view_home",
    "view_queue",
    "view_errors",
    "view_system",
    "view_history",
]
_CODES: dict[str, str] = {
    "approve": "a",
    "skip": "s",
    "publish": "p",
    "skip_attempt": "k",
    "retry": "r",
    "stop_merge": "m",
    "resume_merge": "u",
    "revert": "b",
    "mute": "n",
    "view_home": "h",
    "view_queue": "q",
    "view_errors": "e",
    "view_system": "y",
    "view_history": "i",
}
_ACTIONS: dict[str, Action] = {code: action for action, code in _CODES.items()}  # type: ignore[misc]
_SHAPE = re.compile(rf"^([a-z])(\d{{1,18}})\.([A-Za-z0-9_-]{{{_TAG_CHARS}}})$")


class ForgedCallback(ValueError):
    """Callback data this bot did not make (bad shape or tag): refuse, never act on it."""


@dataclass(frozen=True)
class Callback:
    action: Action
    target: int


class CallbackSigner:
    """Makes and checks button data with a key derived from the bot token."""

    def __init__(self, bot_token: str) -> None:
        self._key = hmac.new(bot_token.encode(), b"autofix-callback", hashlib.sha256).digest()

    def _tag(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_TAG_CHARS]

    def encode(self, action: Action, target: int = 0) -> str:
        if target < 0:
            raise ValueError("callback targets are database ids, never negative")
        body = f"{_CODES[action]}{target}"
        data = f"{body}.{self._tag(body)}"
        if len(data.encode()) > MAX_CALLBACK_BYTES:  # cannot happen with 18-digit ids
            raise ValueError("callback data longer than Telegram allows")
        return data

    def decode(self, data: str) -> Callback:
        """The action a button asks for; :class:`ForgedCallback` when it is not ours."""
        match = _SHAPE.match(data)
        if match is None:
            raise ForgedCallback("malformed button data")
        code, target, tag = match.groups()
        if code not in _ACTIONS:
            raise ForgedCallback("unknown button action")
        if not hmac.compare_digest(tag, self._tag(f"{code}{target}")):
            raise ForgedCallback("button signature does not match")
        return Callback(_ACTIONS[code], int(target))
