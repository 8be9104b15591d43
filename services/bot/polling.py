"""Receiving updates without losing one to a crash: a durable inbox.

aiogram's own polling confirms an update (advances the offset) as it hands it
out, so a crash mid-handler loses the officer's message. Here every update is
first stored in the bot's inbox, then confirmed to Telegram, and marked when
handled; at start the inbox's unhandled updates are handled first. A kill -9
at any point leaves each update either unconfirmed (Telegram sends it again)
or in the inbox: it is handled, once.

A store that cannot be written (a backup holding the lock, a full disk) does
not stop the intake: storing and marking are retried with back-off, the outage
is logged once (and its end), readiness is false meanwhile, and an outage
longer than `give_up_after` ends the poller with `IntakeStalled` so the process
exits non-zero and its supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import structlog
from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Update
from aiogram.utils.i18n import gettext as _
from sqlalchemy import delete
from sqlalchemy import update as update_
from sqlmodel import col, select

from services.bot.i18n import Languages
from services.bot.middlewares import Throttle
from services.bot.models import InboxUpdate
from shared.store import Database

log = structlog.get_logger("bot")
T = TypeVar("T")
Mark = Callable[[Update], Awaitable[None]]


async def handled(db: Database, update_id: int) -> bool:
    async with db.read() as session:
        row = await session.get(InboxUpdate, update_id)
        return row is not None and row.handled_at is not None


async def receive(db: Database, updates: Sequence[Update]) -> list[Update]:
    """Store updates not yet in the inbox (one transaction); returns those still
    to handle (Telegram sends an update again until a later call confirms it)."""
    if not updates:
        return []
    async with db.write() as session:
        known = dict((await session.exec(
            select(InboxUpdate.update_id, InboxUpdate.handled_at)
            .where(col(InboxUpdate.update_id).in_([u.update_id for u in updates]))
        )).all())
        now = datetime.now(UTC)
        session.add_all([InboxUpdate(update_id=u.update_id, received_at=now, payload=u.model_dump_json(exclude_none=True))
                         for u in updates if u.update_id not in known])
    return [u for u in updates if known.get(u.update_id) is None]


async def mark_handled(db: Database, update: Update) -> None:
    async with db.write() as session:
        marked = await session.exec(update_(InboxUpdate).where(col(InboxUpdate.update_id) == update.update_id)
                                    .values(handled_at=datetime.now(UTC)))
        if marked.rowcount == 0:  # webhook updates arrive here without an inbox row
            session.add(InboxUpdate(update_id=update.update_id, received_at=datetime.now(UTC),
                                    payload=update.model_dump_json(exclude_none=True), handled_at=datetime.now(UTC)))


async def prune_inbox(db: Database, *, handled_before: datetime) -> int:
    """Forget updates handled before `handled_before` (Telegram never resends an
    update older than a day); unhandled ones stay whatever their age."""
    async with db.write() as session:
        result = await session.exec(delete(InboxUpdate).where(col(InboxUpdate.handled_at) < handled_before))
        return int(result.rowcount or 0)


async def unhandled(db: Database, bot: Bot) -> list[Update]:
    async with db.read() as session:
        rows = (await session.exec(
            select(InboxUpdate).where(col(InboxUpdate.handled_at).is_(None)).order_by(col(InboxUpdate.update_id))
        )).all()
    return [Update.model_validate_json(r.payload, context={"bot": bot}) for r in rows]


def _bind_log(update: Update) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service="bot", update_id=update.update_id)


async def handle_once(bot: Bot, dp: Dispatcher, db: Database, update: Update, *, checked: bool = False,
                      mark: Mark | None = None) -> None:
    """Handle an update and mark it handled; `checked` when the caller already
    knows it is unhandled (the poller learns that as it stores it); `mark`
    replaces the plain marking (the poller's retries it through an outage)."""
    _bind_log(update)
    if not checked and await handled(db, update.update_id):
        log.info("update_already_handled")
        return
    await dp.feed_update(bot, update)
    await (mark(update) if mark is not None else mark_handled(db, update))
    log.info("update_handled")


async def drop_throttled(bot: Bot, db: Database, update: Update, *, warn: bool, languages: Languages,
                         mark: Mark | None = None) -> None:
    _bind_log(update)
    if warn and update.message is not None:
        with languages.using(await languages.locale_for(update.message.from_user)):
            text = _("You are sending messages faster than I can help. Please wait a moment.")
        await bot.send_message(update.message.chat.id, text)
    await (mark(update) if mark is not None else mark_handled(db, update))
    log.info("update_throttled")


class IntakeStalled(RuntimeError):
    """The inbox could not be written for longer than the poller may wait."""


class StoreOutage:
    """Writes to the bot's store retried with back-off through an outage,
    logged once when it starts and once when it ends (never per attempt)."""

    def __init__(self, *, give_up_after: float, first_backoff: float = 0.2, max_backoff: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.give_up_after = give_up_after
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.since: float | None = None  # monotonic start of the outage in progress
        self.outages = 0

    @property
    def writable(self) -> bool:
        return self.since is None

    def _failed(self, what: str, exc: Exception) -> None:
        if self.since is None:
            self.since = self.clock()
            self.outages += 1
            log.error("bot_store_unwritable", step=what, error=(str(exc) or type(exc).__name__)[:300])

    def _succeeded(self) -> None:
        if self.since is not None:
            log.warning("bot_store_writable_again", outage_seconds=round(self.clock() - self.since, 1))
            self.since = None

    async def retry(self, what: str, write: Callable[[], Awaitable[T]], stopping: asyncio.Event) -> T | None:
        """`write()`'s result once it succeeds; None if stopping first. Raises
        IntakeStalled when the outage has lasted longer than `give_up_after`."""
        backoff = self.first_backoff
        while True:
            try:
                result = await write()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store refused (locked, full, away): wait and write again
                self._failed(what, exc)
            else:
                self._succeeded()
                return result
            assert self.since is not None
            if self.clock() - self.since > self.give_up_after:
                log.critical("bot_store_outage_too_long", seconds=round(self.clock() - self.since, 1))
                raise IntakeStalled(f"the bot's store has not been writable for {self.give_up_after:.0f}s")
            try:
                await asyncio.wait_for(stopping.wait(), timeout=backoff)
                return None  # stopping: what is not stored stays unconfirmed at Telegram
            except TimeoutError:
                backoff = min(backoff * 2, self.max_backoff)


def chat_of(update: Update) -> int:
    if update.message is not None:
        return update.message.chat.id
    if update.callback_query is not None and update.callback_query.from_user is not None:
        return update.callback_query.from_user.id
    return 0


class Poller:
    """Updates of one chat are handled in order; chats run side by side, so one
    user waiting out flood control slows nobody else."""

    def __init__(self, bot: Bot, dp: Dispatcher, db: Database, *, timeout: int, languages: Languages,
                 throttle: Throttle | None = None, outage: StoreOutage | None = None) -> None:
        self.bot, self.dp, self.db, self.timeout = bot, dp, db, timeout
        self.languages = languages
        self.throttle = throttle
        self.outage = outage or StoreOutage(give_up_after=300.0)
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self._chat_tail: dict[int, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._fatal: asyncio.Future[IntakeStalled] | None = None

    @property
    def healthy(self) -> bool:
        """False while the inbox cannot be written."""
        return self.outage.writable

    async def _mark(self, update: Update) -> None:
        # the answer is out: the mark must land, or a restart would answer again
        await self.outage.retry("mark_handled", partial(mark_handled, self.db, update), self._stopping)

    async def _after(self, previous: asyncio.Task[None] | None, update: Update, *, throttled: bool, warn: bool) -> None:
        if previous is not None:
            await asyncio.wait({previous})  # order within a chat; its failure is its own
        try:
            if throttled:
                await drop_throttled(self.bot, self.db, update, warn=warn, languages=self.languages, mark=self._mark)
            else:
                await handle_once(self.bot, self.dp, self.db, update, checked=True, mark=self._mark)
        except IntakeStalled as stalled:  # the poller gives up as a whole: the process exits, is restarted
            if self._fatal is not None and not self._fatal.done():
                self._fatal.set_result(stalled)
            raise
        except Exception:  # logged; it stays unhandled in the inbox and is retried at the next start
            log.exception("update_failed", update_id=update.update_id)
            raise

    def _start(self, update: Update, *, replay: bool = False) -> None:
        chat = chat_of(update)
        # Throttled on arrival, before the chat's queue: a flooding user's extra
        # messages are dropped at once instead of queueing behind flood control.
        allowed, warn = (True, False)
        if self.throttle is not None and not replay:
            allowed, warn = self.throttle.allow(chat)
        task = asyncio.create_task(self._after(self._chat_tail.get(chat), update, throttled=not allowed, warn=warn),
                                   name=f"update:{update.update_id}")
        self.in_flight[update.update_id] = task
        self._chat_tail[chat] = task

        def finished(t: asyncio.Task[None], update_id: int = update.update_id) -> None:
            self.in_flight.pop(update_id, None)
            if self._chat_tail.get(chat) is t:
                del self._chat_tail[chat]

        task.add_done_callback(finished)

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until stopping; raises IntakeStalled when the store stays unwritable too long."""
        self._stopping = stopping
        self._fatal = asyncio.get_running_loop().create_future()
        intake = asyncio.ensure_future(self._intake(stopping))
        try:
            waiting: set[asyncio.Future[Any]] = {intake, self._fatal}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not intake.done():
                intake.cancel()
                await asyncio.wait({intake})
        if self._fatal.done():
            raise self._fatal.result()
        intake.result()

    async def _intake(self, stopping: asyncio.Event) -> None:
        for update in await unhandled(self.db, self.bot):  # what a crash left in the inbox
            log.info("update_replayed_from_inbox", update_id=update.update_id)
            self._start(update, replay=True)
        offset: int | None = None
        backoff = 0.5
        while not stopping.is_set():
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=self.timeout,
                                                     allowed_updates=["message", "callback_query"])
                backoff = 0.5
            except TelegramRetryAfter as err:
                await asyncio.sleep(err.retry_after)  # Telegram says when to come back
                continue
            except (TelegramNetworkError, TelegramServerError) as err:
                log.warning("get_updates_failed", error=str(err))
                await asyncio.sleep(backoff)  # back-off before asking again
                backoff = min(backoff * 2, 10)
                continue
            new = [u for u in updates if u.update_id not in self.in_flight]
            fresh = await self.outage.retry("store_updates", partial(receive, self.db, new), stopping)
            if fresh is None:  # stopping before they could be stored: Telegram keeps them
                return
            for update in fresh:  # stored before the next call confirms them
                self._start(update)
            if updates:
                offset = updates[-1].update_id + 1

    async def drain(self, timeout: float) -> None:
        """Let the updates in hand finish (at stop)."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight.values()), timeout=timeout)
