"""The console's store: the API in ``db``, written once against the interface in ``backend``,
which ``sqlite`` (the default: one file) and ``postgres`` (a team's shared database) implement;
``connect`` picks one from the configured address. The schema is in ``schema`` (SQLite,
applied by ``migrate``) and ``pg_schema`` (PostgreSQL), ingest in ``ingest``.

Callers import from here (``from console.store import Store``); the modules are split by what
they hold, not by who uses them.
"""

from console.store.db import RECOVER_REASON, RETRY_REASON, Store
from console.store.schema import (
    ATTEMPT_FIELDS,
    MIGRATIONS,
    HoldLost,
    NotFound,
    StoreError,
    now_iso,
)

__all__ = [
    "ATTEMPT_FIELDS",
    "MIGRATIONS",
    "RECOVER_REASON",
    "RETRY_REASON",
    "HoldLost",
    "NotFound",
    "Store",
    "StoreError",
    "now_iso",
]
