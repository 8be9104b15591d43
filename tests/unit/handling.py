"""Handlers applied as their consumer applies them, without NATS or other processes.

`apply` wraps the event in an envelope and gives it to `shared.store.Transactional`, the
consumers' own path: the idempotency record, the handler's changes and its events commit
together in a real SQLite file. What the handler emitted comes back as envelopes, read from
the outbox the relay would publish from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Table
from sqlmodel import col, select

from shared.clock import Clock
from shared.events import Envelope, Event
from shared.store import Database, OutboxMessage, Prefetch, Transactional


OPENED: list[Database] = []  # closed after each test (`closing_stores`), in the test's own event loop


async def store(tmp_path: Path, tables: tuple[Table, ...], name: str = "service") -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}")
    OPENED.append(db)
    await db.create_tables(tables)
    return db


async def closing_stores() -> AsyncIterator[None]:
    """A fixture's body: the stores a test opened are closed before its event loop is (a connection
    collected later would answer a loop that is gone)."""
    yield
    while OPENED:
        await OPENED.pop().dispose()


def envelope_of(event: Event, *, at: datetime) -> Envelope:
    """The event as its owner publishes it (the owner is the first word of its type)."""
    return Envelope.wrap(event, source=type(event).type.split(".")[0], occurred_at=at)


async def apply(handler: Callable[..., Awaitable[None]], event: Event | Envelope, *, db: Database, clock: Clock,
                source: str, lookup: Callable[..., Awaitable[Any]] | None = None, **bound: Any) -> list[Envelope]:
    """Apply one event (or an envelope, to apply the same one twice) with `handler` and the
    settings or clients `bound` to it, after its `lookup` (its clients bound); the envelopes it
    emitted, in order."""
    envelope = event if isinstance(event, Envelope) else envelope_of(event, at=clock.now())
    decoded = envelope.decode()
    async with db.read() as session:
        before = len((await session.exec(select(OutboxMessage.seq))).all())
    applied = Transactional(db=db, clock=clock, source=source, consumer=f"{source}--test",
                            apply={type(decoded): partial(handler, **bound)},
                            lookup={type(decoded): lookup} if lookup is not None else None)
    await applied.one(envelope, decoded)
    async with db.read() as session:
        rows = (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.seq)))).all()
    return [Envelope.from_bytes(row.payload) for row in rows[before:]]


async def apply_batch(handlers: dict[type[Event], Callable[..., Awaitable[None]]], envelopes: list[Envelope], *,
                      db: Database, clock: Clock, source: str, prefetch: Prefetch | None = None) -> None:
    """Apply a fetched batch in one transaction, as `Transactional.many` does for a consumer."""
    applied = Transactional(db=db, clock=clock, source=source, consumer=f"{source}--test", apply=handlers,
                            prefetch=prefetch)
    await applied.many([(envelope, envelope.decode()) for envelope in envelopes])

