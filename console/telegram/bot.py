"""The Telegram bot: engine events out to the phone, button taps and commands back in.

The bot is a view. It renders what the engine publishes and turns a tap into the same engine
command the keyboard uses (``approve``/``skip``/``retry``/``publish`` with the actor
``telegram:<user id>``), so a tap and a key press can never disagree: the store's
compare-and-set lets exactly one of them act and the other hears "already decided".

It runs on the console's asyncio loop (python-telegram-bot's ``Application`` started by
hand, never ``run_polling``), and Telegram trouble never stops the console: calls go through
:class:`~console.telegram.delivery.Delivery`, and the engine listener only marks messages to
refresh, it never waits on the network. The messages about errors and attempts, and which
buttons they carry, are :mod:`console.telegram.cards`'.
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
from datetime import UTC, datetime
from typing import Any, Literal

from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
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

import console.telegram.dashboard as dashboard
from console.budget import QueueHold
from console.config import TelegramConfig
from console.engine import Engine
from console.events import CommandResult, EngineEvent, TelegramChanged
from console.fix.prompt import sanitize, sanitize_line
from console.history import DEFAULT_PERIOD, PERIODS, HistoryQuery
from console.models import attempt_name
from console.mute import DurationError, describe, parse_duration, parse_mute
from console.telegram import budget
from console.telegram.callbacks import Action, Callback, CallbackSigner, ForgedCallback
from console.telegram.cards import HTML, NO_PREVIEW, CardSync, scrub_html
from console.telegram.delivery import Delivery
from console.telegram.limits import ANSWER_LIMIT, clip, escape
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

BotState = Literal["on", "off", "error"]
POLL_TIMEOUT_SECONDS = 10.0
# An open or closed message whose state did not change is edited at most this often
# (a recurring error bumps its count on every batch; the chat need not follow each one).
EDIT_INTERVAL_SECONDS = 30.0
RECONNECT_MAX_SECONDS = 300.0
MAX_INSTRUCTION_CHARS = 2000
MUTE_BUTTON_MINUTES = 60.0  # a regression message's Mute 1h
STATUS_DAYS = 7
COMMANDS = (
    ("dashboard", "Dashboard with queue, errors and system status"),
    ("errors", "Recent errors"),
    ("history", "What was fixed and at what cost: /history, /history 7d"),
    ("queue", "Errors waiting or being fixed"),
    ("status", "Claude's cost per day and what holds the fix queue"),
    ("mute", "Mute new-error messages (/mute 30m, /mute off) or one error (/mute 12 2h or 50x)"),
    ("retry", "Retry a fix: /retry <error id> [instruction]"),
    ("help", "What this bot does"),
)
HELP = (
    "🤖 <b>AutoFix</b> tells you about new production errors and fixes ready for review.\n\n"
    "Buttons: <b>Approve Fix</b> starts a fix, <b>Skip</b> shelves the error; on a ready fix "
    "<b>Open PR</b> pushes it and opens the pull request, <b>Retry</b> starts again. When a "
    "merged fix did not hold, the 🚨 REGRESSED message offers <b>Revert</b> (opens a revert "
    "pull request), <b>Retry</b> (a new attempt told about the fix that failed) and "
    "<b>Mute 1h</b>.\n\n"
    "/dashboard — queue, recent errors and system status in one message\n"
    "/errors — recent errors\n"
    "/history [24h|7d|30d|90d] — fixes, success rates, time to PR, cost, regressions "
    "(default the last 30 days)\n"
    "/queue — errors waiting or being fixed\n"
    "/status — Claude's cost per day against the daily budget\n"
    "/mute 30m | 2h | off — pause new-error messages\n"
    "/mute &lt;error id&gt; 2h | 50x | 2h or 50x | off — mute one error for a while or N "
    "more occurrences\n"
    "/retry &lt;error id&gt; [instruction] — retry a fix with an extra instruction\n"
    "/help — this text"
)


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
        self._sync_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._poller: Poller | None = None
        self._last_hold: QueueHold | None = None
        self._broadcasts: set[asyncio.Task[None]] = set()
        self._poll_task: asyncio.Task[None] | None = None
        self._muted_until: float | None = None
        self._names: dict[int, str] = {}
        self._chat_set = frozenset(self._chats)
        self._stranger_refusals = Throttle(REFUSAL_PERIOD_SECONDS)
        self._chat_refusals = Throttle(REFUSAL_PERIOD_SECONDS)
        self._refusals = RefusalLane(self._delivery)
        self._cards = CardSync(
            engine,
            self._delivery,
            self._chats,
            app=lambda: self._app,
            signer=lambda: self._signer,
            enabled=lambda: self._enabled,
            muted=self.muted,
            problem=self._problem,
            names=self._names,
            edit_interval=edit_interval,
        )

    # --- the engine's events ----------------------------------------------------------------

    def _on_event(self, event: EngineEvent) -> None:
        """The engine listener: cards are marked for refreshing; a change in what holds the
        fix queue (the daily budget, a rate limit) is told to every chat."""
        self._cards.on_event(event)
        if isinstance(event, QueueHold):
            text = budget.change_text(self._last_hold, event)
            self._last_hold = event
            if text is not None and self._enabled:
                task = asyncio.create_task(self._broadcast(text), name="telegram-hold")
                self._broadcasts.add(task)
                task.add_done_callback(self._broadcasts.discard)

    async def _broadcast(self, text: str) -> None:
        app = self._app
        if app is None:
            return
        for chat_id in self._chats:
            await self._delivery.run(
                "a notice",
                functools.partial(
                    app.bot.send_message,
                    chat_id,
                    scrub_html(text),
                    parse_mode=HTML,
                    link_preview_options=NO_PREVIEW,
                ),
            )

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
            self._sync_task = asyncio.create_task(self._cards.run(), name="telegram-sync")
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
            self._sync_task = asyncio.create_task(self._cards.run(), name="telegram-sync")
        if self._app is None:
            await self._connect()
        elif self._poll_task is None:
            self._start_polling(self._app)
            self._set_state("on", None, force=True)
        self._cards.mark_all()  # catch up on what changed while off

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
                async with asyncio.timeout(5):
                    await self._poller.confirm()

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

    # --- buttons ----------------------------------------------------------------------------

    def muted(self) -> bool:
        return self.muted_until is not None

    def _button(self, label: str, action: Action, target: int = 0) -> InlineKeyboardButton:
        assert self._signer is not None
        return InlineKeyboardButton(label, callback_data=self._signer.encode(action, target))

    def _dashboard_buttons(self, view: dashboard.View) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [
                    self._button("Queue Status", "view_queue"),
                    self._button("Recent Errors", "view_errors"),
                ],
                [
                    self._button("System Status", "view_system"),
                    self._button("History", "view_history"),
                ],
                [self._button("Refresh", f"view_{view}")],  # type: ignore[arg-type]
            ]
        )

    # --- updates from Telegram -------------------------------------------------------------

    def _add_handlers(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        app.add_handler(CommandHandler(["start", "dashboard"], self._cmd_dashboard))
        app.add_handler(CommandHandler("errors", self._cmd_errors))
        app.add_handler(CommandHandler("history", self._cmd_history))
        app.add_handler(CommandHandler("queue", self._cmd_queue))
        app.add_handler(CommandHandler("status", self._cmd_status))
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
                scrub_html(text),
                parse_mode=HTML,
                reply_markup=buttons,
                link_preview_options=NO_PREVIEW,
            ),
        )

    async def _snapshot(
        self, view: dashboard.View, period: str = DEFAULT_PERIOD
    ) -> dashboard.Snapshot:
        store = self._engine.store
        now = time.time()
        wanted = HistoryQuery(period)
        history = await store.history(wanted, now) if view == "history" else None
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
            now=now,
            history=history,
        )

    async def _send_view(
        self, update: Update, view: dashboard.View, period: str = DEFAULT_PERIOD
    ) -> None:
        text = dashboard.render(view, await self._snapshot(view, period))
        await self._reply(update, text, self._dashboard_buttons(view))

    async def _cmd_dashboard(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._send_view(update, "home")

    async def _cmd_history(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/history`` for the last 30 days, ``/history 7d`` (24h, 7d, 30d, 90d) for another."""
        period = sanitize_line(" ".join(context.args or [])).strip().lower() or DEFAULT_PERIOD
        if period not in PERIODS:
            await self._reply(
                update,
                f"⚠️ {escape(clip(period, 40))} is not a period; one of "
                + ", ".join(PERIODS)
                + " (/history 7d)",
            )
            return
        await self._send_view(update, "history", period)

    async def _cmd_errors(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._send_view(update, "errors")

    async def _cmd_queue(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._send_view(update, "queue")

    async def _cmd_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        days = await self._engine.store.daily_costs(STATUS_DAYS)
        await self._reply(update, budget.status_text(self._engine.gate.hold, days, time.time()))

    async def _cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._reply(update, HELP)

    async def _cmd_unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            await self._reply(update, "I did not understand that. /help lists what I can do.")

    async def _cmd_mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) > 1 and args[0].lstrip("#").isdigit():
            await self._mute_error(update, int(args[0].lstrip("#")), " ".join(args[1:]))
            return
        text = sanitize_line(" ".join(args))  # it is echoed when unreadable
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

    async def _mute_error(self, update: Update, error_id: int, given: str) -> None:
        """``/mute <error id> 2h``, ``50x`` or ``2h or 50x``: one error's mute, as the
        console's ``m``; ``off`` ends it."""
        text = sanitize_line(given)  # it is echoed when unreadable
        user = update.effective_user
        assert user is not None  # the gate let only known users through
        actor = f"telegram:{user.id}"
        if text.strip().lower() in ("off", "unmute"):
            result = await self._command(lambda: self._engine.unmute(error_id, actor))
        else:
            try:
                chosen = parse_mute(text)
            except DurationError as exc:
                await self._reply(update, f"⚠️ {escape(str(exc))}")
                return
            result = await self._command(
                lambda: self._engine.mute(
                    error_id, actor, minutes=chosen.minutes, occurrences=chosen.occurrences
                )
            )
        icon = "🔕" if result.ok else "⚠️"
        await self._reply(update, f"{icon} {escape(result.message)}")

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
        kind: Literal["error", "attempt", "merge"] = (
            "error"
            if callback.action in ("approve", "skip")
            else "merge"
            if callback.action in ("stop_merge", "resume_merge")
            else "attempt"
        )
        self._cards.mark((kind, callback.target))
        if callback.action in ("revert", "mute", "retry"):
            attempt = await self._engine.store.attempt(callback.target)
            if attempt is not None:
                self._cards.mark(("regressed", attempt.error_id))

    async def _show_view(self, query: CallbackQuery, callback: Callback) -> None:
        message = query.message
        app = self._app
        if not isinstance(message, Message) or app is None:
            await self._answer(query, "That message is too old to update; send /dashboard.")
            return
        view: dashboard.View = callback.action.removeprefix("view_")  # type: ignore[assignment]
        text = scrub_html(dashboard.render(view, await self._snapshot(view)))
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
        """A button's engine command. Each button names what it was about (an error before
        any attempt, or one attempt), so the engine refuses it once that has moved on: an
        old "Skip" never drops a newer attempt."""
        engine = self._engine
        if callback.action == "approve":
            return await engine.approve(callback.target, actor)
        if callback.action == "skip":
            return await engine.skip(callback.target, actor, attempt_id=None)
        if callback.action == "publish":
            return await engine.publish(callback.target, actor)
        attempt = await engine.store.attempt(callback.target)
        if attempt is None:
            return CommandResult(False, f"no attempt {callback.target}")
        if callback.action == "skip_attempt":
            return await engine.skip(attempt.error_id, actor, attempt_id=attempt.id)
        if callback.action == "stop_merge":
            return await engine.stop_merge(attempt.error_id, actor, attempt_id=attempt.id)
        if callback.action == "resume_merge":
            return await engine.resume_merge(attempt.error_id, actor)
        if callback.action in ("revert", "mute"):
            error = await engine.store.error(attempt.error_id)
            if error is None or error.current_attempt_id != attempt.id:
                return CommandResult(False, f"already decided: {attempt_name(attempt)} is done")
            if callback.action == "mute":
                return await engine.mute(error.id, actor, minutes=MUTE_BUTTON_MINUTES)
            return await engine.revert(error.id, actor)
        return await engine.retry(attempt.error_id, actor, attempt_id=attempt.id)

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
