"""The log formats the agent reads, each a :class:`Recognizer`, in the order they are
asked about a line that may start a record."""

from __future__ import annotations

from agent.parse.formats.base import Recognizer, Start, Verdict
from agent.parse.formats.crash import CrashReport
from agent.parse.formats.go import GoPanic
from agent.parse.formats.java import JavaThread
from agent.parse.formats.json_lines import JsonLine
from agent.parse.formats.levels import HapiDebug, LevelLine
from agent.parse.formats.python import PythonTraceback
from agent.parse.formats.v8 import V8Stack

# Most specific first: a JSON object is never read as text, a traceback header never as a
# ``Name: message`` header, and a level word decides before a bare header is guessed at.
RECOGNIZERS: tuple[Recognizer, ...] = (
    JsonLine(),
    PythonTraceback(),
    GoPanic(),
    JavaThread(),
    CrashReport(),
    HapiDebug(),
    LevelLine(),
    V8Stack(),
)

__all__ = ["RECOGNIZERS", "Recognizer", "Start", "Verdict"]
