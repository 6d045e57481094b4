"""The Telegram bot: engine events out to the phone, button taps and commands back in.

The bot is a view. It renders what the engine publishes and turns a tap into the same engine
command the keyboard uses (``approve``/``skip``/``retry``/``publish`` with the actor
``telegram:<user id>``), so a tap and a key press can never disagree: the store's
compare-and-set lets exactly one of them act and the other hears "already decided".

It runs on the console's asyncio loop (python-telegram-bot's ``Application`` started by
hand, never ``run_polling``), and Telegram trouble never stops the console: calls go through
:class:`~console.telegram.delivery.Delivery`, and the engine listener only marks messages to
refresh, it never waits on the network.

Limitation: which chat message belongs to which error or attempt is kept in memory only.
After a console restart old buttons still work (they are signed and go through the engine),
but decisions taken elsewhere no longer edit those older messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from console.config import TelegramConfig
from console.engine import (
    AttemptChanged,
    CommandResult,
    Engine,
    EngineEvent,
    ErrorChanged,
    TelegramChanged,
)
from console.fix.paths import touched_sensitive
from console.fix.prompt import sanitize, sanitize_line
from console.models import STATE_LABELS, DecisionRow, State
from console.telegram import dashboard, render
from console.telegram.callbacks import Action, Callback, CallbackSigner, ForgedCallback
from console.telegram.delivery import Delivery
from console.telegram.limits import ANSWER_LIMIT, CAPTION_LIMIT, clip, escape
from console.telegram.mute import DurationError, describe, parse_duration
from console.telegram.poller import BACKOFF_FIRST_SECONDS, Poller, PollState
from console.telegram.refusals import REFUSAL_PERIOD_SECONDS, RefusalLane
from console.telegram.tasks import stop_task
from console.telegram.throttle import Throttle
from console.telegram.token import (
    SCRUBBER,
    TelegramTokenError,
    keep_token_out_of_logs,
    resolve_bot_token,
)

log = logging.getLogger(__name__)

CardKey = tuple[Literal["error", "attempt"], int]
BotState = Literal["on", "off", "error"]
HTML = ParseMode.HTML
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
POLL_TIMEOUT_SECONDS = 10.0
# An open or closed message whose state did not change is edited at most this often
# (a recurring error bumps its count on every batch; the chat need not follow each one).
EDIT_INTERVAL_SECONDS = 30.0
RECONNECT_MAX_SECONDS = 300.0
MAX_INSTRUCTION_CHARS = 2000
COMMANDS = (
    ("dashboard", "Dashboard with queue, errors and system status"),
    ("errors", "Recent errors"),
    ("queue", "Errors waiting or being fixed"),
    ("mute", "Mute new-error messages: /mute 30m, /mute off"),
    ("retry", "Retry a fix: /retry <error id> [instruction]"),
    ("help", "What this bot does"),
)
HELP = (
    "🤖 <b>AutoFix</b> tells you about new production errors and fixes ready for review.\n\n"
    "Buttons: <b>Approve Fix</b> starts a fix, <b>Skip</b> shelves the error; on a ready fix "
    "<b>Open PR</b> pushes it and opens the pull request, <b>Retry</b> starts again.\n\n"
    "/dashboard — queue, recent errors and system status in one message\n"
    "/errors — recent errors\n"
    "/queue — errors waiting or being fixed\n"
    "/mute 30m | 2h | off — pause new-error messages\n"
    "/retry &lt;error id&gt; [instruction] — retry a fix with an extra instruction\n"
    "/help — this text"
)


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


class TelegramBot:
    """The phone workflow for one engine; ``engine.telegram`` is set to it on start."""

    def __init__(
        self,
        engine: Engine,
        config: TelegramConfig,
        *,
        poll_timeout: float = POLL_TIMEOUT_SECONDS,
        edit_interval: float = EDIT_INTERVAL_SECONDS,
        network_backoff: float = 0.5,
        poll_backoff: float = BACKOFF_FIRST_SECONDS,
    ) -> None:
        self._engine = engine
        self._config = config
        self._poll_timeout = poll_timeout
        self._poll_backoff = poll_backoff
        self._edit_interval = edit_interval
        self._allowed = frozenset(config.allowed_user_ids)
        self._chats = tuple(config.chat_ids or config.allowed_user_ids)
        self._state: BotState = "off"
        self._detail: str | None = None
        self._token: str | None = None
        self._signer: CallbackSigner | None = None
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self._delivery = Delivery(self._set_state, self._problem, backoff=network_backoff)
        self._enabled = False
        self._unsubscribe: Callable[[], None] | None = None
        self._cards: dict[CardKey, list[Card]] = {}
        self._dirty: dict[CardKey, None] = {}
        self._later: set[CardKey] = set()
        self._wake = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._poller: Poller | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._muted_until: float | None = None
        self._names: dict[int, str] = {}
        self._chat_set = frozenset(self._chats)
        self._stranger_refusals = Throttle(REFUSAL_PERIOD_SECONDS)
        self._chat_refusals = Throttle(REFUSAL_PERIOD_SECONDS)
        self._refusals = RefusalLane(self._delivery)

    # --- what the engine and the UI see ----------------------------------------------------

    @property
    def state(self) -> BotState:
        return self._state

    @property
    def muted_until(self) -> float | None:
        """Wall-clock time until which new-error messages are held back, if muted."""
        if self._muted_until is not None and self._muted_until <= time.time():
            self._muted_until = None
        return self._muted_until

    async def start(self) -> None:
        """Connect and start polling; a problem is reported as state ``error``, never raised."""
        self._engine.telegram = self
        if self._unsubscribe is None:
            self._unsubscribe = self._engine.subscribe(self._on_event)
        self._enabled = True
        if not self._chats:
            self._problem(
                "Telegram: no chat to send notifications to; set telegram.allowed_user_ids "
                "or telegram.chat_ids"
            )
        if self._sync_task is None:
            self._sync_task = asyncio.create_task(self._sync_loop(), name="telegram-sync")
        await self._connect()

    async def stop(self) -> None:
        """Stop polling and sending; call before the engine stops (it closes the store)."""
        self._enabled = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in (self._reconnect_task, self._sync_task):
            await stop_task(task)
        self._reconnect_task = self._sync_task = None
        await self._refusals.close()
        await self._close_app()
        self._set_state("off", None, force=True)

    async def set_enabled(self, enabled: bool) -> None:
        """The console's Telegram switch: off stops polling and messages, on resumes both."""
        if not enabled:
            self._enabled = False
            await self._stop_polling()
            self._set_state("off", "turned off in the console", force=True)
            return
        self._enabled = True
        if self._sync_task is None:
            self._sync_task = asyncio.create_task(self._sync_loop(), name="telegram-sync")
        if self._app is None:
            await self._connect()
        elif self._poll_task is None:
            self._start_polling(self._app)
            self._set_state("on", None, force=True)
        for key in list(self._cards):  # catch up on what changed while off
            self._mark(key)

    # --- connecting ------------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            token = resolve_bot_token(dataclasses.replace(self._config, enabled=True))
        except TelegramTokenError as exc:
            self._fail(f"Telegram bot token: {exc}")
            return
        assert token is not None
        self._token = token
        keep_token_out_of_logs(token)
        self._signer = CallbackSigner(token)
        base = self._config.api_base_url.rstrip("/")
        app = (
            Application.builder()
            .token(token)
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .concurrent_updates(True)
            .updater(None)  # polling is console.telegram.poller's, see there why
            .build()
        )
        self._add_handlers(app)
        try:
            await app.initialize()
            await app.start()
            await app.bot.delete_webhook()  # getUpdates is refused while a webhook is set
        except InvalidToken as exc:
            await self._discard(app)
            self._fail(f"Telegram refused the bot token ({exc.message}); check it with @BotFather")
            return
        except (TelegramError, OSError) as exc:
            await self._discard(app)
            self._fail(f"Telegram unreachable: {self._scrub(str(exc))}; retrying")
            self._schedule_reconnect()
            return
        self._app = app
        self._start_polling(app)
        self._set_state("on", None, force=True)
        commands = [BotCommand(name, text) for name, text in COMMANDS]
        await self._delivery.run("the command menu", lambda: app.bot.set_my_commands(commands))

    def _start_polling(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if self._poller is None:  # kept across off/on, so its offset is too
            self._poller = Poller(
                app.bot,
                app.update_queue.put,
                self._on_poll_state,
                self._problem,
                timeout=self._poll_timeout,
                backoff=self._poll_backoff,
            )
        self._poll_task = asyncio.create_task(self._poller.run(), name="telegram-poll")

    async def _stop_polling(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is None:
            return
        await stop_task(task)
        if self._poller is not None:
            with contextlib.suppress(TelegramError, OSError):
                await asyncio.wait_for(self._poller.confirm(), 5)

    def _schedule_reconnect(self) -> None:
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect(), name="telegram-retry")

    async def _reconnect(self) -> None:
        delay = 5.0
        while self._enabled and self._app is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
            if self._enabled and self._app is None:
                self._reconnect_task = None  # _connect may schedule the next round itself
                await self._connect()
                return

    async def _discard(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        with contextlib.suppress(Exception):
            if app.running:
                await app.stop()
            await app.shutdown()
        with contextlib.suppress(Exception):
            await app.bot.shutdown()

    async def _close_app(self) -> None:
        await self._stop_polling()
        self._poller = None
        app, self._app = self._app, None
        if app is not None:
            await self._discard(app)

    def _on_poll_state(self, state: PollState) -> None:
        """The poller retries by itself; the header shows that it is failing and when next."""
        self._set_state(state.state, state.detail)

    # --- state and problems ----------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return SCRUBBER.scrub(text)

    def _scrub_html(self, text: str) -> str:
        """For every text sent to Telegram: a token in an error text or a log line shown
        there is replaced too."""
        return SCRUBBER.scrub(text, "&lt;bot token&gt;")

    def _set_state(self, state: str, detail: str | None, *, force: bool = False) -> None:
        if not force and not self._enabled:
            return  # a late call finishing after the switch went off does not turn it on
        detail = self._scrub(detail) if detail else None
        if (state, detail) == (self._state, self._detail):
            return
        if state not in ("on", "off", "error"):
            raise ValueError(f"unknown Telegram state {state!r}")
        self._state = state  # type: ignore[assignment]
        self._detail = detail
        self._engine.report(TelegramChanged(self._state, detail))

    def _fail(self, text: str) -> None:
        self._set_state("error", text, force=True)
        self._engine.notify("error", self._scrub(text))

    def _problem(self, text: str) -> None:
        self._engine.notify("warning", self._scrub(text))

    # --- engine events -> messages ---------------------------------------------------------

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, ErrorChanged):
            self._mark(("error", event.error.id))
        elif isinstance(event, AttemptChanged):
            self._mark(("attempt", event.attempt.id))

    def _mark(self, key: CardKey) -> None:
        if not self._enabled:
            return
        self._dirty[key] = None
        self._wake.set()

    def _mark_later(self, key: CardKey, delay: float) -> None:
        if key in self._later:
            return
        self._later.add(key)

        def fire() -> None:
            self._later.discard(key)
            self._mark(key)

        asyncio.get_running_loop().call_later(max(0.0, delay), fire)

    async def _sync_loop(self) -> None:
        """Bring messages up to date, one key at a time; a burst of events is one edit."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty and self._enabled:
                key = next(iter(self._dirty))
                del self._dirty[key]
                if self._app is None:
                    continue
                try:
                    if key[0] == "error":
                        await self._sync_error(key[1])
                    else:
                        await self._sync_attempt(key[1])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("telegram: updating %s %s failed", *key)
                    self._problem(
                        f"Telegram: updating the message for {key[0]} {key[1]} failed: {exc}"
                    )

    def muted(self) -> bool:
        return self.muted_until is not None

    async def _sync_error(self, error_id: int) -> None:
        store = self._engine.store
        error = await store.error(error_id)
        if error is None:
            return
        key: CardKey = ("error", error_id)
        cards = self._cards.get(key, [])
        if error.state is State.AWAITING_APPROVAL:
            if not any(c.open for c in cards):
                if not self.muted():
                    self._cards[key] = await self._send_cards(
                        f"the new-error message for error {error_id}",
                        render.error_card(error),
                        self._error_buttons(error_id),
                        error_id,
                        error.state,
                    )
                return
            text = render.error_card(error)
            await self._edit_cards(key, cards, text, self._error_buttons(error_id), error.state)
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
        if attempt.state is not State.REVIEW and not cards:
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
        )
        if attempt.state is State.REVIEW and not cards:
            sent = await self._send_cards(
                f"the review message for attempt {attempt_id}",
                text,
                self._review_buttons(attempt_id),
                error.id,
                attempt.state,
            )
            self._cards[key] = sent
            if attempt.diff and render.diff_is_long(attempt.diff):
                await self._send_diff(sent, error.id, attempt_id, attempt.diff)
            return
        buttons = self._review_buttons(attempt_id) if attempt.state is State.REVIEW else None
        await self._edit_cards(key, cards, text, buttons, attempt.state)

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
        buttons: InlineKeyboardMarkup,
        error_id: int,
        state: State,
    ) -> list[Card]:
        app = self._app
        if app is None:
            return []
        text = self._scrub_html(text)
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
                    Card(chat_id, message.message_id, text, True, floor, state, time.monotonic())
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
        app = self._app
        if app is None:
            return
        is_open = buttons is not None
        text = self._scrub_html(text)
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
        self, cards: list[Card], error_id: int, attempt_id: int, diff: str
    ) -> None:
        app = self._app
        if app is None:
            return
        lines = len(diff.splitlines())
        caption = clip(
            f"Full diff of the fix for error #{error_id}, attempt #{attempt_id} ({lines} lines)",
            CAPTION_LIMIT,
        )
        for card in cards:
            await self._delivery.run(
                f"the diff of attempt {attempt_id}",
                functools.partial(
                    app.bot.send_document,
                    card.chat_id,
                    document=diff.encode(),
                    filename=f"attempt-{attempt_id}.diff",
                    caption=caption,
                    reply_parameters=ReplyParameters(
                        card.message_id, allow_sending_without_reply=True
                    ),
                ),
            )

    def _button(self, label: str, action: Action, target: int = 0) -> InlineKeyboardButton:
        assert self._signer is not None
        return InlineKeyboardButton(label, callback_data=self._signer.encode(action, target))

    def _error_buttons(self, error_id: int) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [
                    self._button("Approve Fix", "approve", error_id),
                    self._button("Skip", "skip", error_id),
                ]
            ]
        )

    def _review_buttons(self, attempt_id: int) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [
                    self._button("Open PR", "publish", attempt_id),
                    self._button("Skip", "skip_attempt", attempt_id),
                    self._button("Retry", "retry", attempt_id),
                ]
            ]
        )

    def _dashboard_buttons(self, view: dashboard.View) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [
                    self._button("Queue Status", "view_queue"),
                    self._button("Recent Errors", "view_errors"),
                ],
                [
                    self._button("System Status", "view_system"),
                    self._button("Refresh", f"view_{view}"),  # type: ignore[arg-type]
                ],
            ]
        )

    # --- updates from Telegram -------------------------------------------------------------

    def _add_handlers(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        app.add_handler(CommandHandler(["start", "dashboard"], self._cmd_dashboard))
        app.add_handler(CommandHandler("errors", self._cmd_errors))
        app.add_handler(CommandHandler("queue", self._cmd_queue))
        app.add_handler(CommandHandler("help", self._cmd_help))
        app.add_handler(CommandHandler("mute", self._cmd_mute))
        app.add_handler(CommandHandler("retry", self._cmd_retry))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_handler(MessageHandler(filters.ALL, self._cmd_unknown))
        app.add_error_handler(self._on_handler_error)

    async def _gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Only allowed users in configured chats get past here.

        Anyone else is answered at most once an hour (a stranger per user, a chat the bot
        does not work in per chat) on the refusal lane, and logged as often.
        """
        user = update.effective_user
        if user is None or not self._enabled:
            raise ApplicationHandlerStop
        chat = _chat_of(update)
        if user.id in self._allowed and chat is not None and chat.id in self._chat_set:
            self._names[user.id] = clip(sanitize_line(user.first_name or "") or str(user.id), 40)
            return
        # A stranger is told why in their own chat or a configured one; any chat the bot
        # does not work in (a group it was added to) only hears that, whoever wrote.
        own_or_served = chat is None or chat.id == user.id or chat.id in self._chat_set
        if user.id not in self._allowed and own_or_served:
            self._refuse_stranger(update, user)
        else:
            self._refuse_chat(update, user, chat)
        raise ApplicationHandlerStop

    def _refuse_stranger(self, update: Update, user: User) -> None:
        if not self._stranger_refusals.allow(user.id):
            return
        who = clip(
            f"{sanitize_line(user.first_name or '')} @{sanitize_line(user.username or '-')}", 80
        )
        what = "a button tap" if update.callback_query else "a message"
        self._engine.notify(
            "warning",
            f"Telegram: refused {what} from user {user.id} ({who}): not in "
            "telegram.allowed_user_ids",
        )
        self._send_refusal(
            update,
            "Sorry, you are not allowed to use this bot. If you should be, ask its owner to add "
            f"your Telegram user id {user.id} to allowed_user_ids.",
        )

    def _refuse_chat(self, update: Update, user: User, chat: Chat | None) -> None:
        key = chat.id if chat is not None else f"user {user.id}"
        if not self._chat_refusals.allow(key):
            return
        where = f"chat {chat.id} ({chat.type})" if chat is not None else "an inline message"
        self._engine.notify(
            "warning",
            f"Telegram: ignored {where} from user {user.id}: the bot answers only in "
            "telegram.chat_ids (default: the allowed users' private chats)",
        )
        self._send_refusal(update, "This bot does not work in this chat.")

    def _send_refusal(self, update: Update, text: str) -> None:
        app = self._app
        query = update.callback_query
        if query is not None:
            self._refusals.offer(
                "a refusal", lambda: query.answer(clip(text, ANSWER_LIMIT), show_alert=True)
            )
        elif update.effective_chat is not None and app is not None:
            chat_id = update.effective_chat.id
            self._refusals.offer("a refusal", lambda: app.bot.send_message(chat_id, text))

    async def _answer(self, query: CallbackQuery, text: str, *, alert: bool = False) -> None:
        await self._delivery.run(
            "answering a button",
            lambda: query.answer(
                clip(self._scrub(text), ANSWER_LIMIT) if text else None, show_alert=alert
            ),
        )

    async def _reply(
        self, update: Update, text: str, buttons: InlineKeyboardMarkup | None = None
    ) -> None:
        chat = update.effective_chat
        app = self._app
        if chat is None or app is None:
            return
        await self._delivery.run(
            "a reply",
            lambda: app.bot.send_message(
                chat.id,
                self._scrub_html(text),
                parse_mode=HTML,
                reply_markup=buttons,
                link_preview_options=NO_PREVIEW,
            ),
        )

    async def _snapshot(self) -> dashboard.Snapshot:
        store = self._engine.store
        queued = await store.errors(limit=1000, state=dashboard.QUEUE_STATES)
        return dashboard.Snapshot(
            errors=await store.errors(limit=dashboard.LIST_LIMIT),
            queued=queued,
            counts=Counter(e.state for e in queued),
            links=self._engine.link_statuses(),
            hosts=await store.hosts(),
            busy=self._engine.busy,
            muted_until=self.muted_until,
            telegram_state=self._state,
            now=time.time(),
        )

    async def _send_view(self, update: Update, view: dashboard.View) -> None:
        text = dashboard.render(view, await self._snapshot())
        await self._reply(update, text, self._dashboard_buttons(view))

    async def _cmd_dashboard(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._send_view(update, "home")

    async def _cmd_errors(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._send_view(update, "errors")

    async def _cmd_queue(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._send_view(update, "queue")

    async def _cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, HELP)

    async def _cmd_unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            await self._reply(update, "I did not understand that. /help lists what I can do.")

    async def _cmd_mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        text = sanitize_line(" ".join(context.args or []))  # it is echoed when unreadable
        if not text.strip():
            until = self.muted_until
            if until is None:
                await self._reply(update, "🔔 New-error messages are on. Mute with /mute 30m.")
            else:
                await self._reply(update, f"🔕 Muted until {_clock(until)}. /mute off to undo.")
            return
        try:
            seconds = parse_duration(text)
        except DurationError as exc:
            await self._reply(update, f"⚠️ {escape(str(exc))}")
            return
        if seconds is None:
            self._muted_until = None
            await self._reply(update, "🔔 New-error messages are back on.")
            return
        self._muted_until = time.time() + seconds
        await self._reply(
            update,
            f"🔕 New-error messages muted for {describe(seconds)}, until "
            f"{_clock(self._muted_until)}. Fixes ready for review still arrive. "
            "/mute off to undo.",
        )

    async def _cmd_retry(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if not args or not args[0].lstrip("#").isdigit():
            await self._reply(update, "Usage: /retry &lt;error id&gt; [instruction for the fix]")
            return
        # Control characters and escape sequences never reach the store, the console or
        # the prompt; the engine caps the length again.
        given = " ".join(args[1:])
        instruction = sanitize(given, len(given)).strip() or None
        if instruction and len(instruction) > MAX_INSTRUCTION_CHARS:
            await self._reply(
                update,
                f"⚠️ The instruction is too long (at most {MAX_INSTRUCTION_CHARS} characters).",
            )
            return
        user = update.effective_user
        assert user is not None  # the gate let only known users through
        result = await self._command(
            lambda: self._engine.retry(
                int(args[0].lstrip("#")), f"telegram:{user.id}", instruction=instruction
            )
        )
        icon = "🔁" if result.ok else "⚠️"
        await self._reply(update, f"{icon} {escape(result.message)}")

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None or self._signer is None:
            return
        try:
            callback = self._signer.decode(query.data or "")
        except ForgedCallback as exc:
            self._engine.notify(
                "warning",
                f"Telegram: refused a button from user {user.id} that this bot did not make "
                f"({exc})",
            )
            await self._answer(
                query, "This button is not valid (any more). Send /dashboard for fresh ones."
            )
            return
        if callback.action.startswith("view_"):
            await self._show_view(query, callback)
            return
        result = await self._command(lambda: self._decide(callback, f"telegram:{user.id}"))
        await self._answer(query, result.message, alert=not result.ok)
        kind: Literal["error", "attempt"] = (
            "error" if callback.action in ("approve", "skip") else "attempt"
        )
        self._mark((kind, callback.target))

    async def _show_view(self, query: CallbackQuery, callback: Callback) -> None:
        message = query.message
        app = self._app
        if not isinstance(message, Message) or app is None:
            await self._answer(query, "That message is too old to update; send /dashboard.")
            return
        view: dashboard.View = callback.action.removeprefix("view_")  # type: ignore[assignment]
        text = self._scrub_html(dashboard.render(view, await self._snapshot()))
        await self._delivery.run(
            "the dashboard",
            lambda: app.bot.edit_message_text(
                text,
                chat_id=message.chat.id,
                message_id=message.message_id,
                parse_mode=HTML,
                reply_markup=self._dashboard_buttons(view),
                link_preview_options=NO_PREVIEW,
            ),
        )
        await self._answer(query, "")

    async def _command(self, run: Callable[[], Any]) -> CommandResult:
        """An engine command whose failure becomes an answer, never a dead handler."""
        try:
            result: CommandResult = await run()
        except Exception as exc:
            log.exception("telegram: command failed")
            self._problem(f"Telegram: a command failed: {exc}")
            return CommandResult(False, f"failed: {exc}")
        return result

    async def _decide(self, callback: Callback, actor: str) -> CommandResult:
        """A button's engine command; buttons on a message that moved on are refused.

        The state check keeps an old "Approve Fix" from publishing a fix that reached
        review since (the engine's ``approve`` does both) and an old "Skip" from dropping a
        newer attempt; the engine's compare-and-set still settles any race.
        """
        store = self._engine.store
        if callback.action in ("approve", "skip"):
            error = await store.error(callback.target)
            if error is None:
                return CommandResult(False, f"no error {callback.target}")
            if error.state is not State.AWAITING_APPROVAL:
                label = STATE_LABELS.get(error.state, error.state.value)
                return CommandResult(False, f"already decided: error {error.id} is {label}")
            if callback.action == "approve":
                return await self._engine.approve(error.id, actor)
            return await self._engine.skip(error.id, actor)
        attempt = await store.attempt(callback.target)
        if attempt is None:
            return CommandResult(False, f"no attempt {callback.target}")
        if attempt.state is not State.REVIEW:
            label = STATE_LABELS.get(attempt.state, attempt.state.value)
            return CommandResult(False, f"already decided: attempt {attempt.id} is {label}")
        if callback.action == "publish":
            return await self._engine.publish(attempt.id, actor)
        if callback.action == "skip_attempt":
            return await self._engine.skip(attempt.error_id, actor)
        return await self._engine.retry(attempt.error_id, actor)

    async def _on_handler_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        log.error("telegram: handling an update failed", exc_info=error)
        self._problem(f"Telegram: handling an update failed: {error!r}")


def _chat_of(update: Update) -> Chat | None:
    """Where an update happened: the chat of a message, or of the message a button is on
    (None for a button on an inline message, which is in no chat the bot knows)."""
    query = update.callback_query
    if query is not None:
        return query.message.chat if query.message is not None else None
    return update.effective_chat


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M UTC")
