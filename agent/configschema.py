"""Declared TOML config tables: what each key is, how it is checked, and how it is documented.

Both the agent's and the console's configs are built from this one kit (the console imports
the agent package; the agent imports nothing but the standard library). A config table is a
frozen dataclass decorated with :func:`config_table`; every field is a :func:`setting` that
holds its default, a *reader* that checks and converts the TOML value, and the sentence the
README's config reference shows for it. :func:`parse_table` validates a parsed TOML table
against such a class once, at the edge, so the rest of the program only ever sees frozen
dataclasses:

- an unknown key is refused with the keys that table has, and the closest one suggested;
- a missing required key, a value of the wrong type or out of range is a :class:`ConfigError`
  whose message starts with the full key (``services[1].test_timeout_seconds: ...``);
- a key the document leaves out takes the declared default, from that one place.

Adding a key is one declaration in its table class, for example::

    verify_rounds: int = setting(
        default=2, read=integer(minimum=0), doc="test-and-retry rounds after Claude's first edit"
    )

(a nested table is ``section(Table, doc)``, an array of tables ``tables(Table, doc)``), then
one row in the README's config reference table, which ``tests/test_readme.py`` checks
against the declarations (its failure message prints the rows it expects). Rules that tie
keys together (``max_settle_seconds`` at least ``settle_seconds``) go in the class's
``cross_check(self)`` method, which raises :class:`Invalid` naming the key at fault; a
``prepare_table(cls, table)`` classmethod may look at the raw table first (to refuse a key
with a reason, or to derive a default from the table's presence).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Generic, TypeVar, dataclass_transform

T = TypeVar("T")
U = TypeVar("U")

#: A reader checks one TOML value found at ``key`` and returns what the program uses.
Reader = Callable[[object, str], T]

_SPEC = "config_setting"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HTTP_URL = re.compile(r"^https?://[^/\s]+")
# C0 (but tab), DEL and C1: a terminal may act on them when the value is shown.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


class ConfigError(ValueError):
    """A configuration problem; the message starts with the key and says what is wrong."""


class Invalid(Exception):
    """A problem found by a converter or a ``cross_check``, before the full key is known.

    ``at`` is where it is, relative to the value or table being read: ``""`` for the value
    itself, a field name (``"target"``) or a path below it (``"sources[2].service"``).
    """

    def __init__(self, message: str, at: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.at = at


@dataclass(frozen=True)
class Setting:
    """What the declaration of one key says besides its default."""

    doc: str
    read: Reader[Any]
    required: str | None
    shown: str | None


def setting(
    *,
    doc: str,
    read: Reader[Any],
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    required: str | None = None,
    shown: str | None = None,
) -> Any:
    """Declare one key of a config table.

    ``required`` (why the key cannot be left out) replaces a default; ``shown`` is what the
    README's default column says when the default is computed or too long to print.
    """
    if not doc.strip():
        raise TypeError("every config key needs a doc")
    spec = {_SPEC: Setting(doc, read, required, shown)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=spec)
    if default is MISSING:
        if required is None:
            raise TypeError("a config key without a default must say why it is required")
        return field(metadata=spec)
    return field(default=default, metadata=spec)


@dataclass_transform(frozen_default=True, field_specifiers=(setting,))
def config_table(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass whose every field is a declared :func:`setting`."""
    made = dataclass(frozen=True)(cls)
    for f in dataclasses.fields(made):  # type: ignore[arg-type]
        if _SPEC not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with setting()")
    return made


def _spec(f: dataclasses.Field[Any]) -> Setting:
    spec = f.metadata[_SPEC]
    assert isinstance(spec, Setting)
    return spec


# --- naming keys and values in messages ------------------------------------------------------


def join(where: str, name: str) -> str:
    """The full key of ``name`` inside the table at ``where`` (names come from declarations)."""
    if not name:
        return where
    if not where or name.startswith("["):
        return f"{where}{name}"
    return f"{where}.{name}"


def key_in(where: str, name: str) -> str:
    """The full key of a name the document wrote, quoted as TOML quotes it when not bare."""
    return join(where, name if _BARE_KEY.fullmatch(name) else _basic_string(name))


def _basic_string(text: str) -> str:
    """``text`` as a TOML basic string; control characters (tab too) are escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\t" or _CONTROL.match(ch):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_literal(value: object) -> str:
    """``value`` written as TOML writes it (``"push"``, ``true``, ``[1, 2]``, ``{ a = 1 }``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _basic_string(value)
    if isinstance(value, Path):
        return _basic_string(str(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        inner = ", ".join(f"{key_in('', str(k))} = {toml_literal(v)}" for k, v in value.items())
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return repr(value)


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    for kind, name in (
        (str, "string"),
        (int, "integer"),
        (float, "float"),
        (datetime, "datetime"),
        (date, "date"),
        (time, "time"),
        (list, "array"),
        (dict, "table"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def shown_value(value: object, limit: int = 60) -> str:
    """A value for a message: as TOML writes it, cut to ``limit`` characters."""
    text = toml_literal(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wrong(key: str, what: str, value: object) -> ConfigError:
    """``key: must be <what>, got <type> <value>``: the value has the wrong type."""
    return ConfigError(f"{key}: must be {what}, got {_toml_type(value)} {shown_value(value)}")


# --- readers: each checks one value and names its key in the error ---------------------------


def text(*, empty_ok: bool = False) -> Reader[str]:
    """A string; blank is refused unless ``empty_ok``; control characters (but tab) are refused."""

    def read(value: object, key: str) -> str:
        if not isinstance(value, str):
            raise wrong(key, "a string", value)
        if not empty_ok and not value.strip():
            raise ConfigError(f"{key}: must not be empty")
        if _CONTROL.search(value):
            raise ConfigError(f"{key}: must not contain control characters")
        return value

    return read


def then(reader: Reader[T], convert: Callable[[T], U]) -> Reader[U]:
    """``reader``, then ``convert`` on its result; ``convert`` raises :class:`Invalid`."""

    def read(value: object, key: str) -> U:
        checked = reader(value, key)
        try:
            return convert(checked)
        except Invalid as exc:
            raise ConfigError(f"{join(key, exc.at)}: {exc.message}") from None

    return read


def boolean() -> Reader[bool]:
    def read(value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise wrong(key, "true or false", value)
        return value

    return read


#: TOML integers are 64-bit signed; Python's TOML reader returns bigger ones without a word.
_INT64 = 2**63


def integer(*, minimum: int = -_INT64, maximum: int = _INT64 - 1) -> Reader[int]:
    """An integer (not a boolean, not a float) from ``minimum`` to ``maximum``."""

    def read(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong(key, "an integer", value)
        if value < minimum:
            raise ConfigError(f"{key}: must be at least {minimum}, got {shown_value(value)}")
        if value > maximum:
            raise ConfigError(f"{key}: must be at most {maximum}, got {shown_value(value)}")
        return value

    return read


def number(*, minimum: float | None = None, positive: bool = False) -> Reader[float]:
    """A finite number (an integer is read as a float); ``positive`` means above zero."""

    def read(value: object, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong(key, "a number", value)
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if positive and not (result > 0 and math.isfinite(result)):
            raise ConfigError(f"{key}: must be a positive finite number, got {shown_value(value)}")
        if not math.isfinite(result):
            raise ConfigError(f"{key}: must be a finite number, got {shown_value(value)}")
        if minimum is not None and result < minimum:
            raise ConfigError(f"{key}: must be at least {minimum}, got {shown_value(value)}")
        return result

    return read


def one_of(choices: Sequence[str]) -> Reader[str]:
    """One of a few words; a near miss gets the closest word suggested."""
    listed = ", ".join(toml_literal(c) for c in choices)

    def read(value: object, key: str) -> str:
        if isinstance(value, str) and value in choices:
            return value
        close = _close_matches(value, choices) if isinstance(value, str) else []
        hint = f" (did you mean {toml_literal(close[0])}?)" if close else ""
        raise ConfigError(f"{key}: expected one of {listed}, got {shown_value(value)}{hint}")

    return read


def path() -> Reader[Path]:
    """A file system path; ``~`` is the user's home."""
    return then(text(), lambda raw: Path(os.path.expanduser(raw)))


def _compiles(pattern: str) -> str | None:
    """Why ``pattern`` does not compile, or None when it does."""
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        return str(exc)
    return None


def _regex(pattern: str) -> str:
    problem = _compiles(pattern)
    if problem:
        raise Invalid(f"not a valid regular expression: {problem}")
    return pattern


def _alternative(pattern: str) -> str:
    _regex(pattern)
    if _compiles(f"(?:{pattern})"):
        raise Invalid(
            "a global flag such as (?i) cannot be used here, where the patterns are joined "
            "into one expression; scope it to a group, e.g. (?i:...)"
        )
    return pattern


def regex(*, alternative: bool = False, empty_ok: bool = False) -> Reader[str]:
    """A regular expression (Python ``re`` syntax), kept as its source text.

    ``alternative``: it must also work as one alternative of a larger expression (as
    ``(?:pattern)``), which refuses global flags such as a leading ``(?i)``. ``empty_ok``:
    an empty string is accepted as it is (a key whose empty value turns a match off).
    """
    check = _alternative if alternative else _regex
    return then(text(empty_ok=empty_ok), lambda p: check(p) if p else p)


def env_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an environment variable name, or None when it can."""
    if _ENV_NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is not an environment variable name "
        "(letters, digits and '_', not starting with a digit)"
    )


def _env_name(name: str) -> str:
    problem = env_name_problem(name)
    if problem:
        raise Invalid(problem)
    return name


def env_name() -> Reader[str]:
    return then(text(), _env_name)


def _http_url(url: str) -> str:
    if not _HTTP_URL.match(url):
        raise Invalid(f"must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def url() -> Reader[str]:
    """An http(s) URL, kept without a trailing slash."""
    return then(text(), _http_url)


def _without_password(schemes: Sequence[str], example: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in schemes or not value.startswith(f"{parts.scheme}://"):
            raise Invalid(f"must be a URL like {example}, got {value!r}")
        user_part = parts.netloc.rpartition("@")[0]
        if ":" in user_part or "password" in urllib.parse.parse_qs(parts.query):
            raise Invalid(
                "holds a password; a secret is never kept in the config (name an "
                "environment variable or a file for it)"
            )
        return value

    return check


def url_without_password(schemes: Sequence[str], example: str) -> Reader[str]:
    """A connection URL in one of ``schemes`` that carries no password (in its user part
    or as a ``password`` parameter): secrets come from elsewhere."""
    return then(text(), _without_password(schemes, example))


def many(
    item: Reader[T], what: str, *, single_ok: bool = False, distinct: bool = False
) -> Reader[tuple[T, ...]]:
    """An array of ``what`` (``single_ok``: one string alone is an array of one).

    ``distinct`` drops repeats, keeping the first of each.
    """

    def read(value: object, key: str) -> tuple[T, ...]:
        if single_ok and isinstance(value, str):
            return (item(value, key),)
        if not isinstance(value, list):
            raise wrong(key, f"a list of {what}", value)
        items = tuple(item(v, f"{key}[{i}]") for i, v in enumerate(value))
        return tuple(dict.fromkeys(items)) if distinct else items

    return read


def env_table(value: Reader[T]) -> Reader[dict[str, T]]:
    """A table whose keys are environment variable names."""

    def read(raw: object, key: str) -> dict[str, T]:
        if not isinstance(raw, dict):
            raise wrong(key, "a table", raw)
        result: dict[str, T] = {}
        for name, item in raw.items():
            where = key_in(key, name)
            problem = env_name_problem(name)
            if problem:
                raise ConfigError(f"{where}: {problem}")
            result[name] = value(item, where)
        return result

    return read


class Section(Generic[T]):
    """Reads a nested table (``[detection]``) or, with ``array``, an array of tables
    (``[[sources]]``), each against its own declared class."""

    def __init__(self, table: type[T], *, array: bool = False) -> None:
        self.table = table
        self.array = array

    def __call__(self, value: object, key: str) -> Any:
        if not self.array:
            return parse_table(self.table, value, key)
        if not isinstance(value, list):
            raise wrong(key, f"an array of tables ([[{key}]])", value)
        return tuple(parse_table(self.table, raw, f"{key}[{i}]") for i, raw in enumerate(value))


def section(table: type[Any], doc: str) -> Any:
    """Declare a nested table (``[detection]``); left out, it holds its keys' defaults.

    A declaration, like :func:`setting`: ``detection: DetectionConfig = section(...)``.
    """
    return setting(default_factory=table, read=Section(table), doc=doc)


def tables(table: type[Any], doc: str) -> Any:
    """Declare an array of tables (``[[sources]]``); left out, it is empty."""
    return setting(default=(), read=Section(table, array=True), doc=doc)


# --- a whole table -----------------------------------------------------------------------------


def _close_matches(word: str, choices: Sequence[str]) -> list[str]:
    """The closest of ``choices`` to a near miss, if any; ``difflib`` is only imported for
    a config that is wrong, so every start-up (`scan`'s above all) does not pay for it."""
    import difflib

    return difflib.get_close_matches(word, choices, n=1, cutoff=0.6)


def unknown_key(where: str, name: str, known: Sequence[str]) -> ConfigError:
    """The error for a key the table does not have, with the closest known key suggested."""
    close = _close_matches(name, known)
    hint = f", did you mean {close[0]!r}?" if close else ""
    return ConfigError(
        f"{key_in(where, name)}: unknown key{hint} (expected one of {', '.join(sorted(known))})"
    )


def parse_table(cls: type[T], raw: object, where: str = "") -> T:
    """``raw`` (a parsed TOML table found at ``where``) validated into an instance of ``cls``."""
    if not isinstance(raw, dict):
        raise wrong(where or "config", "a table", raw)
    table: dict[str, Any] = raw
    prepare = getattr(cls, "prepare_table", None)
    if prepare is not None:
        try:
            table = prepare(table)
        except Invalid as exc:
            raise ConfigError(f"{join(where, exc.at)}: {exc.message}") from None
    declared = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = [f.name for f in declared]
    for name in table:
        if name not in names:
            raise unknown_key(where, name, names)
    values: dict[str, Any] = {}
    for f in declared:
        spec = _spec(f)
        key = join(where, f.name)
        if f.name in table:
            values[f.name] = spec.read(table[f.name], key)
        elif spec.required is not None:
            raise ConfigError(f"{key}: missing ({spec.required})")
    made = cls(**values)
    cross_check = getattr(made, "cross_check", None)
    if cross_check is not None:
        try:
            cross_check()
        except Invalid as exc:
            raise ConfigError(f"{join(where, exc.at)}: {exc.message}") from None
    return made


# --- the README's config reference ---------------------------------------------------------


@dataclass(frozen=True)
class ReferenceRow:
    """One row of a config reference table: the key, its default as shown, what it means."""

    key: str
    default: str
    meaning: str


def _shown_default(f: dataclasses.Field[Any], spec: Setting) -> str:
    if spec.shown is not None:
        return spec.shown
    if spec.required is not None:
        return "required"
    if f.default_factory is not MISSING:
        raise TypeError(f"{f.name}: a computed default needs shown= for the reference")
    value = f.default
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{toml_literal(value)}`"


def reference_rows(cls: type[Any], where: str = "") -> list[ReferenceRow]:
    """The reference table of ``cls``, in declaration order: one row per key.

    A nested table is listed key by key (``detection.settle_seconds``, ``sources[].paths``);
    an optional one (default None) also gets a row of its own, since writing it changes what
    happens.
    """
    rows: list[ReferenceRow] = []
    for f in dataclasses.fields(cls):
        spec = _spec(f)
        key = join(where, f.name)
        if isinstance(spec.read, Section):
            if f.default is None:
                rows.append(ReferenceRow(key, _shown_default(f, spec), spec.doc))
            inner = f"{key}[]" if spec.read.array else key
            rows.extend(reference_rows(spec.read.table, inner))
        else:
            rows.append(ReferenceRow(key, _shown_default(f, spec), spec.doc))
    return rows


def reference_markdown(cls: type[Any]) -> str:
    """The reference table of ``cls`` as the README writes it."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for row in reference_rows(cls):
        lines.append(f"| `{row.key}` | {cell(row.default)} | {cell(row.meaning)} |")
    return "\n".join(lines)
