"""The console's SQLite store: the API in ``db``, the schema in ``schema``, applying it in
``migrate``, ingest in ``ingest``.

Callers import from here (``from console.store import Store``); the modules are split by what
they hold, not by who uses them.
"""

from console.store.db import RECOVER_REASON, RETRY_REASON, Store
from console.store.schema import ATTEMPT_FIELDS, MIGRATIONS, NotFound, StoreError, now_iso

__all__ = [
    "ATTEMPT_FIELDS",
    "MIGRATIONS",
    "RECOVER_REASON",
    "RETRY_REASON",
    "NotFound",
    "Store",
    "StoreError",
    "now_iso",
]
