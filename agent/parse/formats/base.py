"""What every format recognizer declares and does.

A recognizer starts records from the lines it knows and owns the continuation states it
puts them in; the assembler passes each following line to the owner of the record's
current state. The needles a recognizer declares are what the byte prefilter looks for:
a line holding none of any recognizer's needles is never decoded while no record is open,
so a recognizer must declare a needle for every line it can start a record from.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from agent.lines import Line
from agent.parse.pending import Pending
from agent.parse.prefixes import Stamp
from agent.record import ErrorRecord


class Verdict(enum.Enum):
    """A start that takes the line without opening a record (an INFO line, say)."""

    IGNORED = "ignored"


# None: not this recognizer's line, ask the next one.
Start = Pending | ErrorRecord | Verdict | None


class Recognizer:
    """One log format: how its records start and how they go on."""

    # Literals (matched case-insensitively) that a line starting a record holds.
    needles: ClassVar[tuple[bytes, ...]] = ()
    # Literals in the line after one that starts a record (a frame under a header whose
    # name holds no needle), wherever envelopes, prefixes and indentation put them.
    previous_line_needles: ClassVar[tuple[bytes, ...]] = ()
    # Continuation states this recognizer decides for.
    states: ClassVar[tuple[str, ...]] = ()
    # States in which the record may still turn out to be nothing: if it ends there, its
    # lines after the first are read again as if it had never started.
    provisional: ClassVar[tuple[str, ...]] = ()

    def start(self, line: Line, body: str, stamp: Stamp) -> Start:
        """Open a record (or emit one, or ignore the line) when ``body`` is this format's."""
        return None

    def take(self, p: Pending, line: Line, body: str, stamp: Stamp) -> bool:
        """Take ``line`` into ``p`` (in one of :attr:`states`) if it belongs there."""
        return False
