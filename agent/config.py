"""The agent's TOML configuration: each key declared once, validated once at load time.

Every problem is reported as ``ConfigError`` whose message starts with the full key
(``sources[1].paths``), so an operator can fix the file without reading code. The tables
below are declared with ``agent.configschema`` (whose docstring says how to add a key); the
README's "Agent config reference" is checked against them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.configschema import (
    ConfigError,
    Invalid,
    Section,
    boolean,
    config_table,
    env_name,
    integer,
    many,
    number,
    one_of,
    parse_table,
    path,
    regex,
    section,
    setting,
    tables,
    text,
    then,
    wrong,
)
from agent.starts import DEFAULT_START_PATTERN
from agent.tomlfile import load_table
from agent.wire import SEVERITIES

DEFAULT_STATE_DIR = "/var/lib/autofix-agent"

# The seed design's four outage patterns, exactly as designed, then what real drivers and
# runtimes print for the same outages, and crashes from memory exhaustion.
SEED_CRITICAL_PATTERNS: tuple[str, ...] = (
    r"mongo.*(?:error|fail|refused|timeout)",
    r"ECONNREFUSED",
    r"jwt.*(?:secret|undefined|invalid)",
    r"database.*(?:down|unavailable|timeout)",
)
DEFAULT_CRITICAL_PATTERNS: tuple[str, ...] = (
    *SEED_CRITICAL_PATTERNS,
    # Any MongoDB driver or Mongoose error class (MongoServerSelectionError, MongooseError...).
    r"Mongo\w*Error|mongo.*(timed out|closed|refused)",
    r"JsonWebTokenError|TokenExpiredError|jwt (malformed|expired)|invalid signature",
    r"database (is )?(down|unavailable|unreachable)|(db|database) connection (lost|failed|refused)",
    r"out of memory|JavaScript heap out of memory|heap limit|ENOMEM|OutOfMemoryError|MemoryError",
)


def _home(raw: str) -> str:
    return os.path.expanduser(raw)


def _absolute(raw: str) -> str:
    return os.path.abspath(os.path.expanduser(raw))


def _field_match(match: str) -> str:
    field_name, eq, _ = match.partition("=")
    if not eq or not field_name or not field_name.replace("_", "A").isalnum():
        raise Invalid(
            f"must look like FIELD=value (e.g. _SYSTEMD_UNIT=billing.service), got {match!r}"
        )
    return match


def _words(value: object, key: str) -> tuple[str, ...]:
    """A command line: one string split as a shell would, or a list of words."""
    if isinstance(value, str):
        import shlex  # here, not at the top: `scan` never reads a command line

        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: cannot be split into words: {exc}") from None
    if not isinstance(value, list):
        raise wrong(key, "a string or a list of strings", value)
    words = _WORDS(value, key)
    if not words:
        raise ConfigError(f"{key}: must not be empty")
    return words


_STRINGS = text()
_WORDS = many(text(empty_ok=True), "strings")

# The service of an OTLP record that carries no ``service.name`` (OpenTelemetry's default).
OTLP_DEFAULT_SERVICE = "unknown_service"
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True)
class OtlpConfig:
    """Where an ``otlp`` source listens for OTLP/HTTP logs (``POST /v1/logs``)."""

    host: str = "127.0.0.1"
    port: int = 4318

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"otlp {host}:{self.port}"


def _otlp_address(value: object, key: str) -> OtlpConfig:
    """``"127.0.0.1:4318"``, ``"[::1]:4318"``, ``"0.0.0.0:4318"``, or a port alone."""
    if not isinstance(value, str):
        raise wrong(key, 'an address such as "127.0.0.1:4318"', value)
    given = value.strip()
    host, port_text = "127.0.0.1", given
    if given.startswith("["):
        inside, bracket, rest = given[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ConfigError(f"{key}: {given!r} must look like [::1]:4318")
        host, port_text = inside, rest[1:]
    elif ":" in given:
        host, _, port_text = given.rpartition(":")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{key}: port must be a number from 1 to 65535, got {port_text!r}")
    import ipaddress  # here, not at the top: `scan` never reads an address

    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or not _HOST_NAME.fullmatch(host):
            raise ConfigError(f"{key}: {host!r} is not an IP address or host name") from None
    return OtlpConfig(host=host, port=int(port_text))


@config_table
class JournaldConfig:
    """Which journal entries a journald source follows (``journalctl`` match options).

    ``files`` / ``directory`` read journal files instead of the system journal (a copy
    shipped from elsewhere, or a test); ``journalctl`` is the binary to run.
    """

    units: tuple[str, ...] = setting(
        default=(),
        read=many(_STRINGS, "unit names", single_ok=True),
        doc="`journalctl --unit` matches",
    )
    identifiers: tuple[str, ...] = setting(
        default=(),
        read=many(_STRINGS, "syslog identifiers", single_ok=True),
        doc="`journalctl --identifier` matches",
    )
    matches: tuple[str, ...] = setting(
        default=(),
        read=many(then(_STRINGS, _field_match), "FIELD=value matches", single_ok=True),
        doc="`FIELD=value` journal field matches (e.g. `_SYSTEMD_UNIT=billing.service`)",
    )
    files: tuple[str, ...] = setting(
        default=(),
        read=many(then(_STRINGS, _absolute), "paths", single_ok=True),
        shown="the system journal",
        doc="journal files to read (`--file`) instead of the system journal",
    )
    directory: str | None = setting(
        default=None,
        read=then(_STRINGS, _absolute),
        shown="the system journal",
        doc="a directory of journal files to read (`--directory`); not with `files`",
    )
    journalctl: str = setting(
        default="journalctl", read=_STRINGS, doc="the `journalctl` binary to run"
    )

    def cross_check(self) -> None:
        if self.files and self.directory:
            raise Invalid("give either 'files' or 'directory', not both", "directory")

    def describe(self) -> str:
        what = [f"-u {u}" for u in self.units] + [f"-t {t}" for t in self.identifiers]
        what += list(self.matches)
        where = [f"--file {f}" for f in self.files]
        if self.directory:
            where.append(f"--directory {self.directory}")
        return " ".join(["journald", *what, *where])


@config_table
class SourceConfig:
    """One thing the agent follows: log files, a command's output, the journal, or the
    OTLP/HTTP logs shippers send."""

    service: str = setting(
        required="every source needs a service name",
        read=_STRINGS,
        doc="service name the errors belong to; for an `otlp` source, of records without "
        f"`service.name` (default `{OTLP_DEFAULT_SERVICE}`)",
    )
    paths: tuple[str, ...] = setting(
        default=(),
        read=many(then(_STRINGS, _home), "glob patterns", single_ok=True),
        doc="globs (`*`, `**`, `~`); files appearing later are picked up from their start; "
        "a source has one of `paths`, `command`, `journald` or `otlp`",
    )
    command: tuple[str, ...] = setting(
        default=(),
        read=_words,
        doc="a command whose output is followed instead of files; restarted with backoff "
        "if it exits",
    )
    journald: JournaldConfig | None = setting(
        default=None,
        read=Section(JournaldConfig),
        doc="the journal instead of files: a table of the keys below, every key optional "
        "(`{}` is the whole journal)",
    )
    otlp: OtlpConfig | None = setting(
        default=None,
        read=_otlp_address,
        doc='receive OTLP/HTTP logs (`POST /v1/logs`) on this address: `"127.0.0.1:4318"`, '
        '`"[::1]:4318"`, `"0.0.0.0:4318"` or a port alone (see OTLP intake)',
    )
    from_beginning: bool = setting(
        default=False,
        read=boolean(),
        doc="read files (or the journal) there at first start from the beginning",
    )
    app_root: str | None = setting(
        default=None,
        read=_STRINGS,
        doc="the app's root path, stripped from frame paths before fingerprinting",
    )
    start_pattern: str = setting(
        default=DEFAULT_START_PATTERN,
        read=regex(empty_ok=True),
        shown="common Node frameworks' start lines (`listening on`, `Server listening at`, "
        "`application successfully started`, `Ready in`...)",
        doc="a file line matching it means the service (re)started: relayed as a `start` "
        'line, after which a merged fix\'s error counts as resolved or regressed; `""` '
        "turns it off",
    )

    @classmethod
    def prepare_table(cls, table: dict[str, Any]) -> dict[str, Any]:
        """An ``otlp`` source's records name their own services: its ``service`` is optional."""
        if "otlp" in table and "service" not in table:
            return {**table, "service": OTLP_DEFAULT_SERVICE}
        return table

    def cross_check(self) -> None:
        given = (
            ("paths", self.paths),
            ("command", self.command),
            ("journald", self.journald),
            ("otlp", self.otlp),
        )
        kinds = [name for name, value in given if value]
        if not kinds:
            raise Invalid("a source needs 'paths', 'command', 'journald' or 'otlp'", "paths")
        if len(kinds) > 1:
            raise Invalid(
                "a source has one of 'paths', 'command', 'journald' or 'otlp', "
                f"not {' and '.join(repr(k) for k in kinds)}",
                kinds[1],
            )

    @property
    def label(self) -> str:
        """How the source is named in messages and in the outbox (its health, its cursor)."""
        if self.journald is not None:
            return f"{self.service}: {self.journald.describe()}"
        if self.otlp is not None:
            # Its records name their own services.
            return self.otlp.describe()
        return f"{self.service}: {', '.join(self.paths) or ' '.join(self.command)}"


@config_table
class DetectionConfig:
    """When an error is relayed, and how severe it is."""

    settle_seconds: float = setting(
        default=30.0,
        read=number(minimum=0.0),
        doc="quiet time after the last occurrence before an error is relayed",
    )
    max_settle_seconds: float = setting(
        default=300.0,
        read=number(minimum=0.0),
        doc="an error that never stops is still relayed after this long",
    )
    update_seconds: float = setting(
        default=10.0,
        read=number(minimum=0.0),
        doc="later occurrences of a relayed error are batched this long",
    )
    min_severity: str = setting(
        default="medium",
        read=one_of(SEVERITIES),
        doc="groups below this (`low`, `medium`, `high` or `critical`) are counted but not "
        "relayed as new errors",
    )
    critical_patterns: tuple[str, ...] = setting(
        default=DEFAULT_CRITICAL_PATTERNS,
        read=many(regex(alternative=True), "regular expressions"),
        shown="Mongo errors, ECONNREFUSED, JWT errors, database down, out of memory / heap limit",
        doc="regexes (case-insensitive) that make an error critical, joined into one "
        "expression (so a flag must be scoped, `(?s:...)`); replaces the defaults",
    )
    extra_critical_patterns: tuple[str, ...] = setting(
        default=(),
        read=many(regex(alternative=True), "regular expressions"),
        doc="regexes added to `critical_patterns`, under the same rules",
    )
    high_count: int = setting(
        default=10, read=integer(minimum=1), doc="occurrence count that makes an error high"
    )
    medium_count: int = setting(
        default=3, read=integer(minimum=1), doc="occurrence count that makes an error medium"
    )
    max_line_bytes: int = setting(
        default=64 * 1024,
        read=integer(minimum=256),
        doc="longer lines are cut with a visible marker",
    )
    record_wait_seconds: float = setting(
        default=0.1,
        read=number(minimum=0.0),
        doc="how long a record at the end of a log waits for more of its lines (a stack still "
        "being written) before it is counted; a record another line follows is counted at once; "
        "a journald or command source's header waits at least 0.5 s for its first frame",
    )

    def cross_check(self) -> None:
        if self.max_settle_seconds < self.settle_seconds:
            raise Invalid(
                f"must be at least settle_seconds ({self.settle_seconds}), "
                f"got {self.max_settle_seconds}",
                "max_settle_seconds",
            )
        if self.high_count < self.medium_count:
            raise Invalid(
                f"must be at least medium_count ({self.medium_count}), got {self.high_count}",
                "high_count",
            )

    @property
    def all_critical_patterns(self) -> tuple[str, ...]:
        """The patterns that make an error critical: the base list and the extra ones."""
        return self.critical_patterns + self.extra_critical_patterns


@config_table
class RetentionConfig:
    """How long the outbox keeps events."""

    max_age_days: float = setting(
        default=14.0, read=number(minimum=0.01), doc="events older than this are dropped"
    )
    max_events: int = setting(
        default=100_000, read=integer(minimum=100), doc="at most this many events are kept"
    )


@config_table
class RedactionConfig:
    """What is removed from records on top of the built-in rules."""

    extra_patterns: tuple[str, ...] = setting(
        default=(),
        read=many(regex(), "regular expressions"),
        doc="regexes whose matches are replaced by `[REDACTED]`, on top of the built-in rules "
        "below",
    )
    values_from_env: tuple[str, ...] = setting(
        default=(),
        read=many(env_name(), "environment variable names"),
        doc='names of environment variables (e.g. `["DB_PASSWORD"]`) whose values on this '
        "host, if 6 characters or longer, are replaced by `[REDACTED]` wherever they appear "
        "(verbatim, JSON-escaped, URL-encoded); a name that is not a variable name is a "
        "config error",
    )


@config_table
class StreamConfig:
    """How ``autofix-agent stream`` talks to the console."""

    heartbeat_seconds: float = setting(
        default=5.0, read=number(minimum=0.1), doc="heartbeat interval on `stream`"
    )


def _hostname() -> str:
    """This machine's name; ``socket`` is imported here so that `scan` does not load it."""
    import socket

    return socket.gethostname()


@config_table
class AgentConfig:
    """The whole agent config file."""

    state_dir: Path = setting(
        default=Path(DEFAULT_STATE_DIR),
        read=path(),
        doc="the only place the agent writes (SQLite outbox, WAL)",
    )
    host: str = setting(
        default_factory=_hostname,
        read=_STRINGS,
        shown="the hostname",
        doc="name of this host in events",
    )
    sources: tuple[SourceConfig, ...] = tables(SourceConfig, "what the agent follows ([[sources]])")
    detection: DetectionConfig = section(DetectionConfig, "detection rules")
    retention: RetentionConfig = section(RetentionConfig, "outbox retention")
    redaction: RedactionConfig = section(RedactionConfig, "extra redaction")
    stream: StreamConfig = section(StreamConfig, "the stream command")

    def cross_check(self) -> None:
        file_services: set[str] = set()
        listening: set[OtlpConfig] = set()
        for i, src in enumerate(self.sources):
            if src.otlp is not None:
                if src.otlp in listening:
                    raise Invalid(
                        "another otlp source already listens on "
                        f"{src.otlp.describe().removeprefix('otlp ')}",
                        f"sources[{i}].otlp",
                    )
                listening.add(src.otlp)
            if src.paths and src.service in file_services:
                raise Invalid(
                    f"another file source already uses {src.service!r}; "
                    "list all of a service's paths in one source",
                    f"sources[{i}].service",
                )
            if src.paths:
                file_services.add(src.service)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "agent.db"


def parse_config(data: dict[str, object]) -> AgentConfig:
    """Build a validated config from a parsed TOML document."""
    return parse_table(AgentConfig, data)


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    """Read and validate a config file; every failure is a ConfigError naming the file."""
    return load_table(Path(path), AgentConfig)
