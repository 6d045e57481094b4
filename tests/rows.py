"""Console rows as the store would hand them over, for tests of the views."""

from __future__ import annotations

from console.models import ErrorRow, State


def row(error_id: int, count: int = 1) -> ErrorRow:
    return ErrorRow(
        id=error_id,
        service="pa",
        fingerprint=f"fp-{error_id}",
        error_type="TypeError",
        message=f"boom {error_id}",
        stack=[],
        route=None,
        severity="low",
        count=count,
        hosts={"web-1": count},
        first_seen="2027-01-15T09:00:00Z",
        last_seen="2027-01-15T09:00:00Z",
        state=State.NEW,
        created_at="2027-01-15T09:00:00Z",
        updated_at="2027-01-15T09:00:00Z",
    )
