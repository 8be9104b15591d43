"""Long polling that never drops an update to a crash.

aiogram's own polling confirms an update (advances the offset) as it hands it
out, so a crash mid-handler loses the officer's message. Here an update is
confirmed only after it was handled and its update_id recorded: after a
kill -9, Telegram delivers it again and it is handled once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Update

from services.bot.middlewares import Throttle
from services.bot.models import HandledUpdate
from shared.store import Database

log = structlog.get_logger("bot")


async def handled(db: Database, update_id: int) -> bool:
    async with db.read() as session:
        return await session.get(HandledUpdate, update_id) is not None


async def mark_handled(db: Database, update_id: int) -> None:
    async with db._write() as session, session.begin():
        if await session.get(HandledUpdate, update_id) is None:
            session.add(HandledUpdate(update_id=update_id, handled_at=datetime.now(UTC)))


async def handle_once(bot: Bot, dp: Dispatcher, db: Database, update: Update) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service="bot", update_id=update.update_id)
    if await handled(db, update.update_id):
        log.info("update_already_handled")
        return
    await dp.feed_update(bot, update)
    await mark_handled(db, update.update_id)
    log.info("update_handled")


async def drop_throttled(bot: Bot, db: Database, update: Update, *, warn: bool) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service="bot", update_id=update.update_id)
    if warn and update.message is not None:
        await bot.send_message(update.message.chat.id,
                               "You are sending messages faster than I can help. Please wait a moment.")
    await mark_handled(db, update.update_id)
    log.info("update_throttled")


def chat_of(update: Update) -> int:
    if update.message is not None:
        return update.message.chat.id
    if update.callback_query is not None and update.callback_query.from_user is not None:
        return update.callback_query.from_user.id
    return 0


class Poller:
    """Updates of one chat are handled in order; chats run side by side, so one
    user waiting out flood control slows nobody else. The offset confirmed to
    Telegram never passes an update still being handled."""

    def __init__(self, bot: Bot, dp: Dispatcher, db: Database, *, timeout: int, throttle: Throttle | None = None) -> None:
        self.bot, self.dp, self.db, self.timeout = bot, dp, db, timeout
        self.throttle = throttle
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.done: set[int] = set()
        self._chat_tail: dict[int, asyncio.Task[None]] = {}

    async def _after(self, previous: asyncio.Task[None] | None, update: Update, *, throttled: bool, warn: bool) -> None:
        if previous is not None:
            await asyncio.wait({previous})  # order within a chat; its failure is its own
        try:
            if throttled:
                await drop_throttled(self.bot, self.db, update, warn=warn)
            else:
                await handle_once(self.bot, self.dp, self.db, update)
        except Exception:  # logged; the update stays unconfirmed and comes back after a restart
            log.exception("update_failed", update_id=update.update_id)
            raise

    def _start(self, update: Update) -> None:
        chat = chat_of(update)
        # Throttled on arrival, before the chat's queue: a flooding user's extra
        # messages are dropped at once instead of queueing behind flood control.
        allowed, warn = self.throttle.allow(chat) if self.throttle is not None else (True, False)
        task = asyncio.create_task(self._after(self._chat_tail.get(chat), update, throttled=not allowed, warn=warn),
                                   name=f"update:{update.update_id}")
        self.in_flight[update.update_id] = task
        self._chat_tail[chat] = task

        def finished(t: asyncio.Task[None], update_id: int = update.update_id) -> None:
            self.in_flight.pop(update_id, None)
            if not t.cancelled() and t.exception() is None:
                self.done.add(update_id)
            if self._chat_tail.get(chat) is t:
                del self._chat_tail[chat]

        task.add_done_callback(finished)

    def offset(self, seen: int | None) -> int | None:
        if self.in_flight:
            first = min(self.in_flight)
        elif seen is not None:
            first = seen + 1
        else:
            return None
        self.done = {u for u in self.done if u >= first}
        return first

    async def run(self, stopping: asyncio.Event) -> None:
        seen: int | None = None
        backoff = 0.5
        while not stopping.is_set():
            try:
                updates = await self.bot.get_updates(
                    offset=self.offset(seen), timeout=0 if self.in_flight else self.timeout,
                    allowed_updates=["message", "callback_query"],
                )
                backoff = 0.5
            except TelegramRetryAfter as err:
                await asyncio.sleep(err.retry_after)  # Telegram says when to come back
                continue
            except (TelegramNetworkError, TelegramServerError) as err:
                log.warning("get_updates_failed", error=str(err))
                await asyncio.sleep(backoff)  # back-off before asking again
                backoff = min(backoff * 2, 10)
                continue
            fresh = [u for u in updates if u.update_id not in self.in_flight and u.update_id not in self.done]
            for update in fresh:
                self._start(update)
                seen = max(seen or 0, update.update_id)
            if not fresh and self.in_flight:
                # everything returned is already in hand: wait for some of it to finish
                await asyncio.wait(set(self.in_flight.values()), timeout=0.5, return_when=asyncio.FIRST_COMPLETED)

    async def drain(self, timeout: float) -> None:
        """Let the updates in hand finish (at stop)."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight.values()), timeout=timeout)
