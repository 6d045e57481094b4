"""Telling refused calls from calls that ran: the Bash sandbox's refusals show only in a
command's output, so only a command's output is read for them."""

from __future__ import annotations

import pytest

from console.fix.sandbox.denials import DenialCollector
from console.fix.transcript import ToolResult, ToolUse

REFUSED_OUTPUTS = (
    "Error: connect ECONNREFUSED 127.0.0.1:5432",
    "touch: cannot touch '/home/dev/x': Read-only file system",
    "curl: (6) Could not resolve host: example.com",
)


@pytest.mark.parametrize("output", REFUSED_OUTPUTS)
def test_a_command_whose_output_shows_the_sandbox_is_a_sandbox_refusal(output: str) -> None:
    collector = DenialCollector()
    collector.feed(ToolUse("toolu_01", "Bash", {"command": "node --test"}))
    denial = collector.feed(ToolResult("toolu_01", f"# tests\n{output}\n", is_error=True))
    assert denial is not None and denial.kind == "sandbox"
    assert denial.reason == f"sandbox: {output}" and denial.target == "node --test"


@pytest.mark.parametrize("tool", ["Read", "Grep", "Edit", "Write"])
@pytest.mark.parametrize("output", REFUSED_OUTPUTS)
def test_a_file_that_mentions_those_words_is_no_refusal(tool: str, output: str) -> None:
    collector = DenialCollector()
    collector.feed(ToolUse("toolu_01", tool, {"file_path": "/repo/lib/inventory.js"}))
    text = f"18\t// The stock service is down: {output}\n"
    assert collector.feed(ToolResult("toolu_01", text, is_error=False)) is None
    assert collector.denials == []
