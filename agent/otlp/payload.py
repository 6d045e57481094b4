"""An ``ExportLogsServiceRequest`` body (OTLP JSON, or protobuf when installed) -> log entries.

OTLP/JSON is the protobuf message in protobuf's JSON mapping with OTLP's amendments: keys
in lowerCamelCase, 64-bit integers as decimal strings (numbers are accepted too), enums
as integers (names are accepted too), trace and span ids as hex. A protobuf body is
decoded with ``opentelemetry-proto`` (the ``levautofix[otlp]`` extra, imported only when
such a body arrives) and turned into the same mapping, so one reader serves both.

The reader takes only what the agent uses (resource ``service.name`` and ``host.name``,
time, severity, body and attributes) and is strict about shape: a key that holds the wrong
kind of value is :class:`PayloadError` naming where it is, so a client's bug is answered
with a 400 that says what to fix. Values are bounded on the way in (nesting depth, text
length), since the body is outside input.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from agent.sanitize import as_text

# AnyValue nesting beyond this is kept as a short note: no log body needs more.
MAX_VALUE_DEPTH = 16
# A rendered body or attribute longer than this is cut; the parser cuts long lines anyway.
MAX_VALUE_CHARS = 256 * 1024

PROTOBUF_MISSING = (
    "protobuf OTLP needs the opentelemetry-proto package: install levautofix[otlp] on this "
    "host, or send OTLP/JSON (Content-Type: application/json)"
)

# SeverityNumber enum names, as protobuf's JSON mapping may write them: TRACE=1 .. FATAL4=24.
_SEVERITY_NAMES = {"SEVERITY_NUMBER_UNSPECIFIED": 0}
for _rank, _level in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")):
    for _step in range(1, 5):
        _SEVERITY_NAMES[f"SEVERITY_NUMBER_{_level}{_step if _step > 1 else ''}"] = _rank * 4 + _step


class PayloadError(ValueError):
    """A body that is not an ``ExportLogsServiceRequest``; the message says where and why."""


class ProtobufUnavailable(RuntimeError):
    """A protobuf body arrived but opentelemetry-proto is not installed."""


@dataclass(frozen=True)
class LogEntry:
    """One OTLP log record with the resource attributes it was sent under.

    ``body`` is the body rendered as text (a map or list as JSON, so the JSON-line formats
    can read it); ``attributes`` are the record's own, rendered the same way.
    """

    service: str | None
    host: str | None
    time_unix_nano: int
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)


def _expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise PayloadError(f"{where}: must be {what}, got {type(value).__name__}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    return _expect(value, list, f"{where}.{key}" if where else key, "an array")  # type: ignore[no-any-return]


def _object(value: Any, where: str) -> dict[str, Any]:
    return _expect(value, dict, where, "an object")  # type: ignore[no-any-return]


def _uint(value: Any, where: str) -> int:
    """A uint64/int64 field: a decimal string (the JSON mapping) or a JSON number."""
    if value is None:
        return 0
    if isinstance(value, str):
        if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 20:
            raise PayloadError(f"{where}: must be a decimal integer, got {value[:40]!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{where}: must be an integer, got {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise PayloadError(f"{where}: must be an integer, got {value!r}")
    return int(value)


def _severity(value: Any, where: str) -> int:
    if isinstance(value, str) and value in _SEVERITY_NAMES:
        return _SEVERITY_NAMES[value]
    number = _uint(value, where)
    return number if 0 <= number <= 24 else 0


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS]


def _plain(value: Any, where: str, depth: int) -> Any:
    """An AnyValue as a plain Python value (str, int, float, bool, list, dict or None)."""
    if value is None:
        return None
    obj = _object(value, where)
    if not obj:
        return None
    if depth >= MAX_VALUE_DEPTH:
        return f"<value nested deeper than {MAX_VALUE_DEPTH}>"
    if "stringValue" in obj:
        return _expect(obj["stringValue"], str, f"{where}.stringValue", "a string")
    if "boolValue" in obj:
        return _expect(obj["boolValue"], bool, f"{where}.boolValue", "true or false")
    if "intValue" in obj:
        return _uint(obj["intValue"], f"{where}.intValue")
    if "doubleValue" in obj:
        number = obj["doubleValue"]
        if isinstance(number, str) and number in ("NaN", "Infinity", "-Infinity"):
            return number
        return _expect(number, (int, float), f"{where}.doubleValue", "a number")
    if "bytesValue" in obj:
        text = _expect(obj["bytesValue"], str, f"{where}.bytesValue", "base64 text")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError(f"{where}.bytesValue: not base64") from None
        return raw.decode("utf-8", "replace")
    if "arrayValue" in obj:
        array = _object(obj["arrayValue"], f"{where}.arrayValue")
        items = _list(array, "values", f"{where}.arrayValue")
        return [
            _plain(v, f"{where}.arrayValue.values[{i}]", depth + 1) for i, v in enumerate(items)
        ]
    if "kvlistValue" in obj:
        kvlist = _object(obj["kvlistValue"], f"{where}.kvlistValue")
        return _key_values(_list(kvlist, "values", f"{where}.kvlistValue"), where, depth + 1)
    keys = ", ".join(sorted(obj))[:100]
    raise PayloadError(f"{where}: not an AnyValue (keys: {keys})")


def _key_values(items: list[Any], where: str, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        kv = _object(item, at)
        key = _expect(kv.get("key", ""), str, f"{at}.key", "a string")
        out[key] = _plain(kv.get("value"), f"{at}.value", depth)
    return out


def _text(value: Any) -> str:
    """A plain value as the text the parser reads: strings as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return _bounded(value)
    try:
        return _bounded(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (ValueError, TypeError, RecursionError):
        return _bounded(as_text(value))


def _resource_text(attributes: dict[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    text = _text(value).strip() if value is not None else ""
    return text or None


def entries_of(request: dict[str, Any]) -> list[LogEntry]:
    """Every log record of an ``ExportLogsServiceRequest`` in its JSON mapping."""
    _object(request, "the body")
    entries: list[LogEntry] = []
    for r, resource_logs in enumerate(_list(request, "resourceLogs", "")):
        where = f"resourceLogs[{r}]"
        resource_logs = _object(resource_logs, where)
        resource = _object(resource_logs.get("resource") or {}, f"{where}.resource")
        attributes = _key_values(
            _list(resource, "attributes", f"{where}.resource"), f"{where}.resource.attributes"
        )
        service = _resource_text(attributes, "service.name")
        host = _resource_text(attributes, "host.name")
        # ``instrumentationLibraryLogs`` is the name before OTLP 0.15; some shippers still send it.
        scopes = _list(resource_logs, "scopeLogs", where) or _list(
            resource_logs, "instrumentationLibraryLogs", where
        )
        for s, scope_logs in enumerate(scopes):
            at = f"{where}.scopeLogs[{s}]"
            scope_logs = _object(scope_logs, at)
            for n, record in enumerate(_list(scope_logs, "logRecords", at)):
                entries.append(
                    _entry(
                        _object(record, f"{at}.logRecords[{n}]"),
                        f"{at}.logRecords[{n}]",
                        service,
                        host,
                    )
                )
    return entries


def _entry(record: dict[str, Any], where: str, service: str | None, host: str | None) -> LogEntry:
    time_ns = _uint(record.get("timeUnixNano"), f"{where}.timeUnixNano")
    if not time_ns:
        time_ns = _uint(record.get("observedTimeUnixNano"), f"{where}.observedTimeUnixNano")
    severity_text = record.get("severityText") or ""
    _expect(severity_text, str, f"{where}.severityText", "a string")
    attributes = _key_values(_list(record, "attributes", where), f"{where}.attributes")
    return LogEntry(
        service=service,
        host=host,
        time_unix_nano=time_ns,
        severity_number=_severity(record.get("severityNumber"), f"{where}.severityNumber"),
        severity_text=severity_text,
        body=_text(_plain(record.get("body"), f"{where}.body", 0)),
        attributes={key: _text(value) for key, value in attributes.items() if value is not None},
    )


def decode_json(body: bytes) -> list[LogEntry]:
    """The log entries of an OTLP/JSON body; :class:`PayloadError` says what is wrong."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the body is not UTF-8 text: {exc}") from None
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("the body is JSON nested too deeply") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise PayloadError(f"the body is not usable JSON: {exc}") from None
    return entries_of(request)


def decode_protobuf(body: bytes) -> list[LogEntry]:
    """The log entries of a protobuf body; :class:`ProtobufUnavailable` without the extra."""
    try:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )
    except ImportError:
        raise ProtobufUnavailable(PROTOBUF_MISSING) from None
    message = ExportLogsServiceRequest()
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise PayloadError(f"the body is not a protobuf ExportLogsServiceRequest: {exc}") from None
    return entries_of(MessageToDict(message))


def protobuf_response(rejected: int, message: str) -> bytes:
    """A serialized ``ExportLogsServiceResponse`` (only called once a protobuf body decoded)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceResponse,
    )

    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = message
    return response.SerializeToString()  # type: ignore[no-any-return]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def status_protobuf(code: int, message: str) -> bytes:
    """A serialized ``google.rpc.Status`` (code = field 1, message = field 2), written by
    hand: an error answer must not depend on the optional protobuf package."""
    text = message.encode("utf-8", "replace")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
