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

Two pollers at once (a rollout that overlaps them, a second copy started by
mistake; in production they share one database): Telegram ends one's long poll
with 409 Conflict. The poller backs off (growing, capped), logs the episode once
and its end, stays ready (see `Poller.healthy`) and goes on. An update both are
sent is handled by the one whose insert into the inbox succeeds. An update the
other took stays in its hands while that poller renews its claim (the row's
`received_at`, every third of `claim_seconds`); a claim left unrenewed for
`claim_seconds` (its poller was killed or stopped mid-update) is taken over,
so it is handled once. No clocks of two hosts are compared: only whether the
claim moved.
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
    ClientDecodeError,
    TelegramConflictError,
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
from shared.store import Database, prune_in_batches, upsert

log = structlog.get_logger("bot")
T = TypeVar("T")
Mark = Callable[[Update], Awaitable[None]]


async def handled(db: Database, update_id: int) -> bool:
    async with db.read() as session:
        row = await session.get(InboxUpdate, update_id)
        return row is not None and row.handled_at is not None


async def receive(db: Database, updates: Sequence[Update]) -> list[Update]:
    """Store updates not yet in the inbox (one transaction); returns those this call
    stored, for this poller to handle. Telegram sends an update again until a later
    call confirms it, to this poller or to another one at the same time: the insert
    decides who handles it; one already stored is someone's (or a crash's, taken
    over by `Claims`)."""
    if not updates:
        return []
    now = datetime.now(UTC)
    table = InboxUpdate.__table__  # type: ignore[attr-defined]
    async with db.write() as session:
        stored = set((await session.exec(
            upsert(session, table)
            .values([{"update_id": u.update_id, "received_at": now, "payload": u.model_dump_json(exclude_none=True)}
                     for u in updates])
            .on_conflict_do_nothing(index_elements=["update_id"])
            .returning(table.c.update_id)
        )).scalars())
    return [u for u in updates if u.update_id in stored]


async def mark_handled(db: Database, update: Update) -> None:
    async with db.write() as session:
        marked = await session.exec(update_(InboxUpdate).where(col(InboxUpdate.update_id) == update.update_id)
                                    .values(handled_at=datetime.now(UTC)))
        if marked.rowcount == 0:  # webhook updates arrive here without an inbox row
            session.add(InboxUpdate(update_id=update.update_id, received_at=datetime.now(UTC),
                                    payload=update.model_dump_json(exclude_none=True), handled_at=datetime.now(UTC)))


async def prune_inbox(db: Database, *, handled_before: datetime, batch: int = 1000, pause: float = 0.05) -> int:
    """Forget updates handled before `handled_before` (Telegram never resends an
    update older than a day); unhandled ones stay whatever their age. At most
    `batch` at a time, each batch a short write transaction (the poller's writes
    get the lock in between)."""
    oldest = (select(InboxUpdate.update_id).where(col(InboxUpdate.handled_at) < handled_before)
              .order_by(col(InboxUpdate.handled_at)).limit(batch))

    async def step() -> int:
        async with db.write() as session:
            result = await session.exec(delete(InboxUpdate).where(col(InboxUpdate.update_id).in_(oldest.scalar_subquery())))
            return int(result.rowcount or 0)

    return await prune_in_batches(step, batch=batch, pause=pause)


async def unhandled(db: Database, bot: Bot) -> list[Update]:
    async with db.read() as session:
        rows = (await session.exec(
            select(InboxUpdate).where(col(InboxUpdate.handled_at).is_(None)).order_by(col(InboxUpdate.update_id))
        )).all()
    return [Update.model_validate_json(r.payload, context={"bot": bot}) for r in rows]


RELEASED = datetime(1970, 1, 1)  # a claim its poller gave up (it failed there, at a stop): taken over at once


async def release_claims(db: Database, update_ids: Sequence[int]) -> None:
    async with db.write() as session:
        await session.exec(update_(InboxUpdate).where(col(InboxUpdate.update_id).in_(update_ids),
                                                      col(InboxUpdate.handled_at).is_(None))
                           .values(received_at=RELEASED))


async def renew_claims(db: Database, update_ids: Sequence[int]) -> None:
    """This poller still holds these updates: their claim moves (see `Claims`)."""
    async with db.write() as session:
        await session.exec(update_(InboxUpdate).where(col(InboxUpdate.update_id).in_(update_ids),
                                                      col(InboxUpdate.handled_at).is_(None))
                           .values(received_at=datetime.now(UTC)))


async def claims_of_unhandled(db: Database) -> dict[int, datetime]:
    async with db.read() as session:
        return dict((await session.exec(select(InboxUpdate.update_id, InboxUpdate.received_at)
                                        .where(col(InboxUpdate.handled_at).is_(None)))).all())


async def take_over(db: Database, bot: Bot, update_id: int, *, claim_seen: datetime) -> Update | None:
    """The update, if its claim is still the one seen (nobody renewed or took it meanwhile): now ours."""
    async with db.write() as session:
        taken = await session.exec(update_(InboxUpdate)
                                   .where(col(InboxUpdate.update_id) == update_id, col(InboxUpdate.handled_at).is_(None),
                                          col(InboxUpdate.received_at) == claim_seen)
                                   .values(received_at=datetime.now(UTC)))
        if taken.rowcount != 1:
            return None
        row = await session.get(InboxUpdate, update_id)
    assert row is not None
    return Update.model_validate_json(row.payload, context={"bot": bot})


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


class ConflictEpisodes:
    """Telegram's 409 to getUpdates, logged once per episode: it starts with the first
    conflict and ends when `quiet_after` seconds pass without one (the other poller
    would have asked again by then: it is gone)."""

    def __init__(self, *, quiet_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_after = quiet_after
        self.clock = clock
        self.since: float | None = None  # start of the episode in progress
        self.last: float = 0.0
        self.conflicts = 0  # in the episode in progress
        self.episodes = 0

    def seen(self, detail: str) -> None:
        now = self.clock()
        if self.since is None:
            self.since, self.conflicts = now, 0
            self.episodes += 1
            log.warning("get_updates_conflict", detail=detail[:200])
        self.conflicts += 1
        self.last = now

    def calm(self) -> bool:
        """True when no episode is in progress (ending the one whose quiet time is over)."""
        if self.since is not None and self.clock() - self.last > self.quiet_after:
            log.warning("get_updates_conflict_ended", seconds=round(self.last - self.since, 1),
                        conflicts=self.conflicts)
            self.since = None
        return self.since is None


class Poller:
    """Updates of one chat are handled in order; chats run side by side, so one
    user waiting out flood control slows nobody else."""

    def __init__(self, bot: Bot, dp: Dispatcher, db: Database, *, timeout: int, languages: Languages,
                 throttle: Throttle | None = None, outage: StoreOutage | None = None, claim_seconds: float = 10.0,
                 conflict_backoff: tuple[float, float] = (1.0, 15.0)) -> None:
        self.bot, self.dp, self.db, self.timeout = bot, dp, db, timeout
        self.claim_seconds = claim_seconds
        self.conflict_backoff = conflict_backoff  # (first, cap) seconds
        self.conflict = ConflictEpisodes(quiet_after=conflict_backoff[1] + timeout + 5.0)
        self._claims_seen: dict[int, tuple[datetime, float]] = {}  # update id -> (claim, when first seen so)
        self._failed_here: set[int] = set()  # not taken over here again: retried elsewhere or at the next start
        self.languages = languages
        self.throttle = throttle
        self.outage = outage or StoreOutage(give_up_after=300.0)
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self._chat_tail: dict[int, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._fatal: asyncio.Future[IntakeStalled] | None = None

    @property
    def healthy(self) -> bool:
        """False while the inbox cannot be written. A conflict (another poller) leaves
        it true: in a rollout the new pod must become ready for the old one to go, and
        against a stray copy elsewhere a restart would change nothing; updates still
        come in while the two take turns. The episode is in the logs."""
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
            self._failed_here.add(update.update_id)
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
        claims = asyncio.ensure_future(self._keep_claims(stopping))
        try:
            waiting: set[asyncio.Future[Any]] = {intake, self._fatal}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            claims.cancel()
            if not intake.done():
                intake.cancel()
            await asyncio.wait({intake, claims})
        if self._fatal.done():
            raise self._fatal.result()
        intake.result()

    async def _keep_claims(self, stopping: asyncio.Event) -> None:
        """Renew the claims of the updates in hand; take over those whose claim has
        not moved for `claim_seconds` (what a crash or a stopped poller left)."""
        while not stopping.is_set():
            try:
                if self.in_flight:
                    await renew_claims(self.db, list(self.in_flight))
                await self._take_over_abandoned()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is away (the intake says so): next round
                log.warning("inbox_claims_not_checked", error=(str(exc) or type(exc).__name__)[:300])
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.claim_seconds / 3)
            except TimeoutError:
                pass

    async def _take_over_abandoned(self) -> None:
        now = time.monotonic()
        claims = {uid: claim for uid, claim in (await claims_of_unhandled(self.db)).items() if uid not in self.in_flight}
        for uid in set(self._claims_seen) - set(claims):
            del self._claims_seen[uid]
        self._failed_here &= set(claims)
        for uid, claim in sorted(claims.items()):
            if uid in self._failed_here:
                continue
            seen = self._claims_seen.get(uid)
            released = claim.replace(tzinfo=None) == RELEASED
            if not released and (seen is None or seen[0] != claim):
                self._claims_seen[uid] = (claim, now)
            elif (released or now - seen[1] >= self.claim_seconds) and uid not in self.in_flight:  # type: ignore[index]
                del self._claims_seen[uid]
                update = await take_over(self.db, self.bot, uid, claim_seen=claim)
                if update is not None:
                    log.info("update_replayed_from_inbox", update_id=uid)
                    self._start(update, replay=True)

    async def _intake(self, stopping: asyncio.Event) -> None:
        offset: int | None = None
        backoff = 0.5
        conflict_backoff = self.conflict_backoff[0]
        while not stopping.is_set():
            try:
                updates = await self.bot.get_updates(offset=offset, timeout=self.timeout,
                                                     allowed_updates=["message", "callback_query"])
                backoff = 0.5
                if self.conflict.calm():
                    conflict_backoff = self.conflict_backoff[0]
            except TelegramRetryAfter as err:
                await asyncio.sleep(err.retry_after)  # Telegram says when to come back
                continue
            except TelegramConflictError as err:
                # Another poller of this bot asked after us (a rollout, a stray copy): let it
                # have the long poll a while, then ask again; whoever asks gets the updates.
                self.conflict.seen(err.message)
                await asyncio.sleep(conflict_backoff)
                conflict_backoff = min(conflict_backoff * 2, self.conflict_backoff[1])
                continue
            except (TelegramNetworkError, TelegramServerError, ClientDecodeError) as err:
                # ClientDecodeError: an HTML error page from Telegram's edge instead of JSON, a 5xx in effect
                log.warning("get_updates_failed", error=str(err)[:300], kind=type(err).__name__)
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
        """Let the updates in hand finish (at stop), their claims renewed meanwhile; then
        give up the claims of those that failed here, for another poller to take at once."""
        if self.in_flight:
            finishing = asyncio.ensure_future(asyncio.wait(set(self.in_flight.values()), timeout=timeout))
            while not finishing.done():
                try:
                    if self.in_flight:
                        await renew_claims(self.db, list(self.in_flight))
                except Exception as exc:  # the store is away: what is not finished is taken over later
                    log.warning("inbox_claims_not_renewed", error=(str(exc) or type(exc).__name__)[:300])
                await asyncio.wait({finishing}, timeout=self.claim_seconds / 3)
        failed = sorted(self._failed_here - set(self.in_flight))
        if failed:
            try:
                await release_claims(self.db, failed)
            except Exception as exc:  # taken over when their claims expire instead
                log.warning("inbox_claims_not_released", error=(str(exc) or type(exc).__name__)[:300])
