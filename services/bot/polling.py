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


async def poll(bot: Bot, dp: Dispatcher, db: Database, *, timeout: int, stopping: asyncio.Event) -> None:
    offset: int | None = None
    backoff = 0.5
    while not stopping.is_set():
        try:
            updates = await bot.get_updates(offset=offset, timeout=timeout, allowed_updates=["message", "callback_query"])
            backoff = 0.5
        except TelegramRetryAfter as err:
            await asyncio.sleep(err.retry_after)  # Telegram says when to come back
            continue
        except (TelegramNetworkError, TelegramServerError) as err:
            log.warning("get_updates_failed", error=str(err))
            await asyncio.sleep(backoff)  # back-off before asking again
            backoff = min(backoff * 2, 10)
            continue
        for update in updates:
            await handle_once(bot, dp, db, update)
            offset = update.update_id + 1  # confirmed with the next getUpdates
            if stopping.is_set():
                break
