"""The byte prefilter: where a possibly interesting line starts, at C speed.

Most of a production log is not an error, so while no record is being assembled the raw
bytes are scanned for the needles the format recognizers declare (after case folding),
and only lines that hold one are decoded and looked at in Python. This is the only code
that looks at bytes rather than text.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from agent.parse import envelopes
from agent.parse.formats import RECOGNIZERS
from agent.parse.shapes import OTHER_LEVELS

# Case folding, plus letter classes that let one needle stand for two words ("fatal" and
# "panic" fold alike, as do "alert" and "emerg"), plus '6' -> '5' for "level":50 and 60.
# Folded needles match a few other words too; those lines are merely looked at and dropped.
_LETTER_CLASSES = bytes.maketrans(b"eipngcm", b"aafttll")
FOLD = bytes.maketrans(
    bytes(range(65, 91)) + b"6eipngcm",
    bytes(range(97, 123)).translate(_LETTER_CLASSES) + b"5aafttll",
)


def _needles() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(line needles, frame needles) of every recognizer and envelope, folded, once each."""
    line: dict[bytes, None] = {}
    frame: dict[bytes, None] = {}
    declared = [(r.needles, r.previous_line_needles) for r in RECOGNIZERS]
    declared.append((envelopes.NEEDLES, ()))
    for needles, previous_line_needles in declared:
        for needle in needles:
            line[needle.translate(FOLD)] = None
        for needle in previous_line_needles:
            frame[needle.translate(FOLD)] = None
    for needle in (*line, *frame):
        assert needle and b"\n" not in needle, needle
    return tuple(line), tuple(frame)


# A line holding a line needle is a candidate; so is the line before one holding a frame
# needle (the header above a frame, whatever envelope, prefix or indentation they have).
LINE_NEEDLES, FRAME_NEEDLES = _needles()
NEEDLES: tuple[bytes, ...] = LINE_NEEDLES + FRAME_NEEDLES

CARET_BYTES = re.compile(rb"[ \t]*\^+[ \t]*\r?")
# Lines the line mode would ignore when idle: a non-error level word after an optional
# timestamp, a pino/bunyan/winston JSON line whose first "level" is below error, or a
# logfmt line whose level is below error.
_QUIET_STAMP = (
    rb"\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})? ?"
    rb"(?:Z|[+-]\d\d:?\d\d|UTC)?\]?:? "
)
# Level words of lines the level-line recognizer ignores (some of shapes.OTHER_LEVELS).
_QUIET_WORDS: tuple[bytes, ...] = (
    *(b"info", b"debug", b"trace", b"notice", b"warn", b"warning"),
    *(b"verbose", b"silly", b"http"),
)
assert {word.decode() for word in _QUIET_WORDS} <= OTHER_LEVELS
_QUIET_WORD = rb"\[?(?i:" + b"|".join(_QUIET_WORDS) + rb")\]?[: \t\r\n]"
_QUIET_JSON = (
    rb'\{(?:"(?:name|hostname|pid|time|v)":(?:"[^"\\\n]*"|\d+),)*"level":'
    rb'(?:[1-4]\d|"(?i:' + b"|".join(_QUIET_WORDS) + rb')")[,}]'
)
# logfmt: the level key first, or right after a time key (``_LOGFMT_LEVEL`` in shapes finds
# the leftmost level key, and a time value holds no space).
_QUIET_LOGFMT = (
    rb'(?:(?:time|ts)=[^\s"]+ )?(?:level|lvl|severity)="?(?i:'
    + b"|".join(_QUIET_WORDS)
    + rb')"?[ \t\r\n]'
)
QUIET_LINE = re.compile(
    b"(?:"
    + _QUIET_STAMP
    + b"){0,2}(?:"
    + _QUIET_WORD
    + b"|"
    + _QUIET_JSON
    + b"|"
    + _QUIET_LOGFMT
    + b")"
)
# A newline followed by a line that is not quiet, for finding those lines at C speed. It
# asks the same question as QUIET_LINE in a form the regex engine answers faster: the
# commonest quiet shapes are tried on their own first, each a subset of the whole, and
# optional groups are spelled as alternatives. The first two have no optional part at all:
# pino's ``{"level":30,`` and Node's own ``Date.toISOString()`` time before an upper-case
# level; checking them first takes about a third off the search on logs made of them, and
# costs the lines of other shapes two checks that fail on their first bytes or so.
_STAMP_OR_NOT = (
    rb"\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9}|) ?(?:Z|[+-]\d\d:?\d\d|UTC|)\]?:? "
)
_PINO_QUIET = rb'\{"level":[1-4]\d[,}]'
_ISO_QUIET = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?:INFO|DEBUG|WARN) "
NOT_QUIET_NEXT = re.compile(
    b"\n(?!"
    + _PINO_QUIET
    + b")(?!"
    + _ISO_QUIET
    + b")(?!"
    + _QUIET_JSON
    + b")(?!"
    + _STAMP_OR_NOT
    + _QUIET_WORD
    + b")(?!"
    + _QUIET_LOGFMT
    + b")(?!(?:"
    + _STAMP_OR_NOT
    + b"(?:"
    + _STAMP_OR_NOT
    + b"|)|)(?:"
    + _QUIET_WORD
    + b"|"
    + _QUIET_JSON
    + b"|"
    + _QUIET_LOGFMT
    + b"))"
)
EXCERPT_BYTES = re.compile(rb"(?:\S+\.[cm]?[jt]sx?|node:[\w/]+):\d+\r?")

# Searching the folded buffer once per needle would cost a full pass each. Instead each
# needle is looked for from one of its bytes (its anchor), and needles sharing an anchor are
# found together by one regex whose literal first byte lets the engine skip ahead at C speed.
# Bytes that are rare in logs (x, f/p, b, v, j, newline) are merged into one marker first,
# so a single search covers every needle holding one of them; "r" anchors most others
# (error, alert/emerg, crit). A needle holding no anchor ("    at ") is searched for on its
# own. Every anchor hit is checked against the exact fold before it counts, so the hits
# are exactly those of a plain search for each needle.
_MARKER = 0
_RARE_FOLDED = b"xbvj\n"
_MERGE = bytes(_MARKER if i in _RARE_FOLDED else i for i in range(256))
_COARSE = FOLD.translate(_MERGE)
_ANCHORS = (_MARKER, ord("r"), ord("f"))

# Per anchor search: the regex, and by the byte after the anchor the (offset of the anchor
# in the needle, needle) pairs to check.
_AnchorSearch = tuple[re.Pattern[bytes], dict[int, list[tuple[int, bytes]]]]


def _anchor_searches() -> list[_AnchorSearch]:
    plans: dict[int, tuple[list[bytes], dict[int, list[tuple[int, bytes]]]]] = {
        anchor: ([], {}) for anchor in _ANCHORS
    }
    alone: list[_AnchorSearch] = []
    for needle in NEEDLES:
        coarse = needle.translate(_MERGE)
        found = next(((a, coarse.find(a)) for a in _ANCHORS if a in coarse), None)
        if found is None:
            # Its own search: the first byte is the anchor, checked like the others.
            alone.append(
                (
                    re.compile(re.escape(coarse[:1]) + b"(?=" + re.escape(coarse[1:]) + b")"),
                    {coarse[1]: [(0, needle)]},
                )
            )
            continue
        anchor, offset = found
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
        if branches
    ] + alone


_ANCHOR_SEARCHES = _anchor_searches()


_MAX_ANCHOR_OFFSET = max(
    (offset for _, checks in _ANCHOR_SEARCHES for pairs in checks.values() for offset, _ in pairs),
    default=0,
)


class NeedleSearch:
    """The needle occurrences of one buffer, found on demand from a position onwards.

    Only what is asked for is searched: a reader that skips a record's lines (asking next
    from after them) never pays for the needles inside it, such as every frame's ``at``.
    Each anchor search remembers the first hit it found and from where it looked, so
    asking again before that hit costs nothing.
    """

    def __init__(self, buf: bytes) -> None:
        self._folded = buf.translate(FOLD)
        self._coarse = buf.translate(_COARSE)
        # Per anchor search: (searched from, first hit at or after it, or -1).
        self._next = [(len(buf) + 1, -1)] * len(_ANCHOR_SEARCHES)

    def first(self, pos: int) -> int:
        """Start of the first needle occurrence at or after ``pos``, or -1."""
        best = -1
        for i, (searched_from, hit) in enumerate(self._next):
            if not (searched_from <= pos and (hit == -1 or hit >= pos)):
                hit = self._search(i, pos)
                self._next[i] = (pos, hit)
            if hit != -1 and (best == -1 or hit < best):
                best = hit
        return best

    def _search(self, index: int, pos: int) -> int:
        search, checks = _ANCHOR_SEARCHES[index]
        coarse, folded = self._coarse, self._folded
        best = -1
        for match in search.finditer(coarse, pos):
            at = match.start()
            if best != -1 and at - _MAX_ANCHOR_OFFSET > best:
                break  # no needle anchored this far on can start before the best one
            for offset, needle in checks.get(coarse[at + 1], ()):
                start = at - offset
                if (
                    start >= pos
                    and (best == -1 or start < best)
                    and folded.startswith(needle, start)
                ):
                    best = start
        return best


def needle_hits(buf: bytes) -> list[int]:
    """Sorted start offsets of every needle occurrence in ``buf`` (case folded)."""
    search = NeedleSearch(buf)
    hits: list[int] = []
    at = search.first(0)
    while at != -1:
        hits.append(at)
        at = search.first(at + 1)
    return hits


# A buffer with more lines that are not quiet than this (per KiB, plus a few) is searched
# needle by needle instead: checking many lines one by one in Python costs more.
_LINES_PER_KIB = 1
_LINES_SLACK = 16
# After a buffer turned out busy, this many buffers go straight to the needle search.
_NEEDLE_MODE_BUFFERS = 8


def _line_end(buf: bytes, start: int) -> int:
    end = buf.find(b"\n", start)
    return len(buf) if end == -1 else end


def _any_of(needles: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """One search for any of ``needles``: on a line, the regex engine's one pass is several
    times cheaper than a ``needle in line`` test per needle in Python."""
    return re.compile(b"|".join(re.escape(needle) for needle in needles))


_LINE_SEARCH = _any_of(LINE_NEEDLES)
_FRAME_SEARCH = _any_of(FRAME_NEEDLES)
_ANY_SEARCH = _any_of(NEEDLES)


def _holds(buf: bytes, start: int, end: int, search: re.Pattern[bytes]) -> bool:
    return search.search(buf[start:end].translate(FOLD)) is not None


def _needles_in_line(buf: bytes, start: int) -> tuple[bool, bool]:
    """(a line needle is in the line at ``start``, a frame needle is in the line after it)."""
    end = _line_end(buf, start)
    other = _holds(buf, start, end, _LINE_SEARCH)
    frame = end < len(buf) and _holds(buf, end + 1, _line_end(buf, end + 1), _FRAME_SEARCH)
    return other, frame


def loud_lines(buf: bytes) -> list[int] | None:
    """Starts of the lines that are not quiet, or None when there are too many of them for
    looking at them one by one to pay off."""
    limit = len(buf) // 1024 * _LINES_PER_KIB + _LINES_SLACK
    loud = [] if QUIET_LINE.match(buf) else [0]
    for match in NOT_QUIET_NEXT.finditer(buf):
        loud.append(match.end())
        if len(loud) > limit:
            return None
    return loud


def _after_needle_lines(buf: bytes, begin: int, start: int) -> int:
    """Just after the last line holding any needle among the lines in [begin, start)."""
    bound = begin
    line = begin
    while line < start:
        end = buf.find(b"\n", line, start)
        if end == -1:
            break
        if _holds(buf, line, end, _ANY_SEARCH):
            bound = end + 1
        line = end + 1
    return bound


class CandidateFinder:
    """Where the next possibly interesting line starts, using C-speed searches only.

    A line is a candidate when it is not quiet (see ``QUIET_LINE``) and it holds a line
    needle, or the line after it holds a frame needle (the header of an error whose name
    has no "error" in it). Each new buffer is looked at once, by whichever way is cheaper
    for it: lines that are not quiet are found by one regex and only they are searched for
    needles, or, when most lines are not quiet, every needle is found (see
    ``needle_hits``) and the lines holding one that are no candidates are passed over.
    Both give the same answers.

    For a header right after a crash excerpt (``/app.js:42``, source, ``^``) it backs up
    to the excerpt.
    """

    def __init__(self) -> None:
        self._buf: bytes | None = None
        self._hits: NeedleSearch | None = None
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
            # The needle search resumes after each line holding a needle that is no
            # candidate, and never backs up beyond where it resumed: neither may this.
            bound = _after_needle_lines(buf, back, start)
            if bound > back:
                back = self._back_up(buf, bound, start)
        return back

    def _prepare(self, buf: bytes) -> None:
        self._buf = buf
        self._loud = None
        if self._needle_mode:
            self._needle_mode -= 1
        else:
            self._loud = loud_lines(buf)
            if self._loud is not None:
                return
            self._needle_mode = _NEEDLE_MODE_BUFFERS
        self._hits = NeedleSearch(buf)

    def _from_hits(self, buf: bytes, pos: int) -> int:
        hits = self._hits
        assert hits is not None
        best = hits.first(pos)
        while best != -1:
            start = buf.rfind(b"\n", pos, best) + 1 or pos
            end = _line_end(buf, start)
            if start > pos and _holds(buf, start, end, _FRAME_SEARCH):
                # The line above a frame, unless the hits in it already ruled it out (then
                # the search would have resumed after it).
                before = buf.rfind(b"\n", pos, start - 1) + 1 or pos
                if not QUIET_LINE.match(buf, before):
                    return before
            if not QUIET_LINE.match(buf, start):
                if _holds(buf, start, end, _LINE_SEARCH):
                    return start if start == pos else self._back_up(buf, pos, start)
                if end < len(buf) and _holds(buf, end + 1, _line_end(buf, end + 1), _FRAME_SEARCH):
                    return start
            # An INFO/DEBUG/WARN line that merely mentions "error", or a frame under a line
            # that starts nothing: the line mode would ignore it too, so skip it here.
            if end == len(buf):
                return -1
            pos = end + 1
            best = hits.first(pos)
        return -1

    def _back_up(self, buf: bytes, pos: int, start: int) -> int:
        previous = buf.rfind(b"\n", pos, start - 1) + 1 or pos
        if EXCERPT_BYTES.fullmatch(buf, previous, start - 1):
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
        if not CARET_BYTES.fullmatch(buf, begin, end):
            return start
        for _ in range(2):  # the source line, then the path line above it
            end = begin - 1
            if end < pos:
                return start
            begin = buf.rfind(b"\n", pos, end) + 1 or pos
        return begin if EXCERPT_BYTES.fullmatch(buf, begin, end) else start


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
        quiet = quiet + 1 if QUIET_LINE.match(buf, start, end + 1) else 0
        start = end + 1
    return start


def quiet_lines(data: bytes) -> bool:
    """Whether ``data`` is whole lines, each of them quiet (see ``QUIET_LINE``).

    Quiet lines start no record and join none that is not open, whatever follows them, so
    a parser idle before them is as good as idle after them.
    """
    if not data.endswith(b"\n"):
        return False
    start = 0
    while start < len(data):
        end = data.index(b"\n", start) + 1
        if not QUIET_LINE.match(data, start, end):
            return False
        start = end
    return True
