"""Grouping key for errors: one fingerprint per fault, not per occurrence or deployment.

Two occurrences share a fingerprint when they have the same error type, the same message
once the data in it (ids, addresses, times, payload excerpts, numbers) is replaced by
placeholders, and the same top in-app frames by function name and app-relative path.
Line and column numbers are left out on purpose: a redeploy that only moves code around
must not split a group that an operator is already tracking.
"""

from __future__ import annotations

import hashlib
import re

from agent.record import ErrorRecord, Frame

FINGERPRINT_LENGTH = 16
MAX_MESSAGE_CHARS = 300
TOP_FRAMES = 3

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
_ZONE = r"(?:\s*(?:Z|[+-]\d{2}:?\d{2}|GMT(?:[+-]\d{4})?|UTC)(?:\s*\([A-Za-z .]+\))?)?"

# UUIDs, hex ids and numbers share one placeholder: the same slot of a message template
# carries whichever of them the caller had ("user 42", "user 5f1d7b9c8e4a2b3c4d5e6f70").
_ID = "<id>"

# Order matters: earlier patterns consume text that later, coarser ones would split up
# (a timestamp is not three numbers, a UUID is not five hex runs).
_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ISO 8601 / SQL style: 2026-11-01T12:00:00.000Z, 2026-11-01 12:00:00+01:00
    (re.compile(rf"\b\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]{_CLOCK}{_ZONE})?"), "<time>"),
    # RFC 2822 / HTTP dates and JS Date#toString: Sun, 01 Nov 2026 12:00:00 GMT,
    # Sun Nov 01 2026 12:00:00 GMT+0000 (Coordinated Universal Time)
    (re.compile(rf"\b(?:{_DAY},?\s+)?\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\s+{_CLOCK}{_ZONE}"), "<time>"),
    (
        re.compile(rf"\b(?:{_DAY},?\s+)?{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}\s+{_CLOCK}{_ZONE}"),
        "<time>",
    ),
    (re.compile(rf"(?<![\w:]){_CLOCK}{_ZONE}(?![\w:])"), "<time>"),
    # Epoch milliseconds for this century and the next (1 followed by 12 digits).
    (re.compile(r"(?<![\w.])1\d{12}(?![\w.])"), "<time>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        _ID,
    ),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    # IPv4 with optional port: 127.0.0.1:5999 is one token.
    (re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?![\w.])"), "<ip>"),
    # IPv6 (bracketed or bare, optional zone and port); needs two colons to qualify.
    (
        re.compile(
            r"(?<![\w:])\[?(?=[0-9a-fA-F:]*:[0-9a-fA-F]*:)(?:[0-9a-fA-F]{0,4}:){2,7}"
            r"[0-9a-fA-F]{0,4}(?:%\w+)?\]?(?::\d{1,5})?(?![\w:])"
        ),
        "<ip>",
    ),
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), _ID),
    # Hex runs mixing digits and letters: Mongo ObjectIds, hashes, short SHAs, request ids.
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b"), _ID),
    # V8's JSON.parse excerpt: the payload is quoted as-is, so it may hold quotes itself.
    (re.compile(r"(?<!\w)\"[^\n]{0,200}?\"(?:\.\.\.)?(?= is not valid JSON)"), "<str>"),
    # Quoted values, including V8's truncated excerpt `"abcdefghij"...` and a quote
    # character as the unexpected token (`'''`). A quote that
    # follows a letter is an apostrophe (can't), not the start of a value. Property names
    # V8 reports for null access are code, not data, so they are kept.
    (
        re.compile(
            r"(?<!\(reading )(?<!\(setting )(?<![\w'\"`])"
            r"(?:'[^\n]'|'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"|`[^`\n]{0,200}`)(?:\.\.\.)?"
        ),
        "<str>",
    ),
    # Numbers with optional decimals, exponent and unit: 42, 3.14, 1e6, 12ms, 512MB, 50%.
    (
        re.compile(
            r"(?<!\w)(?<!\d\.)\d+(?:\.\d+)*(?:[eE][-+]?\d+)?(?:[a-zA-Z]{1,5}|%)?(?!\w)(?!\.\d)"
        ),
        _ID,
    ),
    # Long digit runs glued to words: order_123456, E11000 stays recognisable as E<id>.
    (re.compile(r"\d{4,}"), _ID),
)
_WHITESPACE = re.compile(r"\s+")


def normalize_message(msg: str) -> str:
    """Reduce a message to its template so that occurrences differing only in data group.

    Payload-driven detail (which id was missing, which port refused, which byte broke the
    JSON) changes with every request; keeping it would make one fault look like thousands.
    """
    text = _WHITESPACE.sub(" ", msg).strip()
    # Far more than any template; bounds the regex work on multi-megabyte messages.
    text = text[: MAX_MESSAGE_CHARS * 8]
    for pattern, placeholder in _SUBSTITUTIONS:
        text = pattern.sub(placeholder, text)
    return _WHITESPACE.sub(" ", text).strip()[:MAX_MESSAGE_CHARS]


# The outermost deploy directory: Capistrano-style releases/<stamp>/ and the current/ link.
_DEPLOY_DIR = re.compile(r"(?:^|/)(?:releases/[^/]+|current)/")
_NODE_MODULES = "node_modules/"
_URL_SCHEMES = ("file://", "webpack-internal:///", "webpack:///", "webpack://")


def relative_path(path: str, app_root: str | None) -> str:
    """Express a source path the same way on every host and every release of the app.

    Deploy tools put each release in its own directory (releases/<timestamp>/, current/),
    and bundlers or ESM add URL schemes; none of that says anything about the code.
    Dependencies are kept from ``node_modules/<pkg>/`` so that pnpm store paths and
    vendored copies reduce to the package's own layout.
    """
    p = path.strip().replace("\\", "/")
    for scheme in _URL_SCHEMES:
        if p.startswith(scheme):
            p = p[len(scheme) :]
            break
    p = p.split("?", 1)[0].split("#", 1)[0]
    if re.match(r"^/[A-Za-z]:/", p):  # file:///C:/app/x.js
        p = p[1:]
    p = re.sub(r"^[A-Za-z]:/", "/", p)
    nm = p.rfind(_NODE_MODULES)
    if nm != -1 and (nm == 0 or p[nm - 1] == "/"):
        return p[nm:]
    if app_root:
        root = app_root.replace("\\", "/")
        root = re.sub(r"^[A-Za-z]:/", "/", root).rstrip("/") + "/"
        if root != "/" and p.startswith(root):
            p = p[len(root) :]
    deploy = _DEPLOY_DIR.search(p)
    if deploy is not None and (p.startswith("/") or deploy.start() == 0):
        p = p[deploy.end() :]
    if p.startswith("./"):
        p = p[2:]
    return p


_AS_ALIAS = re.compile(r"\s*\[as [^\]]*\]")
_ANONYMOUS = {"", "<anonymous>", "Object.<anonymous>", "anonymous"}


def normalize_function(name: str) -> str:
    """Name a frame's function the same way whether it ran sync, async, or via an alias.

    V8 decorates the same function differently depending on how it was reached
    (``async f``, ``new F``, ``obj.f [as g]``); the fault is in ``f`` either way.
    """
    n = name.strip()
    changed = True
    while changed:
        changed = False
        for prefix in ("async ", "new "):
            if n.startswith(prefix):
                n = n[len(prefix) :].strip()
                changed = True
    n = _AS_ALIAS.sub("", n).strip()
    if n in _ANONYMOUS:
        return "<anonymous>"
    return n


_RUNTIME_PREFIXES = ("node:", "internal/", "<anonymous>", "native", "evalmachine.")


def _is_in_app(frame: Frame) -> bool:
    if not frame.in_app:
        return False
    p = frame.path.strip().replace("\\", "/")
    if not p or p.startswith(_RUNTIME_PREFIXES):
        return False
    return "/node_modules/" not in p and not p.startswith(_NODE_MODULES)


def _key_frames(frames: list[Frame]) -> list[Frame]:
    in_app = [f for f in frames if _is_in_app(f)]
    return (in_app or frames)[:TOP_FRAMES]


def fingerprint(record: ErrorRecord, app_root: str | None = None) -> str:
    """Identify the fault behind a record so that its occurrences are counted together.

    Uses only what stays fixed for one fault: the error type, the message template and
    the top in-app frames (function and app-relative path). Library and runtime frames
    only count when the stack has no frame of the app itself, because their paths and
    depth change with dependency upgrades while the app's bug does not.
    """
    error_type = record.error_type.strip()
    message = record.message.strip()
    if error_type and message.startswith(f"{error_type}:"):
        message = message[len(error_type) + 1 :]
    parts = [error_type, normalize_message(message)]
    for frame in _key_frames(record.frames):
        parts.append(
            f"{normalize_function(frame.function)}\x1f{relative_path(frame.path, app_root)}"
        )
    digest = hashlib.sha256("\x1e".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:FINGERPRINT_LENGTH]
