"""Log lines -> :class:`ErrorRecord`: finds errors in Node.js (and neighbouring) logs.

``prefilter`` passes over the bulk of a log at C speed, ``prefixes`` removes what comes
before a line's own text, ``formats`` holds one recognizer per log format (each owning
the continuation states of the records it starts), ``frames`` reads stack frames, and
``assembler`` ties them together with exact byte offsets.
"""

from agent.parse.assembler import Assembler
from agent.parse.frames import parse_java_frame, parse_node_frame
from agent.parse.prefilter import quiet_lines, settled_line_start
from agent.parse.prefixes import strip_prefix
from agent.parse.reading import parse_lines
from agent.record import ErrorRecord

__all__ = [
    "Assembler",
    "ErrorRecord",
    "parse_java_frame",
    "parse_lines",
    "parse_node_frame",
    "quiet_lines",
    "settled_line_start",
    "strip_prefix",
]
