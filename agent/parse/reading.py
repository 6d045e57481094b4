"""Whole texts in, records out: for tests and one-off callers."""

from __future__ import annotations

from collections.abc import Iterable

from agent.parse.assembler import Assembler
from agent.record import ErrorRecord


def parse_lines(lines: Iterable[str]) -> list[ErrorRecord]:
    """Every error record in ``lines`` (text without newlines)."""
    data = "".join(text.rstrip("\n") + "\n" for text in lines).encode("utf-8", "surrogateescape")
    assembler = Assembler()
    return assembler.feed(data, 0) + assembler.flush(eof=True)
