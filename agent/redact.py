"""Secret scrubbing for error records before they are stored or leave the host.

Error messages and stacks routinely carry what the failing code was holding: connection
strings, request headers, tokens in query strings, whole config objects. Everything the
agent relays passes through here first, so a secret that reached a log line stops at the
production host. Key names are kept (``password=[REDACTED]``) so the record still says
what was there, which is often the clue to the bug.

Redacting an already redacted text changes nothing, so records can be re-scrubbed safely
(for example after extra patterns are added to the config).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from agent.record import ErrorRecord, Frame

REDACTED = "[REDACTED]"

_SCHEMES = r"(?:Bearer|Basic|Token|Digest|Bot|token|bearer|basic)"
_SCHEME_PREFIX = re.compile(rf"{_SCHEMES}\s+")
_SENTINELS = frozenset({"", "undefined", "null", "none", "nil", "true", "false", REDACTED.lower()})

# Cheap screen: a text without any of these cannot hold a keyed or vendor secret, so the
# expensive patterns are skipped (card numbers and configured patterns still run).
_TRIGGER = re.compile(
    r"pass|pwd|token|secret|key|auth|cookie|session|credential|bearer|basic|eyJ|AKIA|ASIA"
    r"|gh[opsur]_|github_pat_|xox|xapp-|hooks\.slack|_live_|_test_|whsec_|sk-|AIza|://",
    re.IGNORECASE,
)

_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)"
)

# Vendor token formats, recognisable without any key name around them.
_TOKENS = re.compile(
    "|".join(
        (
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",  # JWT
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b",  # AWS key id
            r"\bgh[opsur]_[A-Za-z0-9]{20,}\b",  # GitHub
            r"\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"\bxox[abposre]-[A-Za-z0-9-]{8,}",  # Slack
            r"\bxapp-[A-Za-z0-9-]{8,}",
            r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}",  # Stripe
            r"\bwhsec_[A-Za-z0-9+/=]{8,}",
            r"\bsk-ant-[A-Za-z0-9_-]{8,}",  # Anthropic
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI style
            r"\bAIza[0-9A-Za-z_-]{35}",  # Google API key
        )
    )
)
_SLACK_HOOK = re.compile(r"(https?://hooks\.slack\.com/(?:services|workflows|triggers)/)[\w/-]+")

# user:password@ in any URL (postgres://, mongodb+srv://, redis://:pw@, https://).
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)@")

_BEARER = re.compile(rf"\b({_SCHEMES})(\s+)([A-Za-z0-9\-._~+/]+=*)")

# Header form of cookies: the value runs to the end of the line (a=b; c=d; ...).
_COOKIE_HEADER = re.compile(
    r"(?im)\b((?:set-)?cookie)(\s*:[ \t]*+)(?!\[REDACTED\]\s*$)([^\s'\"][^\r\n'\"]*)"
)

# key=value, key: value, "key":"value", 'key': 'value', \"key\":\"value\" whose key ends in
# a secret word (db_password, STRIPE_SECRET_KEY, x-api-key, sessionId, ...).
_KEY_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.-])"
    r"(?P<key>[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|pwd|token|secret|api[_-]?key"
    r"|private[_-]?key|access[_-]?key|secret[_-]?key|auth|authorization|cookie"
    r"|session(?:[_-]?id)?|credentials?)s?)"
    r"(?P<sep>\\?[\"']?\s*(?::|=)\s*)"
    r"(?P<value>\[REDACTED\]"
    r"|\\\"(?:(?!\\\").){0,4096}?\\\""
    r"|\"(?:[^\"\\\n]|\\.){0,4096}\""
    r"|'(?:[^'\\\n]|\\.){0,4096}'"
    rf"|(?:{_SCHEMES}\s+)?(?:[^\s&,;'\"()\[\]{{}}<>`]|\[REDACTED\])+)",
    re.IGNORECASE,
)

# 13-19 digits, optionally grouped by single spaces or dashes, starting like a card
# network's number range; the Luhn check below rejects ordinary long ids.
_CARD = re.compile(r"(?<![\w.-])[2-6](?:[ -]?\d){12,18}(?![\w-])")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _looks_like_credential(value: str) -> bool:
    """Tell a credential from a prose word, for forms where both appear (``token: expired``)."""
    if any(c.isdigit() for c in value) or any(c in "-._~+/=!@#$%^*" for c in value):
        return True
    return any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)


def _card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return REDACTED
    return text


def _bearer(match: re.Match[str]) -> str:
    if not _looks_like_credential(match.group(3)) or len(match.group(3)) < 8:
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


def _key_value(match: re.Match[str]) -> str:
    value = match.group("value")
    head = match.group("key") + match.group("sep")
    open_q = close_q = ""
    for quote in ('\\"', '"', "'"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            open_q = close_q = quote
            value = value[len(quote) : -len(quote)]
            break
    scheme = _SCHEME_PREFIX.match(value)
    prefix = scheme.group(0) if scheme else ""
    secret = value[len(prefix) :]
    if secret.strip().lower() in _SENTINELS or secret == REDACTED:
        return match.group(0)
    # Unquoted "key: word" is usually prose ("invalid token: jwt malformed"); redact it
    # only when the word looks like a credential. '=' and quoted values always go.
    prose_form = not open_q and "=" not in match.group("sep")
    if prose_form and REDACTED not in secret and not _looks_like_credential(secret):
        return match.group(0)
    return f"{head}{open_q}{prefix}{REDACTED}{close_q}"


class Redactor:
    """Scrubs secrets from text; one instance per agent, built once from the config."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        self._extra: list[re.Pattern[str]] = []
        for pattern in extra_patterns:
            try:
                self._extra.append(re.compile(pattern))
            except (re.error, TypeError) as exc:
                raise ValueError(f"redaction pattern {pattern!r} is not valid: {exc}") from None

    def redact(self, text: str) -> str:
        """Replace every secret in ``text`` with ``[REDACTED]``, keeping the key names.

        Runs on every error record, so clean text costs one screening scan plus the card
        scan; it never raises on odd input (non-strings are converted, not rejected).
        """
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        if not text:
            return text
        if _TRIGGER.search(text) is not None:
            text = _PRIVATE_KEY.sub(
                lambda m: (
                    f"-----BEGIN {m.group(1)}PRIVATE KEY-----{REDACTED}"
                    f"-----END {m.group(1)}PRIVATE KEY-----"
                ),
                text,
            )
            text = _TOKENS.sub(REDACTED, text)
            text = _SLACK_HOOK.sub(lambda m: m.group(1) + REDACTED, text)
            text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
            text = _BEARER.sub(_bearer, text)
            text = _COOKIE_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
            text = _KEY_VALUE.sub(_key_value, text)
        text = _CARD.sub(_card, text)
        for pattern in self._extra:
            text = pattern.sub(REDACTED, text)
        return text


def _redact_frame(frame: Frame, redactor: Redactor) -> Frame:
    function = redactor.redact(frame.function)
    path = redactor.redact(frame.path)
    if function == frame.function and path == frame.path:
        return frame
    return dataclasses.replace(frame, function=function, path=path)


def redact_record(record: ErrorRecord, redactor: Redactor) -> ErrorRecord:
    """Return a copy of ``record`` with every free-text field scrubbed.

    The record is what gets stored and relayed, so every field that can carry log text is
    covered: message, each stack line, route (query strings carry tokens), raw lines and
    the parsed frames.
    """
    return dataclasses.replace(
        record,
        error_type=redactor.redact(record.error_type),
        message=redactor.redact(record.message),
        stack=[redactor.redact(line) for line in record.stack],
        frames=[_redact_frame(frame, redactor) for frame in record.frames],
        route=None if record.route is None else redactor.redact(record.route),
        raw=redactor.redact(record.raw),
    )
