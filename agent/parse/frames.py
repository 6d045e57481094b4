"""Stack frame lines of the runtimes the agent knows -> :class:`Frame`."""

from __future__ import annotations

import re

from agent.record import Frame

_NODE_FRAME = re.compile(r"\s+at (?:(?P<fn>.+?) \((?P<loc>.*)\)|(?P<bare>\S.*?))\s*(?:\{\s*)?")
_JAVA_FRAME = re.compile(r"\s+at (?P<fn>[\w$.<>/-]+)\((?P<loc>[^()]*)\)")
_LOCATION = re.compile(r"(?P<path>.*?)(?::(?P<line>\d+))?(?::(?P<col>\d+))?")
_JAVA_LIBRARY = ("java.", "javax.", "sun.", "jdk.", "com.sun.", "kotlin.", "scala.")


def _node_in_app(path: str) -> bool:
    return not (
        "node_modules/" in path
        or "node_modules\\" in path
        or path.startswith(("node:", "internal/", "<anonymous>", "native", "evalmachine", "index "))
        or path in ("", "<anonymous>", "native")
    )


def python_in_app(path: str) -> bool:
    """Whether a Python frame's file is the app's own rather than the library's."""
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


def parse_frame(line: str) -> Frame | None:
    """A JVM or V8 ``at`` line's frame, or None."""
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
