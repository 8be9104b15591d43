"""aiogram FSM storage in the bot's own database: a restart mid-conversation loses nothing.

A conversation's row holds its step (`state`) and what was said so far (`data`, the
draft of a report, an AAR or a handover note). `prune` forgets rows of conversations
that ended (no step, no data) and drafts nobody touched for long (see
services/bot/jobs.py).

`Drafts` keeps, besides, each person's unfinished /report, /aar and /handover (one per
kind) apart from the conversation: whatever ends a conversation (/cancel, another
command taking over the chat, a membership that ended), its answers stay until the
person resumes, starts again or submits it, or nobody touched them for long."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy import ColumnElement, and_, delete, or_
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from services.bot.models import SOURCE, ConversationDraft, ConversationState
from shared.clock import Clock, SystemClock
from shared.store import Database


def open_store(url: str, *, clock: Clock) -> Database:
    """The bot store, as the bot and its commands open it: its units of work write events as
    `SOURCE`, at `clock`'s time."""
    return Database(url, source=SOURCE, clock=clock)


def _key(key: StorageKey) -> str:
    return ":".join(str(part) for part in (key.bot_id, key.chat_id, key.user_id, key.thread_id,
                                           key.business_connection_id, key.destiny))


class SqlStorage(BaseStorage):
    """aiogram reads the state on every update. With `cache` (one process owns
    the conversations: polling, where Telegram serves a single getUpdates
    caller) reads after the first come from memory; writes always go through."""

    def __init__(self, db: Database, *, cache: bool = False, clock: Clock | None = None) -> None:
        self.db = db
        self.cache = cache
        self.clock: Clock = clock or SystemClock()
        self._rows: dict[str, tuple[str | None, str] | None] = {}  # key -> (state, data), None: no row
        self._complete = False  # every row is in _rows: a key not there has no row
        self.drafts = Drafts(db, self.clock)

    async def load(self) -> None:
        """Read every conversation in progress at once (at start), so no update waits for a read."""
        if not self.cache:
            return
        async with self.db.read() as session:
            rows = (await session.exec(select(ConversationState).where(
                col(ConversationState.state).is_not(None) | (col(ConversationState.data) != "{}")))).all()
        self._rows.update({row.key: (row.state, row.data) for row in rows})
        self._complete = True

    async def _row(self, key: StorageKey) -> tuple[str | None, str] | None:
        k = _key(key)
        if self.cache and (k in self._rows or self._complete):
            return self._rows.get(k)
        async with self.db.read() as session:
            row = await session.get(ConversationState, k)
        found = (row.state, row.data) if row else None
        if self.cache:
            self._rows[k] = found
        return found

    async def _write(self, key: StorageKey, **values: Any) -> None:
        k = _key(key)
        async with self.db.write() as session:
            row = await session.get(ConversationState, k)
            if row is None:
                row = ConversationState(key=k, updated_at=self.clock.now())
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = self.clock.now()
            session.add(row)
            written = (row.state, row.data)
        if self.cache:
            self._rows[k] = written

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._write(key, state=state.state if isinstance(state, State) else state)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._row(key)
        return row[0] if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(key, data=json.dumps(dict(data)))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._row(key)
        return json.loads(row[1]) if row else {}

    async def prune(self, *, finished_before: datetime, abandoned_before: datetime, batch: int = 1000) -> int:
        """Forget, at most `batch` rows in one short write transaction, conversations that ended
        (no step and no data left: what aiogram's `clear()` leaves) last touched before
        `finished_before`, and any conversation, a paused draft included, untouched since
        `abandoned_before`. Returns how many; the cache forgets them too (a row gone and a row
        never written read the same: no step, no data)."""
        row = ConversationState
        stale: ColumnElement[bool] = or_(
            and_(col(row.state).is_(None), col(row.data) == "{}", col(row.updated_at) < finished_before),
            col(row.updated_at) < abandoned_before,
        )
        async with self.db.write() as session:
            keys = list((await session.exec(select(row.key).where(stale).limit(batch))).all())
            gone: list[str] = []
            if keys:  # stale again at the delete: a conversation written to meanwhile stays
                result = await session.exec(delete(row).where(col(row.key).in_(keys), stale)
                                            .returning(col(row.key)))
                gone = list(result.scalars().all())
        for key in gone:
            self._rows.pop(key, None)
        return len(gone)

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Draft:
    step: str  # the conversation's state: the first question not answered yet
    data: dict[str, Any]
    updated_at: datetime


class Drafts:
    """A person's unfinished conversation of each kind ("report", "aar", "handover"), in the
    bot's own store only (what they say may be restricted: it goes nowhere else, and is never
    logged). Read when a conversation of its kind starts, written at each answer."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def get(self, person_id: uuid.UUID, kind: str) -> Draft | None:
        async with self.db.read() as session:
            row = await session.get(ConversationDraft, (person_id, kind))
        return Draft(row.step, json.loads(row.data), row.updated_at) if row else None

    async def keep(self, person_id: uuid.UUID, kind: str, step: str, data: Mapping[str, Any]) -> None:
        async with self.db.write() as session:
            row = await session.get(ConversationDraft, (person_id, kind))
            if row is None:
                row = ConversationDraft(person_id=person_id, kind=kind, step=step, updated_at=self.clock.now())
            row.step, row.data, row.updated_at = step, json.dumps(dict(data)), self.clock.now()
            session.add(row)

    async def drop(self, person_id: uuid.UUID, kind: str) -> None:
        async with self.db.write() as session:
            await session.exec(delete(ConversationDraft).where(
                col(ConversationDraft.person_id) == person_id, col(ConversationDraft.kind) == kind))

    async def prune(self, *, abandoned_before: datetime, batch: int = 1000) -> int:
        """Forget, at most `batch` at a time, drafts untouched since `abandoned_before`."""
        row = ConversationDraft
        stale = col(row.updated_at) < abandoned_before
        async with self.db.write() as session:
            keys = list((await session.exec(select(row.person_id, row.kind).where(stale).limit(batch))).all())
            if not keys:
                return 0
            result = await session.exec(delete(row).where(
                or_(*(and_(col(row.person_id) == p, col(row.kind) == k) for p, k in keys)), stale)
                .returning(col(row.kind)))
            return len(result.scalars().all())


def set_busy_timeout(db: Database, seconds: float) -> None:
    """How long a write waits for SQLite's lock before it fails ("database is locked");
    the poller then retries it. Set after the store's own pragmas, so this one holds."""
    if not db.is_sqlite:
        return

    def busy_timeout(dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        cursor.close()

    db.on_connect(busy_timeout)


async def writable(db: Database, *, wait: float = 0.25) -> bool:
    """Whether a write could start now: on SQLite, take the write lock (BEGIN
    IMMEDIATE) on a connection of its own and give it back; elsewhere a ping."""
    path = make_url(db.url).database if db.is_sqlite else None
    if not path or path == ":memory:":
        return await db.ping()

    def probe() -> bool:
        try:
            connection = sqlite3.connect(path, timeout=wait, isolation_level=None)
        except sqlite3.Error:
            return False
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False
        finally:
            connection.close()

    return await asyncio.to_thread(probe)
