"""What a screen asks of the console: Textual messages, posted by screens, handled by the app.

Screens never call the app or the engine; they post one of these and the app (which owns the
engine and the dialogs) carries it out. Each carries the rows the person was looking at, so
the engine can refuse a decision about an error or attempt that has moved on since.
"""

from __future__ import annotations

from textual.message import Message

from console.models import AttemptRow, ErrorRow


class ErrorRequest(Message):
    """A request about one error, carrying its row as the person saw it."""

    def __init__(self, error: ErrorRow) -> None:
        super().__init__()
        self.error = error


class Approve(ErrorRequest):
    """Start the fix an error awaiting approval waits for (``a``)."""


class Publish(ErrorRequest):
    """Push a reviewed diff and open its pull request, once the person confirms (``a`` on a
    fix in review). ``attempt`` is the attempt shown, None for the error's current one."""

    def __init__(self, error: ErrorRow, attempt: AttemptRow | None = None) -> None:
        super().__init__(error)
        self.attempt = attempt


class Skip(ErrorRequest):
    """Shelve the error and discard its attempt (``s``)."""


class Retry(ErrorRequest):
    """Start a new attempt, after asking for an optional extra instruction (``r``)."""


class Reopen(ErrorRequest):
    """Bring a skipped error back to awaiting approval (command palette)."""


class Revert(ErrorRequest):
    """Open a pull request reverting a regressed error's merged fix, once the person
    confirms (``u``)."""


class Mute(ErrorRequest):
    """Keep the error's notifications quiet for a while or N more occurrences, asking how
    long; or end its mute when one holds (``m``)."""


class StopMerge(ErrorRequest):
    """Stop the automatic merge of the error's PR during its soak (``x``)."""


class ResumeMerge(ErrorRequest):
    """Let auto-merge work again for the error's service after a regression paused it
    (``x`` on an error of a paused service)."""


class OpenReview(ErrorRequest):
    """Show the error's current diff full screen (``d``)."""


class OpenDetail(ErrorRequest):
    """Show everything known about the error (``enter``)."""


class OpenPR(ErrorRequest):
    """Open the error's pull request in a browser (``o``)."""


class OpenHistory(Message):
    """Show what the product did over the last weeks (``h``)."""


class Loaded(Message):
    """The main screen shows its first data: what the console keeps for its lifetime exists."""


class WorkFailed(Message):
    """A view's background work raised; the app shows it as a notice and keeps running."""

    def __init__(self, what: str, error: Exception) -> None:
        super().__init__()
        self.what = what
        self.error = error
