"""From a parsed record to a countable occurrence: redact first, then fingerprint.

Redaction happens before anything is stored or hashed, so a secret never reaches the
outbox, the wire or the fingerprint input.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.fingerprint import fingerprint
from agent.record import ErrorRecord
from agent.redact import Redactor, redact_record


@dataclass(frozen=True)
class Occurrence:
    """One error occurrence ready to be counted: the redacted record and its group key.

    ``host`` is the host the record says it came from (an OTLP resource's ``host.name``),
    None for what this host's own logs hold.
    """

    service: str
    fingerprint: str
    record: ErrorRecord
    host: str | None = None


def occurrence_of(
    service: str,
    record: ErrorRecord,
    redactor: Redactor,
    app_root: str | None = None,
    host: str | None = None,
) -> Occurrence:
    clean = redact_record(record, redactor)
    return Occurrence(
        service=service, fingerprint=fingerprint(clean, app_root), record=clean, host=host
    )
