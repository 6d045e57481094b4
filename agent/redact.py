"""Secret scrubbing for error records before they are stored or leave the host.

Error messages and stacks routinely carry what the failing code was holding: connection
strings, request headers, tokens in query strings, whole config objects. Everything the
agent relays passes through here first, so a secret that reached a log line stops at the
production host. Key names are kept (``password=[REDACTED]``) so the record still says
what was there, which is often the clue to the bug.

A record is scrubbed as a whole: its message and stack are one text, so a value that Node
printed over several lines (a private key in a property block, an array of cookies) goes
as a whole, and every substitution keeps the text's line breaks so the stack lines still
line up afterwards. Three kinds of evidence mark a secret:

- the key it is printed under, in any case, word order and quoting (``passwordConfirm``,
  ``new_password_repeat``, ``\\"api_key\\"``, ``\\u0022password\\u0022``), but not words
  that merely contain one (``keyboard``, ``primaryKey``, ``tokenCount``);
- its own shape: vendor token prefixes, private key blocks, credentials inside URLs, card
  numbers, webhook URLs, a long random string after a credential word or in a route
  segment such as ``/reset/<token>``;
- its value: ``redaction.values_from_env`` names variables whose values on this host are
  removed wherever they appear.

Redacting an already redacted text changes nothing, so records can be re-scrubbed safely
(for example after extra patterns are added to the config).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote

from agent.record import ErrorRecord, Frame
from agent.secret_keys import secret_key

REDACTED = "[REDACTED]"
# Values from the environment shorter than this are not removed: a two-letter value would
# blank out ordinary words all over the record.
MIN_ENV_VALUE_CHARS = 6

_SCHEMES = r"(?:Bearer|Basic|Token|Digest|Bot|token|bearer|basic)"
_SCHEME_PREFIX = re.compile(rf"{_SCHEMES}[ \t]+")
_SENTINELS = frozenset({"", "undefined", "null", "none", "nil", "true", "false", REDACTED.lower()})

# Cheap screen: a text without any of these (in lower case) cannot hold a keyed, vendor
# or URL secret, so the expensive patterns are skipped (card numbers, configured patterns
# and values from the environment still run). Plain substring tests: far cheaper than one
# regex alternation over every position of a clean stack.
_TRIGGER_WORDS = tuple(
    [
        "pass",
        "pwd",
        "token",
        "secret",
        "key",
        "auth",
        "cookie",
        "sess",
        "sid",
        "sig",
        "cred",
        "bearer",
        "basic",
        "eyj",
        "akia",
        "asia",
        "gho_",
        "ghp_",
        "ghs_",
        "ghu_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "glrt-",
        "gldt-",
        "glptt-",
        "gloas-",
        "sg.",
        "npm_",
        "hf_",
        "xox",
        "xapp-",
        "_live_",
        "_test_",
        "whsec_",
        "sk-",
        "aiza",
        "ya29.",
        "shpat_",
        "shpca_",
        "shppa_",
        "shpss_",
        "dop_v1_",
        "key-",
        "://",
        "/bot",
        "reset",
        "verif",
        "confirm",
        "activat",
        "invit",
        "magic",
        "otp",
        "unsubscribe",
    ]
)


def _may_hold_secret(text: str) -> bool:
    low = text.lower()
    return any(word in low for word in _TRIGGER_WORDS)


# --- shapes --------------------------------------------------------------------------------

_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
# What is left of a key body line once Node's quoting is stripped ('...\n' +).
_KEY_BODY_LINE = re.compile(r"""[ \t'"`]*[A-Za-z0-9+/=:, -]*(?:\\n|\\r)*['"`]?[ \t]*\+?,?[ \t]*""")
_BASE64_RUN = re.compile(r"(\\[nrt]|\[REDACTED\])|[A-Za-z0-9+/]*[A-Za-z0-9][A-Za-z0-9+/]*={0,2}")

# Vendor token formats, recognisable without any key name around them.
_TOKENS = re.compile(
    "|".join(
        (
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",  # JWT
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b",  # AWS key id
            r"\bgh[opsur]_[A-Za-z0-9]{20,}\b",  # GitHub
            r"\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"\bgl(?:pat|rt|dt|ptt|oas)-[A-Za-z0-9_-]{20,}",  # GitLab
            r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",  # SendGrid
            r"\bnpm_[A-Za-z0-9]{36}\b",  # npm
            r"\bhf_[A-Za-z0-9]{30,}\b",  # Hugging Face
            r"\bxox[abposre]-[A-Za-z0-9-]{8,}",  # Slack
            r"\bxapp-[A-Za-z0-9-]{8,}",
            r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}",  # Stripe
            r"\bwhsec_[A-Za-z0-9+/=]{8,}",
            r"\bsk-ant-[A-Za-z0-9_-]{8,}",  # Anthropic
            r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",  # OpenAI style
            r"\bAIza[0-9A-Za-z_-]{35}",  # Google API key
            r"\bya29\.[0-9A-Za-z_-]{20,}",  # Google OAuth access token
            r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",  # Shopify
            r"\bdop_v1_[a-f0-9]{64}\b",  # DigitalOcean
            r"\bkey-[0-9a-f]{32}\b",  # Mailgun
        )
    )
)
# Webhook URLs whose path is the credential: keep the host and kind, drop the rest.
_WEBHOOK_URL = re.compile(
    r"(https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)"
    r"|(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks)/)[\w/-]+"
)
# A Telegram bot token (bot id, colon, 35 characters), bare or in a Bot API URL path.
_TELEGRAM = re.compile(r"(?:(?<=/bot)|(?<![\w:/]))\d{6,12}:[A-Za-z0-9_-]{30,}")

# user:password@ in any URL (postgres://, mongodb+srv://, redis://:pw@, https://). The
# password runs to the last '@' before the host, so an unencoded '/' in it goes too.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'\"]*:)([^\s@'\"<>]+)@(?=[\w\[])")
_PORT_THEN_PATH = re.compile(r"\d{1,5}(?:/|$)")

_BEARER = re.compile(rf"\b({_SCHEMES})([ \t]+)([A-Za-z0-9\-._~+/]+=*)")

# Header form of cookies: the value runs to the end of the line (a=b; c=d; ...).
_COOKIE_HEADER = re.compile(
    r"(?im)\b((?:set-)?cookie)([ \t]*:[ \t]*+)(?!\[REDACTED\][ \t]*$)([^\s'\"][^\r\n'\"]*)"
)

# A quote as it appears around keys and values once a JSON text has been escaped into
# another one, zero or more times, or HTML-escaped.
_QUOTE = r"(?:\\*[\"'`]|\\+u00(?:22|27)|\\+x22|&quot;|&#34;|&#39;)"
# key=value, key: value, "key":"value", 'key': 'value', \"key\":\"value\", 'key': [ ... ]
# for any key that mentions a credential stem; secret_key() then decides from its words.
_KEY_VALUE = re.compile(
    r"(?:(?<=\\u0022)|(?<=\\u0027)|(?<=&quot;)|(?<![A-Za-z0-9_./-]))"
    r"(?P<key>(?=[A-Za-z0-9_.-]{0,80}?(?:pass|pwd|secret|token|key|auth|cookie|sess|sid|sig"
    r"|cred))[A-Za-z0-9_.-]{1,160}+)"
    rf"(?P<sep>{_QUOTE}?[ \t]*(?:=>|:|=)[ \t]*)"
    r"(?P<value>\[REDACTED\]"
    r"|\"(?:[^\"\\\n]|\\.){0,4096}\""
    r"|'(?:[^'\\\n]|\\.){0,4096}'"
    r"|`(?:[^`\\\n]|\\.){0,4096}`"
    r"|(?P<q>\\+[\"']|\\+u00(?:22|27)|\\+x22|&quot;|&#34;|&#39;)(?:(?!(?P=q)).){0,4096}?(?P=q)"
    r"|\[[^\[\]]{0,8192}\]"
    rf"|(?:{_SCHEMES}[ \t]+)?(?:[^\s&,;'\"()\[\]{{}}<>`\\]|\[REDACTED\])+)",
    re.IGNORECASE,
)
_OPENING_QUOTE = re.compile(r"\\*(?:[\"'`]|u00(?:22|27)|x22)|&quot;|&#34;|&#39;")
_QUOTED_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|`(?:[^`\\\n]|\\.)*`")

# A long random-looking string right after a credential word ("reset token 9f86d08...").
_AFTER_WORD = re.compile(
    r"\b(?P<word>passwords?|passwd|passphrase|secrets?|tokens?|signatures?|credentials?"
    r"|(?:api|access|secret|private|subscription|signing|license)[ _-]?keys?)"
    r"(?P<gap>[ \t]+(?:(?:is|was|=|:)[ \t]+)?['\"`]?)"
    r"(?P<value>[A-Za-z0-9+/_.~%=-]{16,})",
    re.IGNORECASE,
)
# A route or URL path segment after one that names a credential (/reset/<token>).
_PATH_TOKEN = re.compile(
    r"(?<=/)((?=[A-Za-z0-9_.-]{0,40}?(?:reset|passw|verif|confirm|activat|invit|magic|token"
    r"|auth|session|secret|otp|unsubscribe|key|sig))[A-Za-z0-9_.-]{1,80}+/)"
    r"([A-Za-z0-9_~.%-]{16,})",
    re.IGNORECASE,
)

# 13-19 digits, optionally grouped by single spaces or dashes, starting like a card
# network's number range; the Luhn check below rejects ordinary long ids.
_CARD = re.compile(r"(?<![\w.-])[2-6](?:[ -]?\d){12,18}(?![\w-])")

# --- values ----------------------------------------------------------------------------------


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
    """Tell a credential from a prose word, for forms where both appear (``token: expired``).

    Short values are words or status codes (``token: 401``), not credentials.
    """
    if len(value) < 6:
        return False
    if any(c.isdigit() for c in value) or any(c in "-._~+/=!@#$%^*" for c in value):
        return True
    return any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)


def _random_looking(value: str) -> bool:
    """A long string of mixed letters and digits with little repetition: a generated secret."""
    core = value.strip("=")
    if len(core) < 16 or not any(c.isdigit() for c in core):
        return False
    if not any(c.isalpha() for c in core):
        return False
    counts: dict[str, int] = {}
    for c in core:
        counts[c] = counts.get(c, 0) + 1
    entropy = -sum(n / len(core) * math.log2(n / len(core)) for n in counts.values())
    return entropy >= 3.0


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


def _quoted_parts(value: str) -> tuple[str, str, str]:
    """Split a value into (opening quote, content, closing quote), quotes possibly empty."""
    opening = _OPENING_QUOTE.match(value)
    if opening is not None:
        quote_ = opening.group(0)
        if len(value) >= 2 * len(quote_) and value.endswith(quote_):
            return quote_, value[len(quote_) : -len(quote_)], quote_
    return "", value, ""


def _redact_list(value: str) -> str:
    """Every string in a printed array (``[ 'sid=...; Path=/', ... ]``), line breaks kept."""

    def one(match: re.Match[str]) -> str:
        text = match.group(0)
        inner = text[1:-1]
        if inner.strip().lower() in _SENTINELS:
            return text
        return f"{text[0]}{REDACTED}{text[-1]}"

    return _QUOTED_STRING.sub(one, value)


def _key_value(match: re.Match[str]) -> str:
    decided = secret_key(match.group("key"))
    if decided is False:
        return match.group(0)
    value = match.group("value")
    head = match.group("key") + match.group("sep")
    if value.startswith("["):
        if decided is None:
            return match.group(0)
        return head + _redact_list(value)
    open_q, inner, close_q = _quoted_parts(value)
    scheme = _SCHEME_PREFIX.match(inner)
    prefix = scheme.group(0) if scheme else ""
    secret = inner[len(prefix) :]
    if secret.strip().lower() in _SENTINELS or secret == REDACTED:
        return match.group(0)
    if decided is None:
        # A bare "key": only a value that is itself clearly generated goes.
        if not _random_looking(secret):
            return match.group(0)
    else:
        # Unquoted "key: word" is usually prose ("invalid token: jwt malformed"); redact
        # it only when the word looks like a credential. '=' and quoted values always go.
        sep = match.group("sep")
        prose_form = not open_q and "=" not in sep and sep[:1] not in "\"'`\\&"
        if prose_form and REDACTED not in secret and not _looks_like_credential(secret):
            return match.group(0)
    return f"{head}{open_q}{prefix}{REDACTED}{close_q}"


def _after_word(match: re.Match[str]) -> str:
    value = match.group("value")
    if not _random_looking(value):
        return match.group(0)
    return f"{match.group('word')}{match.group('gap')}{REDACTED}"


def _path_token(match: re.Match[str]) -> str:
    if not _random_looking(match.group(2)):
        return match.group(0)
    return match.group(1) + REDACTED


def _url_password(match: re.Match[str]) -> str:
    password = match.group(2)
    # https://host:8443/@scope/pkg is a port and a path, not user:password@.
    if _PORT_THEN_PATH.match(password):
        return match.group(0)
    return f"{match.group(1)}{REDACTED}@"


def _private_keys(text: str) -> str:
    """Blank every private key body, from BEGIN to END or to the last line that looks like one.

    The body may follow on the same line (a JSON string with ``\\n`` escapes) or on the
    next lines, as Node prints a long string in a property block (``'MIIE...\\n' +``).
    Only the base64 runs go; quotes, escapes and line breaks stay, so the stack lines keep
    their shape.
    """
    out: list[str] = []
    pos = 0
    while True:
        begin = _PRIVATE_KEY_BEGIN.search(text, pos)
        if begin is None:
            break
        start = begin.end()
        end_marker = _PRIVATE_KEY_END.search(text, start)
        line_end = text.find("\n", start)
        if line_end == -1:
            line_end = len(text)
        if end_marker is not None and end_marker.start() <= line_end:
            stop = end_marker.start()
        else:
            # Continuation lines: as long as each is nothing but key body and quoting.
            stop = line_end
            while stop < len(text):
                next_end = text.find("\n", stop + 1)
                if next_end == -1:
                    next_end = len(text)
                line = text[stop + 1 : next_end]
                if end_marker is not None and end_marker.start() <= next_end:
                    stop = end_marker.start()
                    break
                if not _KEY_BODY_LINE.fullmatch(line):
                    break
                stop = next_end
        body = _BASE64_RUN.sub(lambda m: m.group(1) or REDACTED, text[start:stop])
        out.append(text[pos:start])
        out.append(body)
        pos = stop
    out.append(text[pos:])
    return "".join(out)


def _keep_lines(replacement: str) -> Callable[[re.Match[str]], str]:
    """A substitution that keeps the line breaks of what it replaces."""
    return lambda m: replacement + "\n" * m.group(0).count("\n")


def env_values(names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the named variables on this host that are long enough to remove."""
    env = os.environ if environ is None else environ
    return [env[n] for n in names if len(env.get(n, "")) >= MIN_ENV_VALUE_CHARS]


class Redactor:
    """Scrubs secrets from text; one instance per agent, built once from the config.

    ``values`` are literal secrets (the values of ``redaction.values_from_env``) removed
    wherever they appear, also in their JSON-escaped and URL-encoded spellings.
    """

    def __init__(self, extra_patterns: Iterable[str] = (), values: Iterable[str] = ()) -> None:
        self._extra: list[re.Pattern[str]] = []
        for pattern in extra_patterns:
            try:
                self._extra.append(re.compile(pattern))
            except (re.error, TypeError) as exc:
                raise ValueError(f"redaction pattern {pattern!r} is not valid: {exc}") from None
        spellings: set[str] = set()
        for value in values:
            if len(value) >= MIN_ENV_VALUE_CHARS:
                spellings.update(
                    (value, json.dumps(value)[1:-1], quote(value, safe=""), quote(value))
                )
        # Longest first, so a value that contains another goes whole.
        self._values = sorted((s for s in spellings if s), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """Replace every secret in ``text`` with ``[REDACTED]``, keeping the key names.

        ``text`` may be a whole record (message and stack lines joined by newlines): the
        result has exactly as many lines. Clean text costs one screening scan plus the
        card scan; it never raises on odd input (non-strings are converted, not rejected).
        """
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        if not text:
            return text
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED + "\n" * value.count("\n"))
        if _may_hold_secret(text):
            if "PRIVATE KEY" in text:
                text = _private_keys(text)
            text = _TOKENS.sub(REDACTED, text)
            text = _WEBHOOK_URL.sub(lambda m: m.group(1) + REDACTED, text)
            text = _TELEGRAM.sub(REDACTED, text)
            text = _URL_PASSWORD.sub(_url_password, text)
            text = _BEARER.sub(_bearer, text)
            text = _COOKIE_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
            text = _KEY_VALUE.sub(_key_value, text)
            text = _AFTER_WORD.sub(_after_word, text)
            text = _PATH_TOKEN.sub(_path_token, text)
        text = _CARD.sub(_card, text)
        for pattern in self._extra:
            text = pattern.sub(_keep_lines(REDACTED), text)
        return text


def _redact_frame(frame: Frame, redactor: Redactor) -> Frame:
    function = redactor.redact(frame.function)
    path = redactor.redact(frame.path)
    if function == frame.function and path == frame.path:
        return frame
    return dataclasses.replace(frame, function=function, path=path)


def _redact_lines(lines: list[str], redactor: Redactor) -> list[str]:
    """Redact lines as one text, so a secret spread over several of them is seen whole."""
    parts = [line.split("\n") for line in lines]
    flat = [piece for part in parts for piece in part]
    clean = redactor.redact("\n".join(flat)).split("\n")
    if len(clean) != len(flat):  # a configured pattern ate a line break: go line by line
        return [redactor.redact(line) for line in lines]
    out = []
    at = 0
    for part in parts:
        out.append("\n".join(clean[at : at + len(part)]))
        at += len(part)
    return out


def redact_record(record: ErrorRecord, redactor: Redactor) -> ErrorRecord:
    """Return a copy of ``record`` with every free-text field scrubbed.

    The record is what gets stored and relayed, so every field that can carry log text is
    covered: type, message and stack (as one text), the route (its path and query carry
    tokens), the raw lines (as one text) and the parsed frames.
    """
    message, *stack = _redact_lines([record.message, *record.stack], redactor)
    return dataclasses.replace(
        record,
        error_type=redactor.redact(record.error_type),
        message=message,
        stack=stack,
        frames=[_redact_frame(frame, redactor) for frame in record.frames],
        route=None if record.route is None else redactor.redact(record.route),
        raw=redactor.redact(record.raw),
    )
