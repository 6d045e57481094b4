"""The demo's scripted model: prepared fixes for the demo service's bugs, made for real.

Without a logged-in ``claude``, ``autofix demo`` still runs the real Claude Code CLI, pointed
at this model on loopback (console/demo/messages_api.py). The model reads the error out of
the fix prompt, picks the prepared fix whose pattern matches it, and drives the CLI through
it with real tool calls: Read the file, Edit it, Write a regression test, run the test
command with Bash, then sum up. The CLI executes every call in the worktree under the same
rules as with the real model, so the diff, the refusals and the test run are all real; only
the thinking is prepared. A tool call that fails (the code is not what the fix expects, the
tests fail) ends the conversation with a message saying so, never with a claim of success.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from console.demo.messages_api import MessagesApi, Text, ToolCall, assistant_turns, verdict_call

NAME = "scripted demo model"
# What a person is told wherever the demo's Claude state shows.
LOGIN_HINT = "log in to `claude` for real fixes"
DEFAULT_TEST_COMMAND = "node --test"
_WORKDIR = re.compile(r"Primary working directory: (/[^\s`'\"]+)")
_TEST_COMMAND = re.compile(r"Run the tests with `([^`\n]+)`")
_DATA_BLOCK = re.compile(r"^BEGIN (LOG-DATA-[0-9a-f]+)$(.*?)^END \1$", re.M | re.S)
_EXIT = re.compile(r"Exit code (\d+)")


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in ``path`` (relative to the repository)."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class PreparedFix:
    """One bug of the demo service and the fix the scripted model makes for it."""

    name: str
    # Searched (case-sensitively) in the error data block of the prompt.
    pattern: re.Pattern[str]
    cause: str
    edits: tuple[Edit, ...]
    test_path: str
    test_source: str
    summary: str


def _test_file(requires: str, body: str) -> str:
    return (
        "'use strict';\n\n"
        "const test = require('node:test');\n"
        "const assert = require('node:assert/strict');\n\n"
        f"{requires}\n\n{body}"
    )


PREPARED_FIXES: tuple[PreparedFix, ...] = (
    PreparedFix(
        name="unknown user",
        pattern=re.compile(r"Cannot read properties of undefined \(reading 'id'\)"),
        cause="getUserProfile reads `user.id` when findUser finds no user for the id",
        edits=(
            Edit(
                "lib/users.js",
                "  const user = findUser(id);\n  return {",
                "  const user = findUser(id);\n  if (!user) return null;\n  return {",
            ),
        ),
        test_path="test/users-unknown.test.js",
        test_source=_test_file(
            "const { getUserProfile } = require('../lib/users');",
            "test('getUserProfile answers null for an id no user has', () => {\n"
            "  assert.equal(getUserProfile('424242'), null);\n"
            "});\n",
        ),
        summary="getUserProfile now returns null for an unknown id instead of reading a "
        "property of undefined.",
    ),
    PreparedFix(
        name="malformed product list",
        pattern=re.compile(r"SyntaxError:.*JSON"),
        cause="parseProductList passes the request body to JSON.parse unchecked, so a "
        "malformed body throws a SyntaxError",
        edits=(
            Edit(
                "lib/products.js",
                "  const ids = JSON.parse(body);\n",
                "  let ids;\n  try {\n    ids = JSON.parse(body);\n  } catch (err) {\n"
                "    throw new TypeError(`product list is not valid JSON: ${err.message}`);\n"
                "  }\n",
            ),
        ),
        test_path="test/products-malformed.test.js",
        test_source=_test_file(
            "const { parseProductList } = require('../lib/products');",
            "test('parseProductList rejects a malformed body as a bad product list', () => {\n"
            "  assert.throws(() => parseProductList('{ids: [1]'), {\n"
            "    name: 'TypeError',\n    message: /product list is not valid JSON/,\n  });\n"
            "});\n",
        ),
        summary="parseProductList now reports a malformed body as a TypeError naming the "
        "product list, the same way it reports a body that is not an array.",
    ),
    PreparedFix(
        name="payments without a Stripe key",
        pattern=re.compile(r"STRIPE_SECRET_KEY is not set"),
        cause="listPayments asks for the Stripe key even where payments are not configured",
        edits=(
            Edit(
                "lib/payments.js",
                "function listPayments(env) {\n",
                "function listPayments(env) {\n  if (!env.STRIPE_SECRET_KEY) {\n"
                "    return { provider: 'stripe', configured: false, payments: [] };\n  }\n",
            ),
        ),
        test_path="test/payments-unconfigured.test.js",
        test_source=_test_file(
            "const { listPayments } = require('../lib/payments');",
            "test('listPayments answers an empty, unconfigured list without a key', () => {\n"
            "  assert.deepEqual(listPayments({}), "
            "{ provider: 'stripe', configured: false, payments: [] });\n"
            "});\n",
        ),
        summary="listPayments now answers an empty list marked `configured: false` when "
        "STRIPE_SECRET_KEY is not set, instead of throwing on every request.",
    ),
    PreparedFix(
        name="stock service down",
        pattern=re.compile(r"ECONNREFUSED"),
        cause="loadInventory fails the whole request when the stock service refuses the connection",
        edits=(
            Edit(
                "lib/inventory.js",
                "  return fetchStockLevels(target);\n",
                "  try {\n    return await fetchStockLevels(target);\n  } catch (err) {\n"
                "    if (err.code !== 'ECONNREFUSED') throw err;\n"
                "    return { available: false, items: [] };\n  }\n",
            ),
        ),
        test_path="test/inventory-down.test.js",
        test_source=_test_file(
            "const { loadInventory } = require('../lib/inventory');",
            "test('loadInventory answers unavailable when the stock service is down', "
            "async () => {\n"
            "  assert.deepEqual(await loadInventory(), { available: false, items: [] });\n"
            "});\n",
        ),
        summary="loadInventory now answers `{ available: false, items: [] }` when the stock "
        "service refuses the connection, instead of failing the request.",
    ),
)


@dataclass(frozen=True)
class Conversation:
    """What the model needs from one request: the prompt, where the CLI works, what came back."""

    prompt: str
    workdir: str | None
    turn: int
    last_results: tuple[dict[str, Any], ...]


def _texts(value: Any) -> Iterator[str]:
    """Every text string in a message's content (a string or a list of blocks)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for block in value:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                yield block["text"]


def read_request(body: dict[str, Any]) -> Conversation:
    """The parts of a Messages API request body the model answers from; any shape is read."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    if not isinstance(body.get("messages"), list):
        messages = []
    user_texts = [
        text for m in messages if m.get("role") == "user" for text in _texts(m.get("content"))
    ]
    prompt = next((t for t in user_texts if "BEGIN LOG-DATA-" in t), "")
    # Where the CLI works comes from its own environment note, never from the prompt (whose
    # data block holds text from logs) nor from tool results (file contents, test output).
    notes = [
        *_texts(body.get("system")),
        *(t for m in messages if m.get("role") == "system" for t in _texts(m.get("content"))),
    ]
    workdir = next((m.group(1) for t in notes if (m := _WORKDIR.search(t))), None)
    results: tuple[dict[str, Any], ...] = ()
    if messages and messages[-1].get("role") == "user":
        content = messages[-1].get("content")
        if isinstance(content, list):
            results = tuple(
                b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"
            )
    return Conversation(prompt, workdir, assistant_turns(body), results)


def error_data(prompt: str) -> str:
    """The error as the prompt's data block holds it (empty when there is none)."""
    match = _DATA_BLOCK.search(prompt)
    return match.group(2) if match else ""


def choose_fix(prompt: str) -> PreparedFix | None:
    """The prepared fix for the error in the prompt, or None for an error it has none for."""
    data = error_data(prompt)
    return next((fix for fix in PREPARED_FIXES if fix.pattern.search(data)), None)


def prompt_test_command(prompt: str) -> str:
    match = _TEST_COMMAND.search(prompt)
    return match.group(1) if match else DEFAULT_TEST_COMMAND


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(_texts(content))


def _failure(results: tuple[dict[str, Any], ...]) -> str | None:
    """What went wrong with the last tool call, if anything (a refusal, a failed edit, a
    test run that did not exit 0)."""
    for block in results:
        text = _result_text(block)
        code = _EXIT.search(text)
        if block.get("is_error") or (code is not None and code.group(1) != "0"):
            first = next((line for line in text.splitlines() if line.strip()), "no output")
            return first.strip()[:300]
    return None


def steps(fix: PreparedFix, workdir: str, command: str) -> list[list[Text | ToolCall]]:
    """The prepared fix as turns: read and edit each file, write the test, run the tests."""
    turns: list[list[Text | ToolCall]] = []
    for index, edit in enumerate(fix.edits):
        path = f"{workdir}/{edit.path}"
        opening = [Text(f"The error comes from {edit.path}: {fix.cause}.")] if index == 0 else []
        turns.append([*opening, ToolCall("Read", {"file_path": path})])
        turns.append(
            [ToolCall("Edit", {"file_path": path, "old_string": edit.old, "new_string": edit.new})]
        )
    turns.append(
        [
            Text("Adding a regression test for it."),
            ToolCall(
                "Write",
                {"file_path": f"{workdir}/{fix.test_path}", "content": fix.test_source},
            ),
        ]
    )
    turns.append([ToolCall("Bash", {"command": command, "description": "Run the service's tests"})])
    return turns


def answer(body: dict[str, Any]) -> list[Text | ToolCall]:
    """The model's next turn for one streamed request of a fix conversation."""
    talk = read_request(body)
    fix = choose_fix(talk.prompt)
    if fix is None:
        return [
            Text(
                f"The {NAME} has no prepared fix for this error: it only knows the demo "
                f"service's own bugs. {LOGIN_HINT[0].upper()}{LOGIN_HINT[1:]}."
            )
        ]
    if talk.workdir is None:
        return [Text("The working directory is not in the request, so no file can be read.")]
    failure = _failure(talk.last_results) if talk.turn > 0 else None
    if failure is not None:
        return [Text(f"The prepared fix for the {fix.name} did not go through: {failure}")]
    plan = steps(fix, talk.workdir, prompt_test_command(talk.prompt))
    if talk.turn < len(plan):
        return list(plan[talk.turn])
    return [
        Text(
            f"Root cause: {fix.cause}. {fix.summary} Added {fix.test_path}; "
            f"`{prompt_test_command(talk.prompt)}` passes."
        ),
        verdict_call(
            root_cause=f"{fix.cause[0].upper()}{fix.cause[1:]}.",
            summary=fix.summary,
            files=[
                *({"path": e.path, "why": "the fix"} for e in fix.edits),
                {"path": fix.test_path, "why": "the regression test"},
            ],
        ),
    ]


def demo_model() -> MessagesApi:
    """The scripted model's server, not yet started. It reports no token use, so the
    CLI prices its fixes at $0: nothing was spent."""
    return MessagesApi(answer, input_tokens=0, output_tokens=0)
