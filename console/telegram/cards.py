"""The bot's messages about errors and attempts ("cards"), kept in step with the engine.

A card is sent when an error awaits a decision (a new error, a fix ready for review) and
edited in place as the engine moves on: its buttons are exactly the decisions the engine's
flow rule (``Engine.actions``) allows, and once none is left they are removed and the card
says who decided what. Engine events only mark a card to refresh; one task does the
sending, so a burst of events is one edit and the engine's loop never waits on Telegram.

Limitation: which chat message belongs to which error or attempt is kept in memory only.
After a console restart old buttons still work (they are signed and go through the engine),
but decisions taken elsewhere no longer edit those older messages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.ext import Application

import console.telegram.render as render
from console.automerge.plan import MergeStep
from console.engine import Engine
from console.events import (
    AttemptChanged,
    AutoMergeChanged,
    EngineEvent,
    ErrorChanged,
    Regressed,
)
from console.fix.paths import touched_sensitive
from console.models import Action as Decision
from console.models import AttemptRow, DecisionRow, ErrorRow, State, attempt_name
from console.regression import after_merge, regressed_by
from console.telegram.callbacks import Action, CallbackSigner
from console.telegram.delivery import Delivery
from console.telegram.limits import CAPTION_LIMIT, clip
from console.telegram.token import SCRUBBER

log = logging.getLogger(__name__)

CardKey = tuple[Literal["error", "attempt", "merge", "regressed"], int]
HTML = ParseMode.HTML
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
# The buttons a card may carry: the engine's decision, the label, the button's action.
Choices = tuple[tuple[Decision, str, Action], ...]
ERROR_CHOICES: Choices = (
    (Decision.APPROVE, "Approve Fix", "approve"),
    (Decision.SKIP, "Skip", "skip"),
)
REVIEW_CHOICES: Choices = (
    (Decision.PUBLISH, "Open PR", "publish"),
    (Decision.SKIP, "Skip", "skip_attempt"),
    (Decision.RETRY, "Retry", "retry"),
)
# On a regression's message, all about the merged attempt (an old message's buttons are
# refused once the error has a newer attempt).
REGRESSION_CHOICES: Choices = (
    (Decision.REVERT, "Revert", "revert"),
    (Decision.RETRY, "Retry", "retry"),
    (Decision.MUTE, "Mute 1h", "mute"),
)
MERGE_CHOICES: Choices = (
    (Decision.STOP_MERGE, "Stop auto-merge", "stop_merge"),
    (Decision.RESUME_MERGE, "Resume auto-merge", "resume_merge"),
)


def scrub_html(text: str) -> str:
    """For every text sent to Telegram: a token in an error text or a log line shown there
    is replaced too."""
    return SCRUBBER.scrub(text, "&lt;bot token&gt;")


@dataclass
class Card:
    """One message the bot sent about an error or an attempt, for editing it later."""

    chat_id: int
    message_id: int
    text: str
    open: bool  # still has its decision buttons
    decision_floor: int  # the last decision id when it was sent; later ones are its answer
    state: State
    edited_at: float


class CardSync:
    """Sends and edits the cards of one bot; the bot hands it what it needs as callables,
    since its application and signer come and go with the connection."""

    def __init__(
        self,
        engine: Engine,
        delivery: Delivery,
        chats: tuple[int, ...],
        *,
        app: Callable[[], AnyApplication | None],
        signer: Callable[[], CallbackSigner | None],
        enabled: Callable[[], bool],
        muted: Callable[[], bool],
        problem: Callable[[str], None],
        names: dict[int, str],
        edit_interval: float,
    ) -> None:
        self._engine = engine
        self._delivery = delivery
        self._chats = chats
        self._app = app
        self._signer = signer
        self._enabled = enabled
        self._muted = muted
        self._problem = problem
        self._names = names
        self._edit_interval = edit_interval
        self._cards: dict[CardKey, list[Card]] = {}
        self._dirty: dict[CardKey, None] = {}
        self._later: set[CardKey] = set()
        # Errors whose regression is still to be told (the message goes out once each time).
        self._regressions: set[int] = set()
        self._wake = asyncio.Event()

    def mark_all(self) -> None:
        """Catch up on everything that changed while the bot was off."""
        for key in list(self._cards):
            self.mark(key)

    def on_event(self, event: EngineEvent) -> None:
        """The engine listener: only marks the message to refresh, never waits."""
        if isinstance(event, Regressed):
            self._regressions.add(event.error.id)
            self.mark(("regressed", event.error.id))
        elif isinstance(event, ErrorChanged):
            self.mark(("error", event.error.id))
            if ("regressed", event.error.id) in self._cards:
                self.mark(("regressed", event.error.id))
        elif isinstance(event, AttemptChanged):
            self.mark(("attempt", event.attempt.id))
        elif isinstance(event, AutoMergeChanged):
            self.mark(("merge", event.plan.attempt_id))

    def mark(self, key: CardKey) -> None:
        """Bring the messages about ``key`` up to date soon."""
        if not self._enabled():
            return
        self._dirty[key] = None
        self._wake.set()

    def _mark_later(self, key: CardKey, delay: float) -> None:
        if key in self._later:
            return
        self._later.add(key)

        def fire() -> None:
            self._later.discard(key)
            self.mark(key)

        asyncio.get_running_loop().call_later(max(0.0, delay), fire)

    async def run(self) -> None:
        """Bring messages up to date, one key at a time; a burst of events is one edit."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty and self._enabled():
                key = next(iter(self._dirty))
                del self._dirty[key]
                if self._app() is None:
                    continue
                try:
                    if key[0] == "error":
                        await self._sync_error(key[1])
                    elif key[0] == "merge":
                        await self._sync_merge(key[1])
                    elif key[0] == "regressed":
                        await self._sync_regressed(key[1])
                    else:
                        await self._sync_attempt(key[1])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("telegram: updating %s %s failed", *key)
                    self._problem(
                        f"Telegram: updating the message for {key[0]} {key[1]} failed: {exc}"
                    )

    async def _sync_error(self, error_id: int) -> None:
        store = self._engine.store
        error = await store.error(error_id)
        if error is None:
            return
        key: CardKey = ("error", error_id)
        cards = self._cards.get(key, [])
        buttons = self._error_buttons(error)
        if buttons is not None:
            if not any(c.open for c in cards):
                if not self._muted():
                    self._cards[key] = await self._send_cards(
                        f"the new-error message for error {error_id}",
                        render.error_card(error),
                        buttons,
                        error_id,
                        error.state,
                    )
                return
            text = render.error_card(error)
            await self._edit_cards(key, cards, text, buttons, error.state)
            return
        if not cards:
            return
        decision = await self._answer_to(
            error_id,
            min(c.decision_floor for c in cards),
            lambda d: d.action in ("approve", "skip"),
        )
        attempt = (
            await store.attempt(error.current_attempt_id) if error.current_attempt_id else None
        )
        text = render.error_card(error, decision=decision, attempt=attempt, names=self._names)
        await self._edit_cards(key, cards, text, None, error.state)

    async def _sync_attempt(self, attempt_id: int) -> None:
        store = self._engine.store
        attempt = await store.attempt(attempt_id)
        if attempt is None:
            return
        error = await store.error(attempt.error_id)
        if error is None:
            return
        key: CardKey = ("attempt", attempt_id)
        cards = self._cards.get(key, [])
        buttons = self._review_buttons(error, attempt)
        if buttons is None and not cards:
            return
        tests = await store.test_results(attempt_id)
        service = self._engine.config.service(error.service)
        sensitive = touched_sensitive(attempt.diff_stat, service.sensitive_paths) if service else []
        decision = None
        if attempt.state is not State.REVIEW and cards:
            decision = await self._answer_to(
                error.id,
                min(c.decision_floor for c in cards),
                lambda d: d.from_state is State.REVIEW,
            )
        text = render.review_card(
            error,
            attempt,
            test=tests[-1] if tests else None,
            sensitive=sensitive,
            decision=decision,
            names=self._names,
            rounds=await store.rounds(attempt_id),
        )
        if buttons is not None and not cards:
            sent = await self._send_cards(
                f"the review message for attempt {attempt_id}",
                text,
                buttons,
                error.id,
                attempt.state,
            )
            self._cards[key] = sent
            if attempt.diff and render.diff_is_long(attempt.diff):
                await self._send_diff(sent, error.id, attempt, attempt.diff)
            return
        await self._edit_cards(key, cards, text, buttons, attempt.state)

    async def _sync_merge(self, attempt_id: int) -> None:
        """The automatic merge's message: sent when the soak starts (or the fix is refused),
        edited as it moves on; its Stop (or Resume) button is the engine's to offer."""
        plan = self._engine.auto_merge.plan(attempt_id)
        store = self._engine.store
        attempt = await store.attempt(attempt_id)
        error = await store.error(attempt.error_id) if attempt is not None else None
        if plan is None or attempt is None or error is None:
            return
        key: CardKey = ("merge", attempt_id)
        cards = self._cards.get(key, [])
        allowed = self._engine.actions(error, attempt)
        buttons = self._keyboard(MERGE_CHOICES, allowed, attempt_id)
        paused = self._engine.auto_merge.paused(error.service)
        text = render.merge_card(error, attempt, plan, paused=paused)
        if not cards:
            if plan.step in (MergeStep.SOAKING, MergeStep.REFUSED) or paused is not None:
                what = f"the auto-merge message for attempt {attempt_id}"
                self._cards[key] = await self._send_cards(
                    what, text, buttons, error.id, attempt.state
                )
            return
        await self._edit_cards(key, cards, text, buttons, attempt.state)

    async def _sync_regressed(self, error_id: int) -> None:
        """The regression's message: sent when the engine says the error regressed (unless
        that error is muted), with Revert, Retry and Mute as far as the engine allows them,
        then edited with who answered how."""
        store = self._engine.store
        error = await store.error(error_id)
        if error is None:
            return
        key: CardKey = ("regressed", error_id)
        cards = self._cards.get(key, [])
        told = error_id in self._regressions
        self._regressions.discard(error_id)
        allowed = self._engine.actions(error)
        if not cards and (not told or Decision.MUTE not in allowed):
            return  # nothing to tell, or a mute holds: the table still shows it
        merged = await after_merge(store, error)
        target = error.current_attempt_id
        buttons = (
            self._keyboard(REGRESSION_CHOICES, allowed, target)
            if error.state is State.REGRESSED and target is not None
            else None
        )
        answers = (
            [
                d
                for d in await store.decisions(error_id=error_id, limit=100_000)
                if d.id > min(c.decision_floor for c in cards) and not regressed_by(d)
            ]
            if cards
            else []
        )
        text = render.regression_card(error, merged, answers=answers, names=self._names)
        if not cards:
            what = f"the regression message for error {error_id}"
            self._cards[key] = await self._send_cards(what, text, buttons, error_id, error.state)
            return
        await self._edit_cards(key, cards, text, buttons, error.state)

    async def _answer_to(
        self, error_id: int, floor: int, wanted: Callable[[DecisionRow], bool]
    ) -> DecisionRow | None:
        """The first decision taken after a message was sent: what answered its buttons."""
        for decision in await self._engine.store.decisions(error_id=error_id, limit=100_000):
            if decision.id > floor and wanted(decision):
                return decision
        return None

    async def _send_cards(
        self,
        what: str,
        text: str,
        buttons: InlineKeyboardMarkup | None,
        error_id: int,
        state: State,
    ) -> list[Card]:
        app = self._app()
        if app is None:
            return []
        text = scrub_html(text)
        decisions = await self._engine.store.decisions(error_id=error_id, limit=100_000)
        floor = decisions[-1].id if decisions else 0
        cards: list[Card] = []
        for chat_id in self._chats:
            message = await self._delivery.run(
                what,
                functools.partial(
                    app.bot.send_message,
                    chat_id,
                    text,
                    parse_mode=HTML,
                    reply_markup=buttons,
                    link_preview_options=NO_PREVIEW,
                ),
            )
            if message is not None:
                cards.append(
                    Card(
                        chat_id,
                        message.message_id,
                        text,
                        buttons is not None,
                        floor,
                        state,
                        time.monotonic(),
                    )
                )
        return cards

    async def _edit_cards(
        self,
        key: CardKey,
        cards: list[Card],
        text: str,
        buttons: InlineKeyboardMarkup | None,
        state: State,
    ) -> None:
        app = self._app()
        if app is None:
            return
        is_open = buttons is not None
        text = scrub_html(text)
        now = time.monotonic()
        for card in cards:
            if card.text == text and card.open == is_open:
                continue
            same_kind = card.open == is_open and card.state is state
            if same_kind and now - card.edited_at < self._edit_interval:
                self._mark_later(key, card.edited_at + self._edit_interval - now)
                continue
            await self._delivery.run(
                f"updating the message for {key[0]} {key[1]}",
                functools.partial(
                    app.bot.edit_message_text,
                    text,
                    chat_id=card.chat_id,
                    message_id=card.message_id,
                    parse_mode=HTML,
                    reply_markup=buttons,  # none: Telegram removes the keyboard
                    link_preview_options=NO_PREVIEW,
                ),
            )
            card.text, card.open, card.state, card.edited_at = text, is_open, state, now

    async def _send_diff(
        self, cards: list[Card], error_id: int, attempt: AttemptRow, diff: str
    ) -> None:
        app = self._app()
        if app is None:
            return
        lines = len(diff.splitlines())
        caption = clip(
            f"Full diff of the fix for error #{error_id}, {attempt_name(attempt)} ({lines} lines)",
            CAPTION_LIMIT,
        )
        for card in cards:
            await self._delivery.run(
                f"the diff of attempt {attempt.id}",
                functools.partial(
                    app.bot.send_document,
                    card.chat_id,
                    document=diff.encode(),
                    filename=f"error-{error_id}-attempt-{attempt.number}.diff",
                    caption=caption,
                    reply_parameters=ReplyParameters(
                        card.message_id, allow_sending_without_reply=True
                    ),
                ),
            )

    def _button(self, label: str, action: Action, target: int) -> InlineKeyboardButton:
        signer = self._signer()
        assert signer is not None
        return InlineKeyboardButton(label, callback_data=signer.encode(action, target))

    def _keyboard(
        self, choices: Choices, allowed: frozenset[Decision], target: int
    ) -> InlineKeyboardMarkup | None:
        row = [self._button(label, data, target) for d, label, data in choices if d in allowed]
        return InlineKeyboardMarkup([row]) if row else None

    def _error_buttons(self, error: ErrorRow) -> InlineKeyboardMarkup | None:
        """Approve Fix and Skip, as far as the engine allows them, while no attempt has
        started (later decisions are the review card's)."""
        if error.current_attempt_id is not None:
            return None
        return self._keyboard(ERROR_CHOICES, self._engine.actions(error), error.id)

    def _review_buttons(self, error: ErrorRow, attempt: AttemptRow) -> InlineKeyboardMarkup | None:
        """Open PR, Skip and Retry, as far as the engine allows them, while the attempt is
        in review."""
        if attempt.state is not State.REVIEW:
            return None
        return self._keyboard(REVIEW_CHOICES, self._engine.actions(error, attempt), attempt.id)
