"""Log lines -> :class:`ErrorRecord`: finds errors in Node.js (and neighbouring) logs.

Recognised: V8 stack traces as console.error prints them (with property blocks and
``[cause]``), ``ERROR GET /path`` lead lines, Node's uncaught-exception and
unhandled-rejection crash reports, pino/bunyan/winston JSON lines, Python tracebacks, Go
panics, Java exceptions and plain one-line errors. PM2 and timestamp prefixes are removed.

Speed: most of a production log is not an error, so while no record is being assembled
the raw bytes are scanned for a handful of literals (after case folding) and only lines
that hold one are decoded and looked at in Python.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from agent.lines import DEFAULT_MAX_LINE_BYTES, Line, LineSplitter
from agent.record import ErrorRecord, Frame

MAX_RAW_CHARS = 16 * 1024
MAX_STACK_LINES = 300
MAX_FRAMES = 100
_MAX_PROPS_LINES = 400
_MAX_EXCERPT_LINES = 5

# --- fast path -------------------------------------------------------------------------

# Case folding, plus letter classes that let one needle stand for two words ("fatal" and
# "panic" fold alike, as do "alert" and "emerg"), plus '6' -> '5' for "level":50 and 60.
# Folded needles match a few other words too; those lines are merely looked at and dropped.
_LETTER_CLASSES = bytes.maketrans(b"eipngcm", b"aafttll")
_FOLD = bytes.maketrans(
    bytes(range(65, 91)) + b"6eipngcm",
    bytes(range(97, 123)).translate(_LETTER_CLASSES) + b"5aafttll",
)
_NEEDLES: tuple[bytes, ...] = tuple(
    needle.translate(_FOLD)
    for needle in (
        b"error",
        b"exception",
        b"fatal",  # and panic
        b"alert",  # and emerg
        b"traceback",
        b"crit",
        b'"level":5',  # and 6
        b"js:",  # a crash excerpt's "/srv/app.js:42" (also .mjs, .cjs)
        b"\n    at ",
    )
)
_CARET_BYTES = re.compile(rb"[ \t]*\^+[ \t]*\r?")
# Lines the line mode would ignore when idle: a non-error level word after an optional
# timestamp, or a pino/bunyan/winston JSON line whose first "level" is below error.
_QUIET_STAMP = (
    rb"\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})? ?"
    rb"(?:Z|[+-]\d\d:?\d\d|UTC)?\]?:? "
)
_QUIET_WORD = rb"\[?(?i:info|debug|trace|notice|warn|warning|verbose|silly|http)\]?[: \t\r\n]"
_QUIET_JSON = (
    rb'\{(?:"(?:name|hostname|pid|time|v)":(?:"[^"\\\n]*"|\d+),)*"level":'
    rb'(?:[1-4]\d|"(?i:info|debug|trace|warn|warning|verbose|http|silly|notice)")[,}]'
)
_QUIET_LINE = re.compile(
    b"(?:" + _QUIET_STAMP + b"){0,2}(?:" + _QUIET_WORD + b"|" + _QUIET_JSON + b")"
)
# A newline followed by a line that is not quiet, for finding those lines at C speed. It
# asks the same question as _QUIET_LINE in a form the regex engine answers faster: the two
# most common quiet shapes (JSON; one timestamp and a level word) are tried on their own
# first, each a subset of the whole, and optional groups are spelled as alternatives.
_STAMP_OR_NOT = (
    rb"\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9}|) ?(?:Z|[+-]\d\d:?\d\d|UTC|)\]?:? "
)
_NOT_QUIET_NEXT = re.compile(
    b"\n(?!"
    + _QUIET_JSON
    + b")(?!"
    + _STAMP_OR_NOT
    + _QUIET_WORD
    + b")(?!(?:"
    + _STAMP_OR_NOT
    + b"(?:"
    + _STAMP_OR_NOT
    + b"|)|)(?:"
    + _QUIET_WORD
    + b"|"
    + _QUIET_JSON
    + b"))"
)
_EXCERPT_BYTES = re.compile(rb"(?:\S+\.[cm]?[jt]sx?|node:[\w/]+):\d+\r?")

# Searching the folded buffer once per needle would cost a full pass each. Instead each
# needle is looked for from one of its bytes (its anchor), and needles sharing an anchor are
# found together by one regex whose literal first byte lets the engine skip ahead at C speed.
# Bytes that are rare in logs (x, f/p, b, v, j, newline) are merged into one marker first,
# so a single search covers every needle holding one of them; "r" anchors the rest (error,
# alert/emerg, crit). Every anchor hit is checked against the exact fold before it counts,
# so the hits are exactly those of a plain search for each needle.
_MARKER = 0
_RARE_FOLDED = b"xbvj\n"
_MERGE = bytes(_MARKER if i in _RARE_FOLDED else i for i in range(256))
_COARSE = _FOLD.translate(_MERGE)
_ANCHORS = (_MARKER, ord("r"), ord("f"))

# Per anchor search: the regex, and by the byte after the anchor the (offset of the anchor
# in the needle, needle) pairs to check.
_AnchorSearch = tuple[re.Pattern[bytes], dict[int, list[tuple[int, bytes]]]]


def _anchor_searches() -> list[_AnchorSearch]:
    plans: dict[int, tuple[list[bytes], dict[int, list[tuple[int, bytes]]]]] = {
        anchor: ([], {}) for anchor in _ANCHORS
    }
    for needle in _NEEDLES:
        coarse = needle.translate(_MERGE)
        anchor, offset = next((a, coarse.find(a)) for a in _ANCHORS if a in coarse)
        rest = coarse[offset + 1 :]
        assert rest, "an anchor must not end its needle"
        branches, checks = plans[anchor]
        branches.append(re.escape(rest))
        checks.setdefault(rest[0], []).append((offset, needle))
    # A lookahead keeps each match one byte long, so no anchor is swallowed by another
    # match; capture groups would name the branch but slow the search down a lot.
    return [
        (re.compile(re.escape(bytes([anchor])) + b"(?=" + b"|".join(branches) + b")"), checks)
        for anchor, (branches, checks) in plans.items()
    ]


_ANCHOR_SEARCHES = _anchor_searches()


def _needle_hits(buf: bytes) -> list[int]:
    """Sorted start offsets of every needle occurrence in ``buf`` (case folded)."""
    coarse = buf.translate(_COARSE)
    fold = _FOLD
    hits: list[int] = []
    for search, checks in _ANCHOR_SEARCHES:
        for match in search.finditer(coarse):
            at = match.start()
            for offset, needle in checks[coarse[at + 1]]:
                start = at - offset
                if start >= 0 and buf[start : start + len(needle)].translate(fold) == needle:
                    hits.append(start)
    hits.sort()
    return hits


_FRAME = _NEEDLES[-1]
_LINE_NEEDLES = _NEEDLES[:-1]
# A buffer with more lines that are not quiet than this (per KiB, plus a few) is searched
# needle by needle instead: checking many lines one by one in Python costs more.
_LINES_PER_KIB = 1
_LINES_SLACK = 16
# After a buffer turned out busy, this many buffers go straight to the needle search.
_NEEDLE_MODE_BUFFERS = 8


def _needles_in_line(buf: bytes, start: int) -> tuple[bool, bool]:
    """(a needle other than the frame one starts in the line at ``start``, the frame one does).

    The frame needle starts at the newline that ends the line.
    """
    end = buf.find(b"\n", start)
    if end == -1:
        end = len(buf)
    folded = buf[start:end].translate(_FOLD)
    other = False
    for needle in _LINE_NEEDLES:
        if needle in folded:
            other = True
            break
    frame = end < len(buf) and buf[end : end + len(_FRAME)].translate(_FOLD) == _FRAME
    return other, frame


def _loud_lines(buf: bytes) -> list[int] | None:
    """Starts of the lines that are not quiet, or None when there are too many of them for
    looking at them one by one to pay off."""
    limit = len(buf) // 1024 * _LINES_PER_KIB + _LINES_SLACK
    loud = [] if _QUIET_LINE.match(buf) else [0]
    for match in _NOT_QUIET_NEXT.finditer(buf):
        loud.append(match.end())
        if len(loud) > limit:
            return None
    return loud


def _after_quiet_needle_lines(buf: bytes, begin: int, start: int) -> int:
    """Just after the last quiet line holding a needle among the lines in [begin, start)."""
    bound = begin
    line = begin
    while line < start:
        end = buf.find(b"\n", line, start)
        if end == -1:
            break
        if _QUIET_LINE.match(buf, line) and any(_needles_in_line(buf, line)):
            bound = end + 1
        line = end + 1
    return bound


class _CandidateFinder:
    """Where the next possibly interesting line starts, using C-speed searches only.

    A line is a candidate when it is not quiet (see ``_QUIET_LINE``) and a needle starts in
    it. Each new buffer is looked at once, by whichever way is cheaper for it: lines that
    are not quiet are found by one regex and only they are searched for needles, or, when
    most lines are not quiet, every needle is found (see ``_needle_hits``) and the quiet
    lines holding one are passed over. Both give the same answers.

    For a stack frame it backs up to the line before (the header of an error whose name
    has no "error" in it); for a header right after a crash excerpt (``/app.js:42``,
    source, ``^``) it backs up to the excerpt.
    """

    def __init__(self) -> None:
        self._buf: bytes | None = None
        self._hits: list[int] = []
        self._loud: list[int] | None = None
        self._needle_mode = 0  # buffers left to search needle by needle

    def __call__(self, buf: bytes, pos: int) -> int:
        if buf is not self._buf:
            self._prepare(buf)
        if self._loud is None:
            return self._from_hits(buf, pos)
        loud = self._loud
        # Lines inside a record are read without asking here, so needles are looked for
        # only in the lines that are asked about.
        index = bisect_left(loud, pos)
        while True:
            if index == len(loud):
                return -1
            start = loud[index]
            other, frame = _needles_in_line(buf, start)
            if other or frame:
                break
            index += 1
        if not other or start == pos:
            return start
        back = self._back_up(buf, pos, start)
        if back < start:
            # The needle search resumes after each quiet line holding a needle, and never
            # backs up beyond where it resumed: neither may this.
            bound = _after_quiet_needle_lines(buf, back, start)
            if bound > back:
                back = self._back_up(buf, bound, start)
        return back

    def _prepare(self, buf: bytes) -> None:
        self._buf = buf
        self._loud = None
        if self._needle_mode:
            self._needle_mode -= 1
        else:
            self._loud = _loud_lines(buf)
            if self._loud is not None:
                return
            self._needle_mode = _NEEDLE_MODE_BUFFERS
        self._hits = _needle_hits(buf)

    def _from_hits(self, buf: bytes, pos: int) -> int:
        hits = self._hits
        index = bisect_left(hits, pos)
        while True:
            if index == len(hits):
                return -1
            best = hits[index]
            start = buf.rfind(b"\n", pos, best) + 1 or pos
            if not _QUIET_LINE.match(buf, start):
                break
            # An INFO/DEBUG/WARN line that merely mentions "error": the line mode would
            # ignore it too, so skip it here without building a Line.
            newline = buf.find(b"\n", best)
            if newline == -1:
                return -1
            pos = newline + 1
            index = bisect_left(hits, pos, index)
        if buf[best] == 10 or start == pos:
            # Only the frame needle starts with a newline: the one ending the line above
            # the frame, which is the error's header.
            return start
        return self._back_up(buf, pos, start)

    def _back_up(self, buf: bytes, pos: int, start: int) -> int:
        previous = buf.rfind(b"\n", pos, start - 1) + 1 or pos
        if _EXCERPT_BYTES.fullmatch(buf, previous, start - 1):
            # The excerpt above a source line that names an error (`throw new Error(...)`).
            return previous
        return self._excerpt_start(buf, pos, start)

    @staticmethod
    def _excerpt_start(buf: bytes, pos: int, start: int) -> int:
        """The start of a crash excerpt that ends just above ``start``, else ``start``.

        Expected bottom-up: [blank,] caret, source, path:line. Lines are taken one at a
        time, so the usual answer (no caret right above) costs one or two searches.
        """
        end = start - 1
        if end < pos:
            return start
        begin = buf.rfind(b"\n", pos, end) + 1 or pos
        if begin == end:  # a blank line under the caret
            end = begin - 1
            if end < pos:
                return start
            begin = buf.rfind(b"\n", pos, end) + 1 or pos
        if not _CARET_BYTES.fullmatch(buf, begin, end):
            return start
        for _ in range(2):  # the source line, then the path line above it
            end = begin - 1
            if end < pos:
                return start
            begin = buf.rfind(b"\n", pos, end) + 1 or pos
        return begin if _EXCERPT_BYTES.fullmatch(buf, begin, end) else start


# --- line prefixes and timestamps ------------------------------------------------------

_PM2_ID = re.compile(r"\d+\|[^|]{1,64}\|\s?")
_TIMESTAMP = re.compile(
    r"\[?(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?"
    r"\s?(Z|[+-]\d\d:?\d\d|UTC)?\]?:?(?: |$)"
)


def _iso(groups: tuple[str | None, ...]) -> str | None:
    year, month, day, hour, minute, second, fraction, zone = groups
    try:
        stamp = datetime(
            int(year or 0),
            int(month or 0),
            int(day or 0),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if zone and zone not in ("Z", "UTC"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
        stamp = stamp.replace(tzinfo=timezone(sign * offset)).astimezone(UTC)
    return _format_time(stamp)


def _format_time(stamp: datetime) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


# The timestamp's regex groups: turned into ISO text only for lines that end up in a record.
_Stamp = tuple[str | None, ...] | None


def _split_prefix(text: str) -> tuple[str, _Stamp]:
    body = text
    stamp: _Stamp = None
    if text[:1].isdigit() or text[:1] == "[":
        match = _PM2_ID.match(body)
        if match:
            body = body[match.end() :]
        for _ in range(2):
            match = _TIMESTAMP.match(body)
            if not match:
                break
            stamp = match.groups()
            body = body[match.end() :]
    return body, stamp


def strip_prefix(text: str) -> tuple[str, str | None]:
    """Remove PM2 and timestamp prefixes; return the line body and the UTC timestamp.

    PM2 ``--time`` and the app's own timestamp can both be present; the last one wins
    because the app's own is usually the more precise.
    """
    body, stamp = _split_prefix(text)
    return body, _iso(stamp) if stamp else None


def _json_time(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return _format_time(datetime.fromtimestamp(seconds, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        match = _TIMESTAMP.match(value.strip())
        return _iso(match.groups()) if match else None
    return None


# --- frames -----------------------------------------------------------------------------

_NODE_FRAME = re.compile(r"\s+at (?:(?P<fn>.+?) \((?P<loc>.*)\)|(?P<bare>\S.*?))\s*(?:\{\s*)?")
_JAVA_FRAME = re.compile(r"\s+at (?P<fn>[\w$.<>/-]+)\((?P<loc>[^()]*)\)")
_LOCATION = re.compile(r"(?P<path>.*?)(?::(?P<line>\d+))?(?::(?P<col>\d+))?")
_PY_FRAME = re.compile(r'\s+File "(?P<path>.+)", line (?P<line>\d+)(?:, in (?P<fn>.+))?')
_GO_LOCATION = re.compile(r"\t(?P<path>\S+?):(?P<line>\d+)(?: \+0x[0-9a-f]+)?")
_JAVA_LIBRARY = ("java.", "javax.", "sun.", "jdk.", "com.sun.", "kotlin.", "scala.")


def _node_in_app(path: str) -> bool:
    return not (
        "node_modules/" in path
        or "node_modules\\" in path
        or path.startswith(("node:", "internal/", "<anonymous>", "native", "evalmachine", "index "))
        or path in ("", "<anonymous>", "native")
    )


def _python_in_app(path: str) -> bool:
    return not (
        "site-packages" in path
        or "dist-packages" in path
        or re.search(r"[/\\]lib[/\\]python\d", path) is not None
        or path.startswith("<frozen ")
    )


def parse_node_frame(line: str) -> Frame | None:
    """Parse a V8 ``at ...`` line, or None when the line is not one."""
    match = _NODE_FRAME.fullmatch(line)
    if not match:
        return None
    function = match["fn"] or "<anonymous>"
    location = match["loc"] if match["loc"] is not None else match["bare"]
    if function.startswith("async "):
        function = function[6:]
    if location.startswith("eval at "):
        location = location.rsplit(", ", 1)[-1]
    loc = _LOCATION.fullmatch(location)
    assert loc is not None
    path = loc["path"]
    number = int(loc["line"]) if loc["line"] else None
    column = int(loc["col"]) if loc["col"] else None
    if number is None and match["bare"] is not None and " " in path:
        return None
    return Frame(function, path, number, column, _node_in_app(path))


def parse_java_frame(line: str) -> Frame | None:
    """Parse a JVM ``at pkg.Class.method(File.java:12)`` line, or None."""
    match = _JAVA_FRAME.fullmatch(line)
    if not match:
        return None
    function = match["fn"]
    in_app = "/" not in function and not function.startswith(_JAVA_LIBRARY)
    if "/" in function:
        function = function.split("/", 1)[1]
        in_app = in_app and not function.startswith(_JAVA_LIBRARY)
    path, _, number = match["loc"].partition(":")
    return Frame(function, path, int(number) if number.isdigit() else None, None, in_app)


# Stack lines repeat verbatim across the occurrences of a fault; frames are immutable, so
# the parse of a recent line is reused. Long lines are not kept, which bounds the memory.
_FRAME_MEMO: dict[str, Frame | None] = {}
_FRAME_MEMO_ENTRIES = 4096
_FRAME_MEMO_MAX_CHARS = 512


def _parse_frame(line: str) -> Frame | None:
    try:
        return _FRAME_MEMO[line]
    except KeyError:
        pass
    frame = parse_java_frame(line) or parse_node_frame(line)
    if len(line) <= _FRAME_MEMO_MAX_CHARS:
        if len(_FRAME_MEMO) >= _FRAME_MEMO_ENTRIES:
            _FRAME_MEMO.clear()
        _FRAME_MEMO[line] = frame
    return frame


# --- line shapes --------------------------------------------------------------------------

# Kept in step with _NEEDLES: a level the fast path cannot see would make results depend
# on how the stream happened to be chunked.
_ERROR_LEVELS = frozenset(("error", "fatal", "crit", "critical", "alert", "emerg", "emergency"))
_OTHER_LEVELS = frozenset(
    ("trace", "debug", "info", "notice", "warn", "warning", "verbose", "silly", "http", "log")
)
_LEVEL_WORD = re.compile(r"\[?([A-Za-z]{3,9})\]?(?::\s*|\s+|$)")
_LOGFMT_LEVEL = re.compile(r"(?:^|\s)(?:level|lvl|severity)=\"?([A-Za-z]+)")
_LOGFMT_MSG = re.compile(r"(?:^|\s)msg=(?:\"((?:[^\"\\]|\\.)*)\"|(\S+))")
_ROUTE = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(/[^\s?#]*)\S*\s*(.*)")
_HEADER = re.compile(
    r"(?:Uncaught )?(?P<name>[A-Za-z_$][\w$.]*(?: \[[\w.-]+\])?)(?::\s(?P<msg>.*)|:?$)"
)
_BRACKET_HEADER = re.compile(r"\[(?P<name>[A-Za-z_$][\w$.]*(?: \[[\w.-]+\])?): (?P<msg>.*)\]")
_ERRORISH = re.compile(r"(?:Error|Exception|Rejection|Fault|Failure|Panic)$|^Error\b")
_EXCERPT = re.compile(r"(?:file://)?(?P<path>\S+\.[cm]?[jt]sx?|node:[\w/]+):(?P<line>\d+)")
_CARET = re.compile(r"\s*\^+\s*")
_JAVA_THREAD = re.compile(r'Exception in thread "[^"]*" (?P<name>[\w$.]+)(?::\s?(?P<msg>.*))?')
_JAVA_MORE = re.compile(r"\s+\.\.\. \d+ (?:more|common frames omitted)")
_CAUSE_CHAIN = re.compile(r"(?:Caused by|\s*Suppressed|\s*\[cause\]|\s*\[errors\]): ")
_PY_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_PY_EXCEPTION = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?")
_GO_HEADER = re.compile(r"(?P<kind>panic|fatal error): (?P<msg>.*)")
_GO_GOROUTINE = re.compile(r"goroutine \d+ \[.*\]:|runtime stack:|\[signal .*\]|created by .*")
_GO_FUNCTION = re.compile(r"(?P<fn>[\w./*()\-\[\]{}%,]+)\(.*\)")
_NODE_FOOTER = re.compile(r"Node\.js v\d+\S*")
_NODE_HINT = re.compile(r"\(Use `node --trace-\S+ \.\.\.` to show where .*\)")
_NODE_MORE = re.compile(r"\s+\.\.\. \d+ lines matching cause stack trace \.\.\.")


def _level_of(body: str) -> tuple[str | None, str]:
    """('error' | 'other' | None, text after the level word) for a text line body."""
    match = _LEVEL_WORD.match(body)
    if match:
        word = match[1].lower()
        if word in _ERROR_LEVELS:
            rest = body[match.end() :]
            # "Error: boom" is an error header, not a level word.
            if match[1] == "Error" and body.startswith("Error:"):
                return "error", body
            return "error", rest
        if word in _OTHER_LEVELS:
            return "other", body[match.end() :]
    if "=" in body:
        logfmt = _LOGFMT_LEVEL.search(body)
        if logfmt:
            word = logfmt[1].lower()
            if word in _ERROR_LEVELS:
                msg = _LOGFMT_MSG.search(body)
                if msg:
                    text = msg[1] if msg[1] is not None else msg[2]
                    return "error", text.replace('\\"', '"')
                return "error", body
            return "other", body
    return None, body


def _header(text: str, errorish_only: bool) -> tuple[str, str] | None:
    match = _HEADER.fullmatch(text)
    if match and match["msg"] is None and not _ERRORISH.search(match["name"]):
        return None
    if not match:
        return None
    name = match["name"]
    if errorish_only and not _ERRORISH.search(name.split(" [", 1)[0]):
        return None
    return name, match["msg"] or ""


def _bracket_header(text: str) -> tuple[str, str, bool] | None:
    """``[Name: msg]`` (an error printed without a stack), maybe opening a property block."""
    if not text.startswith("["):
        return None
    end = text.rfind("]")
    if end == -1:
        return None
    match = _BRACKET_HEADER.fullmatch(text[: end + 1])
    if not match:
        return None
    tail = text[end + 1 :].strip()
    if tail and not tail.startswith("{"):
        return None
    opens = tail == "{"
    return match["name"], match["msg"], opens


# --- assembling -------------------------------------------------------------------------


class _Pending:
    """A record being assembled, with every line (and so every byte) it has taken."""

    __slots__ = (
        "crash",
        "depth",
        "error_type",
        "frames",
        "lines",
        "message",
        "route",
        "stack",
        "state",
        "timestamp",
    )

    def __init__(self, state: str, line: Line, timestamp: _Stamp) -> None:
        self.state = state
        self.lines: list[Line] = [line]
        self.stack: list[str] = []
        self.frames: list[Frame] = []
        self.error_type = ""
        self.message = ""
        self.route: str | None = None
        self.timestamp = timestamp
        self.crash = False
        self.depth = 0

    def add(self, line: Line, body: str, timestamp: _Stamp, stack: bool = True) -> None:
        self.lines.append(line)
        if stack and len(self.stack) < MAX_STACK_LINES:
            self.stack.append(body)
        if self.timestamp is None:
            self.timestamp = timestamp

    def frame(self, frame: Frame | None) -> None:
        if frame is not None and len(self.frames) < MAX_FRAMES:
            self.frames.append(frame)


def _raw(lines: list[Line]) -> str:
    texts = [line.text for line in lines]
    while texts and not texts[-1].strip():
        texts.pop()
    raw = "\n".join(texts)
    if len(raw) > MAX_RAW_CHARS:
        raw = raw[:MAX_RAW_CHARS] + f" …[record cut: {len(raw)} characters]"
    return raw


class Assembler:
    """Turns a byte stream into error records, tracking exactly which bytes are done.

    Feed consecutive chunks with their file offsets. A record that may still continue
    (a stack trace whose next line has not arrived) is held until a line that does not
    belong to it arrives, or until :meth:`flush`. :attr:`safe_offset` is where a reader
    that persisted every record returned so far must resume after a crash.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._splitter = LineSplitter(max_line_bytes)
        self._finder = _CandidateFinder()
        self._pending: _Pending | None = None

    @property
    def splitter(self) -> LineSplitter:
        """The line splitter, for its ``cut_lines`` / ``invalid_utf8_lines`` counters."""
        return self._splitter

    @property
    def pending(self) -> bool:
        """True while a multi-line record is being assembled."""
        return self._pending is not None

    @property
    def pending_has_frames(self) -> bool:
        """Whether the record being assembled already has stack frames.

        A header with no frame yet is the likeliest to be continued by a later write, so
        the daemon waits longer before finishing it.
        """
        return self._pending is not None and bool(self._pending.frames)

    @property
    def safe_offset(self) -> int:
        """Every byte before this offset is fully reflected in records already returned."""
        if self._pending is not None:
            return self._pending.lines[0].start
        return self._splitter.pending_start

    def feed(self, data: bytes, offset: int) -> list[ErrorRecord]:
        """Add a chunk (``offset`` = file offset of its first byte); return finished records."""
        self._splitter.push(data, offset)
        out: list[ErrorRecord] = []
        splitter = self._splitter
        while True:
            if self._pending is None and not splitter.skip_until(self._finder):
                break
            line = splitter.next_line()
            if line is None:
                break
            self._line(line, out)
        return out

    def flush(self, eof: bool = False) -> list[ErrorRecord]:
        """Finish the record being assembled: the stream went quiet, or ended.

        With ``eof`` the partial last line (no newline yet) is taken as complete too,
        for a file that was rotated away or a pipe that closed.
        """
        out: list[ErrorRecord] = []
        if eof:
            for line in self._splitter.flush():
                self._line(line, out)
        while self._pending is not None:
            self._finish(self._pending, out)
        return out

    def _finish(self, pending: _Pending, out: list[ErrorRecord]) -> None:
        """Close ``pending``: emit it, or replay its lines when it turned out to be nothing."""
        self._pending = None
        if pending.state in ("maybe", "excerpt"):
            for line in pending.lines[1:]:
                self._line(line, out)
            return
        out.append(self._record(pending))

    def _record(self, p: _Pending) -> ErrorRecord:
        return ErrorRecord(
            error_type=p.error_type or "Error",
            message=p.message,
            stack=p.stack,
            frames=p.frames,
            route=p.route,
            timestamp=_iso(p.timestamp) if p.timestamp else None,
            raw=_raw(p.lines),
        )

    def _line(self, line: Line, out: list[ErrorRecord]) -> None:
        body, stamp = _split_prefix(line.text)
        while self._pending is not None:
            pending = self._pending
            if self._continue(pending, line, body, stamp, out):
                return
            self._finish(pending, out)
        self._start(line, body, stamp, out)

    # -- starting a record -----------------------------------------------------------

    def _start(self, line: Line, body: str, stamp: _Stamp, out: list[ErrorRecord]) -> None:
        if body.startswith("{") and body.rstrip().endswith("}"):
            handled, record = _json_record(line, body)
            if handled:
                if record is not None:
                    out.append(record)
                return
        if body.startswith("Traceback (most recent call last)"):
            pending = self._pending = _Pending("py", line, stamp)
            pending.stack.append(body)
            return
        go = _GO_HEADER.fullmatch(body)
        if go:
            pending = self._pending = _Pending("go", line, stamp)
            message = go["msg"]
            if go["kind"] == "panic" and message.startswith("runtime error: "):
                pending.error_type, pending.message = "runtime error", message[15:]
            else:
                pending.error_type, pending.message = go["kind"], message
            pending.stack.append(body)
            return
        java = _JAVA_THREAD.fullmatch(body)
        if java:
            self._stack_start(line, body, stamp, java["name"], java["msg"] or "")
            return
        excerpt = _EXCERPT.fullmatch(body)
        if excerpt:
            self._pending = _Pending("excerpt", line, stamp)
            return
        level, rest = _level_of(body)
        if level == "other":
            return
        if level == "error":
            pending = self._pending = _Pending("lead", line, stamp)
            route = _ROUTE.fullmatch(rest)
            if route:
                pending.route = f"{route[1]} {route[2]}"
                rest = route[3]
            header = _header(rest, errorish_only=True) if rest else None
            if header:
                pending.error_type, pending.message = header
                pending.stack.append(rest)
                pending.state = "stack"
            else:
                pending.message = rest.strip() or (pending.route or body.strip())
            return
        self._headerless_start(line, body, stamp)

    def _headerless_start(self, line: Line, body: str, stamp: _Stamp) -> None:
        bracket = _bracket_header(body)
        if bracket:
            pending = self._stack_start(line, body, stamp, bracket[0], bracket[1])
            if bracket[2]:
                pending.state = "props"
                pending.depth = 1
            return
        header = _header(body, errorish_only=False)
        if header is None:
            return
        pending = self._stack_start(line, body, stamp, *header)
        if not _ERRORISH.search(header[0].split(" [", 1)[0]):
            pending.state = "maybe"

    def _stack_start(
        self, line: Line, body: str, stamp: _Stamp, name: str, message: str
    ) -> _Pending:
        pending = self._pending = _Pending("stack", line, stamp)
        pending.error_type, pending.message = name, message
        pending.stack.append(body)
        return pending

    # -- continuing a record ---------------------------------------------------------

    def _continue(
        self, p: _Pending, line: Line, body: str, stamp: _Stamp, out: list[ErrorRecord]
    ) -> bool:
        """Take ``line`` into ``p`` if it belongs there; False leaves it for a new start."""
        state = p.state
        if state == "props":
            return self._props(p, line, body, stamp)
        if state in ("stack", "lead", "maybe"):
            return self._stack(p, line, body, stamp)
        if state == "excerpt":
            return self._excerpt(p, line, body, stamp)
        if state == "tail":
            if _NODE_FOOTER.fullmatch(body) or _NODE_HINT.fullmatch(body) or not body.strip():
                p.add(line, body, stamp, stack=False)
                return True
            return False
        if state in ("py", "py_end", "py_chain"):
            return self._python(p, line, body, stamp)
        if state == "go":
            return self._go(p, line, body, stamp)
        return False

    def _stack(self, p: _Pending, line: Line, body: str, stamp: _Stamp) -> bool:
        stripped = body.lstrip()
        if stripped.startswith("at ") and body[:1] in (" ", "\t"):
            frame = _parse_frame(body)
            if frame is None:
                return False
            if p.state == "lead" and not p.error_type:
                p.error_type = "Error"
            p.state = "stack"
            p.add(line, body, stamp)
            p.frame(frame)
            if body.rstrip().endswith(" {"):
                p.state, p.depth = "props", 1
            return True
        if p.state == "maybe":
            return False
        if _JAVA_MORE.fullmatch(body) or _NODE_MORE.fullmatch(body):
            p.add(line, body, stamp)
            return True
        if _CAUSE_CHAIN.match(body) or body.startswith("Emitted 'error' event"):
            p.add(line, body, stamp)
            return True
        if p.state == "lead":
            return self._after_lead(p, line, body, stamp)
        if p.crash and not body.strip():
            p.state = "tail"
            p.add(line, body, stamp, stack=False)
            return True
        return False

    def _after_lead(self, p: _Pending, line: Line, body: str, stamp: _Stamp) -> bool:
        """The line after ``ERROR ...``: the error it announces, or something unrelated."""
        if p.error_type:
            return False
        if body.startswith("Traceback (most recent call last)"):
            p.add(line, body, stamp)
            p.state = "py"
            return True
        go = _GO_HEADER.fullmatch(body)
        if go:
            p.add(line, body, stamp)
            p.error_type, p.message = go["kind"], go["msg"]
            p.state = "go"
            return True
        bracket = _bracket_header(body)
        header = (bracket[0], bracket[1]) if bracket else _header(body, errorish_only=True)
        if header is None or (header[0] != "Error" and _level_of(body)[0] is not None):
            return False
        p.add(line, body, stamp)
        p.error_type, p.message = header
        p.state = "stack"
        if bracket and bracket[2]:
            p.state, p.depth = "props", 1
        return True

    def _props(self, p: _Pending, line: Line, body: str, stamp: _Stamp) -> bool:
        """A ``{ code: 'X', [cause]: ... }`` block that console.error prints after a stack."""
        if len(p.lines) > _MAX_PROPS_LINES:
            return False
        p.add(line, body, stamp)
        if not body.startswith((" ", "\t")) and body.strip() in ("}", "},"):
            p.state = "tail" if p.crash else "done"
        return True

    def _excerpt(self, p: _Pending, line: Line, body: str, stamp: _Stamp) -> bool:
        """After ``/path/app.js:42``: source line, caret, blank, then the error itself."""
        seen = len(p.lines)
        if not p.crash:
            # Looking for the caret under the source line.
            if _CARET.fullmatch(body) and seen >= 2:
                p.crash = True
                p.add(line, body, stamp, stack=False)
                return True
            if seen >= 2:
                return False
            p.add(line, body, stamp, stack=False)
            return True
        if not body.strip():
            if seen > _MAX_EXCERPT_LINES:
                return False
            p.add(line, body, stamp, stack=False)
            return True
        bracket = _bracket_header(body)
        header = (bracket[0], bracket[1]) if bracket else _header(body, errorish_only=False)
        if header is None:
            header = ("Uncaught", body.strip())
        p.add(line, body, stamp)
        p.error_type, p.message = header
        p.state = "props" if bracket and bracket[2] else "stack"
        p.depth = 1
        return True

    def _python(self, p: _Pending, line: Line, body: str, stamp: _Stamp) -> bool:
        if p.state == "py":
            if body[:1] in (" ", "\t"):
                frame = _PY_FRAME.fullmatch(body)
                if frame:
                    path = frame["path"]
                    p.frame(
                        Frame(
                            frame["fn"] or "<module>",
                            path,
                            int(frame["line"]),
                            None,
                            _python_in_app(path),
                        )
                    )
                p.add(line, body, stamp)
                return True
            if not body.strip():
                return False
            match = _PY_EXCEPTION.fullmatch(body)
            if match:
                p.error_type, p.message = match["name"], match["msg"] or ""
            else:
                p.error_type, p.message = "Exception", body.strip()
            p.add(line, body, stamp)
            p.state = "py_end"
            return True
        if not body.strip():
            p.add(line, body, stamp, stack=False)
            return True
        if body in _PY_CHAIN:
            p.add(line, body, stamp)
            p.state = "py_chain"
            return True
        if p.state == "py_chain" and body.startswith("Traceback (most recent call last)"):
            p.add(line, body, stamp)
            p.frames = []
            p.state = "py"
            return True
        return False

    def _go(self, p: _Pending, line: Line, body: str, stamp: _Stamp) -> bool:
        if not body.strip() or _GO_GOROUTINE.fullmatch(body):
            p.add(line, body, stamp, stack=bool(body.strip()))
            return True
        if body.startswith("exit status "):
            p.add(line, body, stamp, stack=False)
            p.state = "done"
            return True
        location = _GO_LOCATION.fullmatch(body)
        if location:
            previous = p.stack[-1] if p.stack else ""
            function = _GO_FUNCTION.fullmatch(previous)
            name = function["fn"] if function else "?"
            path = location["path"]
            in_app = not ("/go/src/" in path or "/pkg/mod/" in path or name.startswith("runtime."))
            p.add(line, body, stamp)
            p.frame(Frame(name, path, int(location["line"]), None, in_app))
            return True
        if _GO_FUNCTION.fullmatch(body) or body.startswith(("\t...", "panic: ")):
            p.add(line, body, stamp)
            return True
        return False


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_JSON_ERROR_LEVELS = frozenset(
    ("error", "err", "fatal", "crit", "critical", "alert", "emerg", "emergency")
)


def _json_is_error(obj: dict[str, Any]) -> bool:
    for key in ("level", "severity", "levelname", "lvl", "log.level"):
        if key not in obj:
            continue
        level = obj[key]
        if isinstance(level, bool):
            return False
        if isinstance(level, int | float):
            return level >= 50
        if isinstance(level, str):
            if level.isdigit():
                return int(level) >= 50
            return level.strip().lower() in _JSON_ERROR_LEVELS
        return False
    return False


def _json_record(line: Line, body: str) -> tuple[bool, ErrorRecord | None]:
    """(is a JSON object, the error record it holds if its level is error or worse)."""
    if not body.rstrip().endswith("}") or '"' not in body:
        return False, None
    if not (
        '"level"' in body
        or '"severity"' in body
        or '"levelname"' in body
        or '"lvl"' in body
        or '"log.level"' in body
    ):
        # A JSON object with no level at all is a plain line (and certainly no error log).
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            return False, None
        return isinstance(obj, dict), None
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return False, None
    if not isinstance(obj, dict):
        return False, None
    if not _json_is_error(obj):
        return True, None
    return True, _json_error(line, obj)


def _json_error(line: Line, obj: dict[str, Any]) -> ErrorRecord:
    err = obj.get("err")
    if not isinstance(err, dict | str):
        err = obj.get("error")
    if not isinstance(err, dict | str):
        err = obj.get("exception")
    stack_text: str | None = None
    message: str | None = None
    error_type: str | None = None
    if isinstance(err, dict):
        stack_text = _text(err.get("stack"))
        message = _text(err.get("message"))
        error_type = _text(err.get("type")) or _text(err.get("name"))
    elif isinstance(err, str):
        if "\n    at " in err:
            stack_text = err
        else:
            message = err
    if stack_text is None:
        stack_text = _text(obj.get("stack"))
    if message is None:
        message = _text(obj.get("message")) or _text(obj.get("msg"))
    stack = stack_text.splitlines()[:MAX_STACK_LINES] if stack_text else []
    frames: list[Frame] = []
    for entry in stack[1:]:
        frame = _parse_frame(entry) if entry.lstrip().startswith("at ") else None
        if frame is not None and len(frames) < MAX_FRAMES:
            frames.append(frame)
    if stack:
        header = _header(stack[0], errorish_only=False)
        if header:
            error_type = error_type or header[0]
            message = message if message is not None else header[1]
    route = _json_route(obj)
    timestamp = None
    for key in ("time", "timestamp", "@timestamp", "ts"):
        if key in obj:
            timestamp = _json_time(obj[key])
            if timestamp:
                break
    return ErrorRecord(
        error_type=error_type or "Error",
        message=message or "",
        stack=stack,
        frames=frames,
        route=route,
        timestamp=timestamp,
        raw=_raw([line]),
    )


def _json_route(obj: dict[str, Any]) -> str | None:
    req = obj.get("req")
    if not isinstance(req, dict):
        req = obj.get("request")
    source = req if isinstance(req, dict) else obj
    method = _text(source.get("method"))
    url = _text(source.get("url")) or _text(source.get("path"))
    if method and url and url.startswith("/"):
        return f"{method.upper()} {url.split('?', 1)[0].split('#', 1)[0]}"
    return None


def settled_line_start(buf: bytes, pos: int) -> int:
    """The start of the first line at or after ``pos`` that follows two quiet lines, or -1.

    Two lines that only a non-error log level prints end every record except a property
    block, so an Assembler started there is very likely in step with one that read all
    that came before: a place to cut a file for parallel reading. Callers still check
    (``pending``, ``safe_offset``) that the reader of the part before did end up idle there.
    ``pos`` must be the start of a line.
    """
    quiet = 0
    start = pos
    while quiet < 2:
        end = buf.find(b"\n", start)
        if end == -1:
            return -1
        quiet = quiet + 1 if _QUIET_LINE.match(buf, start, end + 1) else 0
        start = end + 1
    return start


def parse_lines(lines: Iterable[str]) -> list[ErrorRecord]:
    """Every error record in ``lines`` (text without newlines); for tests and one-offs."""
    data = "".join(text.rstrip("\n") + "\n" for text in lines).encode("utf-8", "surrogateescape")
    assembler = Assembler()
    return assembler.feed(data, 0) + assembler.flush(eof=True)
