"""The agent's TOML configuration, validated once at load time.

Every problem is reported as ``ConfigError`` whose message starts with the dotted key
(``sources[1].paths``), so an operator can fix the file without reading code.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.tomlfile import read_toml
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


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what is wrong with it."""


@dataclass(frozen=True)
class JournaldConfig:
    """Which journal entries a journald source follows (``journalctl`` match options).

    ``files`` / ``directory`` read journal files instead of the system journal (a copy
    shipped from elsewhere, or a test); ``journalctl`` is the binary to run.
    """

    units: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    matches: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    directory: str | None = None
    journalctl: str = "journalctl"

    def describe(self) -> str:
        what = [f"-u {u}" for u in self.units] + [f"-t {t}" for t in self.identifiers]
        what += list(self.matches)
        where = [f"--file {f}" for f in self.files]
        if self.directory:
            where.append(f"--directory {self.directory}")
        return " ".join(["journald", *what, *where])


@dataclass(frozen=True)
class OtlpConfig:
    """Where an ``otlp`` source listens for OTLP/HTTP logs (``POST /v1/logs``)."""

    host: str = "127.0.0.1"
    port: int = 4318

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"otlp {host}:{self.port}"


@dataclass(frozen=True)
class SourceConfig:
    service: str
    paths: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    journald: JournaldConfig | None = None
    otlp: OtlpConfig | None = None
    from_beginning: bool = False
    app_root: str | None = None

    @property
    def label(self) -> str:
        """How the source is named in messages and in the outbox (its health, its cursor)."""
        if self.journald is not None:
            return f"{self.service}: {self.journald.describe()}"
        if self.otlp is not None:
            # Its records name their own services.
            return self.otlp.describe()
        return f"{self.service}: {', '.join(self.paths) or ' '.join(self.command)}"


@dataclass(frozen=True)
class DetectionConfig:
    settle_seconds: float = 30.0
    max_settle_seconds: float = 300.0
    update_seconds: float = 10.0
    min_severity: str = "medium"
    critical_patterns: tuple[str, ...] = DEFAULT_CRITICAL_PATTERNS
    high_count: int = 10
    medium_count: int = 3
    max_line_bytes: int = 64 * 1024


@dataclass(frozen=True)
class RetentionConfig:
    max_age_days: float = 14.0
    max_events: int = 100_000


@dataclass(frozen=True)
class AgentConfig:
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    host: str = field(default_factory=socket.gethostname)
    sources: tuple[SourceConfig, ...] = ()
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    redact_patterns: tuple[str, ...] = ()
    # Names of environment variables whose values are removed verbatim from every record.
    redact_env: tuple[str, ...] = ()
    heartbeat_seconds: float = 5.0

    @property
    def db_path(self) -> Path:
        return self.state_dir / "agent.db"


def _expect(value: Any, kind: type | tuple[type, ...], key: str, what: str) -> Any:
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float))
    if isinstance(kind, tuple) and isinstance(value, bool) and bool not in kind:
        ok = False
    if not ok:
        raise ConfigError(f"{key}: must be {what}, got {type(value).__name__} {value!r}")
    return value


def _number(table: dict[str, Any], name: str, default: float, prefix: str, minimum: float) -> float:
    key = f"{prefix}{name}"
    value = table.get(name, default)
    _expect(value, (int, float), key, "a number")
    if value < minimum:
        raise ConfigError(f"{key}: must be at least {minimum}, got {value}")
    return float(value)


def _integer(table: dict[str, Any], name: str, default: int, prefix: str, minimum: int) -> int:
    key = f"{prefix}{name}"
    value = table.get(name, default)
    _expect(value, int, key, "an integer")
    if value < minimum:
        raise ConfigError(f"{key}: must be at least {minimum}, got {value}")
    return int(value)


def _patterns(value: Any, key: str) -> tuple[str, ...]:
    _expect(value, list, key, "a list of regular expressions")
    for i, pattern in enumerate(value):
        _expect(pattern, str, f"{key}[{i}]", "a string")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{key}[{i}]: not a valid regular expression: {exc}") from None
    return tuple(value)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_names(value: Any, key: str) -> tuple[str, ...]:
    _expect(value, list, key, "a list of environment variable names")
    for i, name in enumerate(value):
        _expect(name, str, f"{key}[{i}]", "a string")
        if not _ENV_NAME.fullmatch(name):
            raise ConfigError(
                f"{key}[{i}]: {name!r} is not an environment variable name "
                "(letters, digits and '_', not starting with a digit)"
            )
    return tuple(value)


def _unknown(table: dict[str, Any], allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{prefix}{key}: unknown key (expected one of {', '.join(sorted(allowed))})"
            )


def _strings(table: dict[str, Any], name: str, prefix: str, what: str) -> tuple[str, ...]:
    """A list of non-empty strings (a single string is a list of one)."""
    key = f"{prefix}{name}"
    value = table.get(name, [])
    if isinstance(value, str):
        value = [value]
    _expect(value, list, key, f"a list of {what}")
    for i, item in enumerate(value):
        _expect(item, str, f"{key}[{i}]", "a string")
        if not item.strip():
            raise ConfigError(f"{key}[{i}]: must not be empty")
    return tuple(value)


_JOURNALD_KEYS = {"units", "identifiers", "matches", "files", "directory", "journalctl"}


def _journald(raw: Any, prefix: str) -> JournaldConfig:
    """``journald = { units = [...], ... }``: what ``journalctl`` is asked to follow."""
    key = f"{prefix}journald"
    _expect(raw, dict, key, 'a table such as { units = ["billing.service"] }')
    _unknown(raw, _JOURNALD_KEYS, f"{key}.")
    matches = _strings(raw, "matches", f"{key}.", "FIELD=value matches")
    for i, match in enumerate(matches):
        field_name, eq, _ = match.partition("=")
        if not eq or not field_name or not field_name.replace("_", "A").isalnum():
            raise ConfigError(
                f"{key}.matches[{i}]: must look like FIELD=value "
                f"(e.g. _SYSTEMD_UNIT=billing.service), got {match!r}"
            )
    files = tuple(
        os.path.abspath(os.path.expanduser(f)) for f in _strings(raw, "files", f"{key}.", "paths")
    )
    directory = raw.get("directory")
    if directory is not None:
        _expect(directory, str, f"{key}.directory", "a path")
        directory = os.path.abspath(os.path.expanduser(directory))
    if files and directory:
        raise ConfigError(f"{key}.directory: give either 'files' or 'directory', not both")
    journalctl = _expect(raw.get("journalctl", "journalctl"), str, f"{key}.journalctl", "a path")
    if not journalctl.strip():
        raise ConfigError(f"{key}.journalctl: must not be empty")
    return JournaldConfig(
        units=_strings(raw, "units", f"{key}.", "unit names"),
        identifiers=_strings(raw, "identifiers", f"{key}.", "syslog identifiers"),
        matches=matches,
        files=files,
        directory=directory,
        journalctl=journalctl,
    )


# The service of an OTLP record that carries no ``service.name`` (OpenTelemetry's default).
OTLP_DEFAULT_SERVICE = "unknown_service"
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _otlp(raw: Any, prefix: str) -> OtlpConfig:
    """``otlp = "127.0.0.1:4318"`` (``[::1]:4318``, ``0.0.0.0:4318``, or a port alone)."""
    key = f"{prefix}otlp"
    text = _expect(raw, str, key, 'an address such as "127.0.0.1:4318"').strip()
    host, port_text = "127.0.0.1", text
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ConfigError(f"{key}: {text!r} must look like [::1]:4318")
        host, port_text = inside, rest[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{key}: port must be a number from 1 to 65535, got {port_text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or not _HOST_NAME.fullmatch(host):
            raise ConfigError(f"{key}: {host!r} is not an IP address or host name") from None
    return OtlpConfig(host=host, port=int(port_text))


def _source(raw: Any, index: int) -> SourceConfig:
    prefix = f"sources[{index}]."
    _expect(raw, dict, f"sources[{index}]", "a table")
    _unknown(
        raw,
        {"service", "paths", "command", "journald", "otlp", "from_beginning", "app_root"},
        prefix,
    )
    if "service" not in raw and "otlp" not in raw:
        raise ConfigError(f"{prefix}service: missing (every source needs a service name)")
    service = _expect(raw.get("service", OTLP_DEFAULT_SERVICE), str, f"{prefix}service", "a string")
    if not service.strip():
        raise ConfigError(f"{prefix}service: must not be empty")
    paths: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    if "paths" in raw:
        value = raw["paths"]
        if isinstance(value, str):
            value = [value]
        _expect(value, list, f"{prefix}paths", "a list of glob patterns")
        for i, p in enumerate(value):
            _expect(p, str, f"{prefix}paths[{i}]", "a string")
            if not p.strip():
                raise ConfigError(f"{prefix}paths[{i}]: must not be empty")
        paths = tuple(os.path.expanduser(p) for p in value)
    if "command" in raw:
        value = raw["command"]
        if isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as exc:
                raise ConfigError(f"{prefix}command: cannot be split into words: {exc}") from None
        _expect(value, list, f"{prefix}command", "a string or a list of strings")
        for i, word in enumerate(value):
            _expect(word, str, f"{prefix}command[{i}]", "a string")
        if not value:
            raise ConfigError(f"{prefix}command: must not be empty")
        command = tuple(value)
    journald = _journald(raw["journald"], prefix) if "journald" in raw else None
    otlp = _otlp(raw["otlp"], prefix) if "otlp" in raw else None
    kinds = [
        k
        for k, v in (("paths", paths), ("command", command), ("journald", journald), ("otlp", otlp))
        if v
    ]
    if not kinds:
        raise ConfigError(f"{prefix}paths: a source needs 'paths', 'command', 'journald' or 'otlp'")
    if len(kinds) > 1:
        raise ConfigError(
            f"{prefix}{kinds[1]}: a source has one of 'paths', 'command', 'journald' or 'otlp', "
            f"not {' and '.join(repr(k) for k in kinds)}"
        )
    from_beginning = _expect(
        raw.get("from_beginning", False), bool, f"{prefix}from_beginning", "true or false"
    )
    app_root = raw.get("app_root")
    if app_root is not None:
        _expect(app_root, str, f"{prefix}app_root", "a string")
    return SourceConfig(
        service=service,
        paths=paths,
        command=command,
        journald=journald,
        otlp=otlp,
        from_beginning=from_beginning,
        app_root=app_root,
    )


def parse_config(data: dict[str, Any]) -> AgentConfig:
    """Build a validated config from a parsed TOML document."""
    top = {"state_dir", "host", "detection", "sources", "retention", "redaction", "stream"}
    _unknown(data, top, "")
    raw_state_dir = _expect(data.get("state_dir", DEFAULT_STATE_DIR), str, "state_dir", "a path")
    state_dir = Path(os.path.expanduser(raw_state_dir))
    host = data.get("host") or socket.gethostname()
    _expect(host, str, "host", "a string")

    det = _expect(data.get("detection", {}), dict, "detection", "a table")
    _unknown(
        det,
        {
            "settle_seconds",
            "max_settle_seconds",
            "update_seconds",
            "min_severity",
            "critical_patterns",
            "extra_critical_patterns",
            "high_count",
            "medium_count",
            "max_line_bytes",
        },
        "detection.",
    )
    min_severity = _expect(
        det.get("min_severity", "medium"), str, "detection.min_severity", "a string"
    )
    if min_severity not in SEVERITIES:
        raise ConfigError(
            f"detection.min_severity: must be one of {', '.join(SEVERITIES)}, got {min_severity!r}"
        )
    critical = DEFAULT_CRITICAL_PATTERNS
    if "critical_patterns" in det:
        critical = _patterns(det["critical_patterns"], "detection.critical_patterns")
    if "extra_critical_patterns" in det:
        critical = critical + _patterns(
            det["extra_critical_patterns"], "detection.extra_critical_patterns"
        )
    settle = _number(det, "settle_seconds", 30.0, "detection.", 0.0)
    max_settle = _number(det, "max_settle_seconds", 300.0, "detection.", 0.0)
    if max_settle < settle:
        raise ConfigError(
            f"detection.max_settle_seconds: must be at least settle_seconds ({settle}), "
            f"got {max_settle}"
        )
    medium_count = _integer(det, "medium_count", 3, "detection.", 1)
    high_count = _integer(det, "high_count", 10, "detection.", 1)
    if high_count < medium_count:
        raise ConfigError(
            f"detection.high_count: must be at least medium_count ({medium_count}), "
            f"got {high_count}"
        )
    detection = DetectionConfig(
        settle_seconds=settle,
        max_settle_seconds=max_settle,
        update_seconds=_number(det, "update_seconds", 10.0, "detection.", 0.0),
        min_severity=min_severity,
        critical_patterns=critical,
        high_count=high_count,
        medium_count=medium_count,
        max_line_bytes=_integer(det, "max_line_bytes", 64 * 1024, "detection.", 256),
    )

    ret = _expect(data.get("retention", {}), dict, "retention", "a table")
    _unknown(ret, {"max_age_days", "max_events"}, "retention.")
    retention = RetentionConfig(
        max_age_days=_number(ret, "max_age_days", 14.0, "retention.", 0.01),
        max_events=_integer(ret, "max_events", 100_000, "retention.", 100),
    )

    red = _expect(data.get("redaction", {}), dict, "redaction", "a table")
    _unknown(red, {"extra_patterns", "values_from_env"}, "redaction.")
    redact_patterns = _patterns(red.get("extra_patterns", []), "redaction.extra_patterns")
    redact_env = _env_names(red.get("values_from_env", []), "redaction.values_from_env")

    stream = _expect(data.get("stream", {}), dict, "stream", "a table")
    _unknown(stream, {"heartbeat_seconds"}, "stream.")
    heartbeat = _number(stream, "heartbeat_seconds", 5.0, "stream.", 0.1)

    raw_sources = data.get("sources", [])
    _expect(raw_sources, list, "sources", "an array of tables ([[sources]])")
    sources = tuple(_source(raw, i) for i, raw in enumerate(raw_sources))
    file_services: set[str] = set()
    listening: set[OtlpConfig] = set()
    for i, src in enumerate(sources):
        if src.otlp is not None:
            if src.otlp in listening:
                raise ConfigError(
                    f"sources[{i}].otlp: another otlp source already listens on "
                    f"{src.otlp.describe().removeprefix('otlp ')}"
                )
            listening.add(src.otlp)
        if src.paths and src.service in file_services:
            raise ConfigError(
                f"sources[{i}].service: another file source already uses {src.service!r}; "
                "list all of a service's paths in one source"
            )
        if src.paths:
            file_services.add(src.service)

    return AgentConfig(
        state_dir=state_dir,
        host=host,
        sources=sources,
        detection=detection,
        retention=retention,
        redact_patterns=redact_patterns,
        redact_env=redact_env,
        heartbeat_seconds=heartbeat,
    )


def load_config(path: str | os.PathLike[str]) -> AgentConfig:
    """Read and validate a config file; every failure is a ConfigError naming the file."""
    p = Path(path)
    data = read_toml(p, ConfigError)
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
