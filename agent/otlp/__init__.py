"""OTLP/HTTP log intake: shippers (Vector, Fluent Bit, the OpenTelemetry Collector) send
log records to the agent instead of the agent tailing files.

``http`` is the bounded HTTP/1.1 reader, ``payload`` reads an ``ExportLogsServiceRequest``
(JSON always, protobuf with the ``otlp`` extra), ``records`` turns log entries into error
records through the same parser the file sources use, and ``intake`` serves
``POST /v1/logs`` and acknowledges a batch once it is committed.
"""

from agent.otlp.intake import Delivery, OtlpIntake, is_loopback
from agent.otlp.records import Found

__all__ = ["Delivery", "Found", "OtlpIntake", "is_loopback"]
