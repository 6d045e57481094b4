"""Random config documents shaped by a config's declared keys, and a check that an error
message names a key that is really there (or really declared).

The shape comes from ``reference_rows`` (the same rows the README is checked against):
tables hold a random subset of their declared keys, now and then a misspelt or unknown one,
and every leaf is any TOML value, from plausible strings to nan and 400-digit integers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import strategies as st

from agent.configschema import ConfigError, key_in, reference_rows, toml_literal

T = TypeVar("T")

# Values that pass or nearly pass the checks somewhere, so documents get past the first key.
PLAUSIBLE = st.sampled_from(
    [
        "",
        " ",
        "low",
        "medium",
        "critical",
        "urgent",
        "PA",
        "api",
        "/tmp/x",
        "~/logs/*.log",
        "relative/path",
        "acme/shop",
        "acme",
        "http://127.0.0.1:9",
        "api.github.com",
        "Read(./**)",
        "Write(./**)",
        "Glob(src/**)",
        "(",
        "(?i)ledger",
        "a{99999999999}",
        "(" * 300 + ")" * 300,
        "_SYSTEMD_UNIT=billing.service",
        "=x",
        "DB_PASSWORD",
        "DB PASSWORD",
        "echo 'unterminated",
        "x\ny",
        "tab\there",
        "\x1b[31m",
        "ünïcode",
    ]
)
SCALARS = st.one_of(
    PLAUSIBLE,
    st.text(max_size=12),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 3, 22, 64, 65, 256, 65535, 65536, 10**400, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(),
    st.dates(),
    st.times(),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(PLAUSIBLE, st.text(max_size=6)), inner, max_size=3),
    ),
    max_leaves=6,
)
LEAVES = st.one_of(
    PLAUSIBLE,
    st.integers(min_value=-1, max_value=70),
    st.booleans(),
    st.lists(PLAUSIBLE, max_size=3),
    NESTED,
)


def _tree(config: type) -> dict[str, Any]:
    """Declared keys as a tree: ``{"sources[]": {"service": None, ...}, "host": None}``."""
    tree: dict[str, Any] = {}
    for row in reference_rows(config):
        node = tree
        parts = row.key.split(".")
        for part in parts[:-1]:
            if node.get(part) is None:  # an optional table's own row came first
                node[part] = {}
            node = node[part]
        node.setdefault(parts[-1], None)
    return tree


def _misspelt(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name[:-1] or "x", name + "s", name.upper(), name.replace("_", "-")])


def _table(
    tree: dict[str, Any], example: dict[str, Any], *, in_array: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    values: dict[str, st.SearchStrategy[Any]] = {}
    for part, sub in tree.items():
        name = part.removesuffix("[]")
        good = example.get(name)
        if sub is None:
            values[name] = LEAVES if good is None else st.one_of(st.just(good), LEAVES)
        elif part.endswith("[]"):
            inner = good[0] if isinstance(good, list) and good else {}
            entries = st.lists(_table(sub, inner, in_array=True), max_size=3)
            values[name] = st.one_of(entries, entries, entries, LEAVES)
        else:
            table = _table(sub, good if isinstance(good, dict) else {})
            values[name] = st.one_of(table, table, table, LEAVES)
    names = list(values)
    # A few keys at a time, so that a bad first key does not hide the checks of the rest; a
    # table in an array mostly has its first key (the name every entry needs).
    first = names[:1] if in_array else []
    rest = names[1:] if in_array else names
    known = st.lists(st.sampled_from(rest), unique=True, max_size=4).flatmap(
        lambda chosen: st.fixed_dictionaries({name: values[name] for name in (*first, *chosen)})
    )
    stray = st.dictionaries(
        st.one_of(st.sampled_from(names).flatmap(_misspelt), st.text(max_size=8)),
        LEAVES,
        min_size=1,
        max_size=1,
    )
    with_stray = st.tuples(known, stray).map(lambda pair: {**pair[1], **pair[0]})
    return st.one_of(known, known, known, known, known, with_stray)


def documents(config: type, example: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Parsed TOML documents shaped like ``config``'s declared keys; a key's value is often
    the one in ``example`` (a valid document), so that checks deep inside get their turn."""
    return _table(_tree(config), example)


def _places(node: Any, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key and array entry in a document, parents before children."""
    places: list[tuple[str | int, ...]] = [at] if at else []
    if isinstance(node, dict):
        for name, value in node.items():
            places += _places(value, (*at, name))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            places += _places(value, (*at, i))
    return places


def _changed(document: Any, place: tuple[str | int, ...], how: str, value: Any) -> Any:
    """A copy of ``document`` with the key at ``place`` replaced, removed, or joined by a
    stray sibling named after it."""
    if not place:
        return document
    head, *rest = place
    copy: Any = dict(document) if isinstance(document, dict) else list(document)
    if rest:
        copy[head] = _changed(document[head], tuple(rest), how, value)
    elif how == "replace":
        copy[head] = value
    elif how == "remove":
        del copy[head]
    elif isinstance(copy, dict):
        copy[f"{head}_"] = value
    return copy


def mutants(example: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``example`` (a valid document) with one key or entry changed to any TOML value,
    removed, or given a misspelt sibling: every check gets its turn, however deep."""
    return st.tuples(
        st.sampled_from(_places(example)),
        st.sampled_from(["replace", "replace", "replace", "remove", "stray"]),
        LEAVES,
    ).map(lambda m: _changed(example, *m))


def toml_text(document: dict[str, Any]) -> str:
    """``document`` as a TOML file, one ``key = value`` line per top-level key."""
    return "".join(f"{key_in('', k)} = {toml_literal(v)}\n" for k, v in document.items())


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SEGMENT = re.compile(r'\[(\d+)\]|\.?([A-Za-z0-9_-]+)|\.?"((?:[^"\\]|\\.)*)"')


def key_path(message: str) -> list[str | int]:
    """The key a ConfigError message starts with, as segments (names and array indexes)."""
    segments: list[str | int] = []
    pos = 0
    while pos < len(message) and message[pos] != ":":
        m = _SEGMENT.match(message, pos)
        assert m, f"no key at the start of {message!r} (stuck at {message[pos:]!r})"
        index, bare, quoted = m.groups()
        if index is not None:
            segments.append(int(index))
        elif bare is not None:
            segments.append(bare)
        else:
            segments.append(re.sub(r"\\u([0-9a-f]{4})", lambda u: chr(int(u[1], 16)), quoted)
                            .replace('\\"', '"').replace("\\\\", "\\"))  # fmt: skip
        pos = m.end()
    assert message[pos : pos + 2] == ": ", f"no ': ' after the key in {message!r}"
    return segments


def assert_names_a_key(message: str, document: dict[str, Any], config: type) -> None:
    """The message starts with a key that is in ``document``, or that ``config`` declares
    (a required key left out, or a rule naming a key the document did not write). The
    message holds no control character a terminal would act on."""
    assert not _CONTROL.search(message), message
    segments = key_path(message)
    assert segments, message
    node: Any = document
    declared_as: list[str] = []
    for i, segment in enumerate(segments):
        if isinstance(segment, int):
            assert isinstance(node, list) and segment < len(node), message
            node = node[segment]
            declared_as[-1] += "[]"
            continue
        declared_as.append(segment)
        if isinstance(node, dict) and segment in node:
            node = node[segment]
            continue
        assert i == len(segments) - 1, f"{message!r}: {segment!r} is not in the document"
        declared = {row.key for row in reference_rows(config)}
        assert ".".join(declared_as) in declared, f"{message!r} names an undeclared key"


def any_documents(config: type, example: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Documents shaped like ``config``, and ``example`` with one place changed."""
    return st.one_of(documents(config, example), mutants(example))


def parsed_and_loaded_alike(
    parse: Callable[[dict[str, Any]], T],
    load: Callable[[Path], T],
    config: type,
    document: dict[str, Any],
    folder: Path,
) -> T | None:
    """``parse(document)``, or None when it raised a ConfigError naming a key; anything else
    it raises fails the test. The same document written as a TOML file in ``folder`` loads
    to the same config, or fails with the same message after the file's name."""
    path = folder / "config.toml"
    parsed: T | None = None
    problem = None
    try:
        parsed = parse(document)
    except ConfigError as exc:
        assert_names_a_key(str(exc), document, config)
        problem = f"{path}: {exc}"
    path.write_text(toml_text(document), encoding="utf-8")
    try:
        loaded = load(path)
    except ConfigError as exc:
        assert str(exc) == problem
        return None
    assert loaded == parsed
    return parsed
