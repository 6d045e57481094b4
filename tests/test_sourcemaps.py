"""Source maps: frames in built JavaScript read at the original TypeScript lines.

The service is compiled by the pinned real TypeScript compiler and run by the real node
without ``--enable-source-maps``, so its stack points at ``dist/*.js``; node run *with*
that flag is the reference for where each frame really came from.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.fix.frames import FramePosition, frame_position, locate_frames, stack_files
from console.fix.prompt import build_prompt, source_excerpts
from console.fix.sourcemaps import (
    SourceMapError,
    SourceMaps,
    decode_mappings,
    decode_vlq,
    parse_source_map,
)
from tests.conftest import eventually, node_env, require_node_modules, require_tool

USERS_TS = """\
interface User {
  id: number;
  tenant?: { name: string };
}

const users: User[] = [{ id: 1, tenant: { name: "acme" } }, { id: 7 }];

export function tenantName(id: number): string {
  const user = users.find((u) => u.id === id);
  if (!user) throw new Error(`no user ${id}`);
  // the bug: a user without a tenant
  return (user.tenant as { name: string }).name.toUpperCase();
}
"""

MAIN_TS = """\
import { tenantName } from "./users";

function handle(id: number): void {
  console.log(tenantName(id));
}

try {
  handle(7);
} catch (err) {
  console.error(err);
}
"""


def _build(tmp_path: Path, *, inline: bool = False) -> Path:
    """A small TypeScript service compiled to dist/ by the pinned tsc."""
    modules = require_node_modules("typescript")
    repo = tmp_path / "svc"
    tmp_path.mkdir(exist_ok=True)
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "users.ts").write_text(USERS_TS)
    (repo / "src" / "main.ts").write_text(MAIN_TS)
    options: dict[str, object] = {
        "target": "es2022",
        "module": "commonjs",
        "outDir": "dist",
        "rootDir": "src",
        "strict": True,
        "types": [],
    }
    options["inlineSourceMap" if inline else "sourceMap"] = True
    (repo / "tsconfig.json").write_text(json.dumps({"compilerOptions": options}))
    subprocess.run(
        [str(modules / ".bin" / "tsc"), "-p", str(repo)],
        check=True,
        capture_output=True,
        timeout=120,
        env=node_env(),
    )
    return repo


def _stack(repo: Path, *node_flags: str) -> list[str]:
    """The stack lines the service prints, as a log holds them."""
    node = require_tool("node")
    done = subprocess.run(
        [node, *node_flags, str(repo / "dist" / "main.js")],
        capture_output=True,
        text=True,
        timeout=30,
        env=node_env(),
    )
    return [line for line in done.stderr.splitlines() if line.strip().startswith("at ")]


def _deployed(stack: list[str], repo: Path) -> list[str]:
    """The same stack as it reads on the prod host, where the service lives in /srv/app."""
    return [line.replace(str(repo), "/srv/app") for line in stack]


def _node_mapped(repo: Path) -> list[FramePosition]:
    """Where node itself maps the frames (the reference)."""
    return locate_frames(_deployed(_stack(repo, "--enable-source-maps"), repo), repo, None)


@pytest.mark.parametrize("inline", [False, True], ids=["map-files", "inline-data-url"])
def test_frames_in_built_javascript_map_to_the_typescript_lines_node_would_name(
    tmp_path: Path, inline: bool
) -> None:
    repo = _build(tmp_path, inline=inline)
    assert (repo / "dist" / "users.js.map").exists() is not inline
    stack = _deployed(_stack(repo), repo)
    assert "/srv/app/dist/users.js:" in stack[0]

    frames = locate_frames(stack, repo, None)

    assert [(f.path, f.line, f.column) for f in frames] == [
        (f.path, f.line, f.column) for f in _node_mapped(repo)
    ]
    assert frames[0].path == "src/users.ts" and frames[0].line == 12
    assert frames[0].generated is not None and frames[0].generated.startswith("dist/users.js:")
    assert [f.path for f in frames] == ["src/users.ts", "src/main.ts", "src/main.ts"]


def test_the_prompt_excerpt_shows_the_typescript_source_around_the_failing_line(
    tmp_path: Path,
) -> None:
    repo = _build(tmp_path)
    stack = _deployed(_stack(repo), repo)

    [first, *_] = source_excerpts(stack, repo, None)

    assert first.path == "src/users.ts" and first.line == 12
    marked = [line for line in first.text.splitlines() if line.startswith(">")]
    assert marked == ["> 12 |   return (user.tenant as { name: string }).name.toUpperCase();"]

    class Facts:
        service, error_type, route, severity, count = "svc", "TypeError", None, "high", 1
        message = "Cannot read properties of undefined (reading 'name')"
        hosts = {"prod-1": 1}
        first_seen = last_seen = "2026-12-01T10:00:00Z"

    Facts.stack = ["TypeError: x", *stack]  # type: ignore[attr-defined]
    prompt = build_prompt(Facts(), repo, None, None, "npm test", has_tests=False)  # type: ignore[arg-type]
    assert re.search(
        r"^src/users\.ts line 12 \(mapped from dist/users\.js:\d+:\d+ by its source map\):$",
        prompt,
        re.M,
    )


def test_frames_node_already_mapped_are_used_as_they_are(tmp_path: Path) -> None:
    repo = _build(tmp_path)
    stack = _deployed(_stack(repo, "--enable-source-maps"), repo)
    assert "/srv/app/src/users.ts:12:" in stack[0]

    frames = locate_frames(stack, repo, None)

    assert frames[0] == FramePosition("src/users.ts", 12, frames[0].column)
    assert all(f.generated is None for f in frames)
    assert stack_files(stack, repo, None) == ["src/users.ts", "src/main.ts"]


def test_a_built_file_without_a_map_keeps_its_own_lines(tmp_path: Path) -> None:
    repo = _build(tmp_path)
    for map_file in (repo / "dist").glob("*.map"):
        map_file.unlink()
    stack = _deployed(_stack(repo), repo)

    frames = locate_frames(stack, repo, None)

    assert frames[0].path == "dist/users.js" and frames[0].generated is None
    assert stack_files(stack, repo, None) == ["dist/users.js", "dist/main.js"]


def test_maps_and_sources_outside_the_repository_are_never_read(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "dist").mkdir(parents=True)
    (repo / "src").mkdir()
    (repo / "src" / "a.ts").write_text("one\ntwo\n")
    outside = tmp_path / "outside.js.map"
    outside.write_text(json.dumps({"version": 3, "sources": ["repo/src/a.ts"], "mappings": "AAAA"}))
    (repo / "dist" / "a.js").write_text("x()\n//# sourceMappingURL=../../outside.js.map\n")
    (repo / "dist" / "b.js").write_text("x()\n")
    (repo / "dist" / "b.js.map").write_text(
        json.dumps({"version": 3, "sources": ["../../../etc/passwd"], "mappings": "AAAA"})
    )
    (repo / "dist" / "c.js").write_text("x()\n//# sourceMappingURL=https://cdn.example/c.js.map\n")
    maps = SourceMaps(repo, lambda p: None)

    for name in ("a.js", "b.js", "c.js"):
        assert maps.original(Path("dist") / name, 1, 1) is None


def test_an_index_map_places_each_section_at_its_offset() -> None:
    section = {"version": 3, "sources": ["a.ts"], "names": [], "mappings": "AAAA,IAAI"}
    other = {"version": 3, "sources": ["b.ts"], "names": [], "mappings": ";AACA"}
    doc = {
        "version": 3,
        "sections": [
            {"offset": {"line": 0, "column": 0}, "map": section},
            {"offset": {"line": 2, "column": 10}, "map": other},
        ],
    }

    parsed = parse_source_map(json.dumps(doc), "dist")

    assert parsed.sources == ("dist/a.ts", "dist/b.ts")
    at = parsed.lookup(1, 5)
    assert at is not None and (parsed.sources[at.source or 0], at.source_column) == ("dist/a.ts", 4)
    below = parsed.lookup(4, 1)
    assert below is not None and (parsed.sources[below.source or 0], below.line) == ("dist/b.ts", 1)


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("[]", "not a JSON object"),
        ('{"version": 2, "sources": [], "mappings": ""}', "version 2 is not 3"),
        ('{"version": 3, "sources": ["a"], "mappings": "AA!A"}', "invalid base64 VLQ"),
        ('{"version": 3, "sources": ["a"], "mappings": "AAAAg"}', "cut off"),
        ('{"version": 3, "sources": ["a"], "mappings": "ACAA"}', "outside the map's sources"),
        ('{"version": 3, "sources": ["a"], "mappings": "AA"}', "a segment has 2 fields"),
    ],
)
def test_a_malformed_map_is_refused_with_what_is_wrong(doc: str, problem: str) -> None:
    with pytest.raises(SourceMapError, match=re.escape(problem)):
        parse_source_map(doc)


def _vlq(value: int) -> str:
    """The standard encoder (the inverse under test)."""
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    number = (-value << 1) | 1 if value < 0 else value << 1
    out = ""
    while True:
        digit, number = number & 31, number >> 5
        out += digits[digit | (32 if number else 0)]
        if not number:
            return out


@given(st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=12))
def test_vlq_decoding_inverts_the_standard_encoding(values: list[int]) -> None:
    assert decode_vlq("".join(_vlq(v) for v in values)) == values


_segments = st.lists(
    st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 2), st.integers(0, 500), st.integers(0, 80)),
        max_size=5,
    ),
    min_size=1,  # "" is one generated line without mappings
    max_size=5,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_segments)
def test_decoded_mappings_give_back_the_absolute_positions_that_were_encoded(
    lines: list[list[tuple[int, int, int, int]]],
) -> None:
    previous = [0, 0, 0]
    encoded = []
    for segments in lines:
        column = 0
        fields = []
        for gen, src, line, col in sorted(set(segments)):
            fields.append(
                _vlq(gen - column)
                + _vlq(src - previous[0])
                + _vlq(line - previous[1])
                + _vlq(col - previous[2])
            )
            column, previous = gen, [src, line, col]
        encoded.append(",".join(fields))

    decoded = decode_mappings(";".join(encoded), sources=3, names=0)

    assert [[(s.column, s.source, s.line, s.source_column) for s in d] for d in decoded] == [
        sorted(set(segments)) for segments in lines
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.text(max_size=40))
def test_any_map_text_or_comment_a_build_left_is_a_mapping_or_none_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, map_text: str, url: str
) -> None:
    repo = tmp_path_factory.mktemp("repo")
    (repo / "dist").mkdir()
    (repo / "dist" / "a.js").write_text(f"x()\n//# sourceMappingURL={url}\n", errors="replace")
    (repo / "dist" / "a.js.map").write_text(map_text, errors="replace")
    maps = SourceMaps(repo, lambda p: Path(p) if p == "dist/a.ts" else None)

    found = maps.original(Path("dist/a.js"), 1, 1)

    assert found is None or found.path == "dist/a.ts"


@given(st.text(max_size=200))
def test_frame_positions_come_only_from_frame_shaped_lines(line: str) -> None:
    found = frame_position(line)
    if found is not None:
        path, number, column = found
        assert f"{path}:{number}" in line and "/" in path
        assert column is None or f":{number}:{column}" in line


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=80).map(lambda t: f"    at f (/srv/app/{t}:3:4)"), max_size=4))
def test_any_frame_path_from_a_log_is_located_or_passed_over_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, stack: list[str]
) -> None:
    repo = tmp_path_factory.mktemp("repo")
    (repo / "lib").mkdir()
    (repo / "lib" / "a.js").write_text("x()\n" * 5)

    frames = locate_frames(stack, repo, None)

    assert all((repo / f.path).is_file() for f in frames)


async def test_an_attempt_builds_the_worktree_and_prompts_with_the_typescript_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path with the real CLI: the agent relays a stack in dist/*.js, the attempt
    runs `build_command` (the pinned tsc) in its fresh worktree, and the prompt Claude
    receives shows src/users.ts around line 12."""
    from console.config import parse_config
    from console.engine import Engine
    from console.models import ErrorRow, State
    from console.store import Store
    from tests.engine_world import TOKEN, console_document, local_host, seed_agent
    from tests.github_api import GitHubStandIn
    from tests.messages_api import MessagesApi, Text
    from tests.service_repo import git, isolate_git

    isolate_git(tmp_path, monkeypatch)
    prod = _build(tmp_path / "prod")
    node = require_tool("node")
    ran = subprocess.run(
        [node, str(prod / "dist" / "main.js")], capture_output=True, timeout=30, env=node_env()
    )
    log = ran.stderr.replace(str(prod).encode(), b"/srv/app")
    assert b"/srv/app/dist/users.js:" in log

    repo = _build(tmp_path / "dev")
    for built in (repo / "dist").iterdir():
        built.unlink()
    (repo / "dist").rmdir()
    (repo / ".gitignore").write_text("dist/\n")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "add", ".")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "ts")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")

    host, state = local_host(tmp_path, "prod-1")
    seed_agent(state, log, "prod-1")
    tsc = require_node_modules("typescript") / ".bin" / "tsc"
    api = MessagesApi([[Text("Looked at it; no change.")]])
    with api, GitHubStandIn(token=TOKEN, repos={"acme/pa": bare}) as github:
        document = console_document(tmp_path, repo, api, github, [host])
        document["services"][0]["build_command"] = f"{tsc} -p ."
        config = parse_config(document)
        engine = Engine(config, await Store.open(config.db_path))
        await engine.start()
        try:

            async def waiting() -> ErrorRow | None:
                rows = await engine.store.errors(limit=10)
                return next((r for r in rows if r.state is State.AWAITING_APPROVAL), None)

            error = await eventually(waiting, 60, "the relayed error")
            assert (await engine.approve(error.id, actor="keyboard")).ok
            await eventually(lambda: api.conversation, 120, "the prompt reaching Claude")
            await engine.wait_idle()
        finally:
            await engine.stop()
    prompt = json.dumps(api.conversation[0]["messages"][0])
    assert re.search(r"src/users\.ts line 12 \(mapped from dist/users\.js:\d+:\d+", prompt)
    assert "return (user.tenant as { name: string }).name.toUpperCase();" in prompt
