"""Persistence every service shares: engine, unit of work, idempotency, outbox.

- SQLite (default) runs in WAL mode with a busy timeout, and every write
  transaction starts with BEGIN IMMEDIATE, so writers from several processes
  queue for the lock instead of failing with "database is locked" half-way.
  Reads start a plain deferred transaction and never block writers.
- PostgreSQL is used when the URL says so (postgresql+asyncpg://...).
- A `UnitOfWork` commits the state change, the consumer's idempotency record
  (`processed_event`) and the events to publish (`outbox`) in one transaction.
- `Database.transact` runs a function of SQLAlchemy statements in one transaction in a
  single hop: on SQLite in a thread of the store's with the standard library's driver (the
  writer's thread, or the reader's for a read; not one thread hop per statement, as aiosqlite
  makes them), on PostgreSQL on the async engine. For the paths taken for every message of a
  fan-out (the bot's sends, the outbox relay) and for lessons search.
- The `OutboxRelay` publishes outbox rows to JetStream with the event id as
  `Nats-Msg-Id` and marks them published; rows left by a crash between commit
  and publish are found by its periodic sweep.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, delete, event, insert, inspect, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.clock import Clock
from shared.events import Envelope, Event
from shared.home import StoreMissing, creates_missing_stores

log = structlog.get_logger("store")

SQLITE_BUSY_TIMEOUT_S = 30
# `transact(write=False)` on a SQLite file: a thread and connection of their own, so reads do not queue
# behind the writer's thread (WAL). One: with a core taken by something else, a second reader thread
# cost more in turns at the GIL than it gained (lessons search p99 47 ms with one, 53-62 ms with two)
SQLITE_READ_THREADS = 1
T = TypeVar("T")


class ProcessedEvent(SQLModel, table=True):
    """An event a consumer has already applied: a redelivery has no second effect."""

    __tablename__ = "processed_event"
    consumer: str = Field(primary_key=True, max_length=120)
    event_id: uuid.UUID = Field(primary_key=True)
    processed_at: datetime


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    seq: int | None = Field(default=None, primary_key=True)
    event_id: uuid.UUID = Field(unique=True)
    subject: str = Field(max_length=200)
    payload: bytes
    created_at: datetime
    published_at: datetime | None = Field(default=None, index=True)


SHARED_TABLES: tuple[Table, ...] = (ProcessedEvent.__table__, OutboxMessage.__table__)  # type: ignore[attr-defined]


class Database:
    """A service's store. Its composition root names whose events it writes and by which clock
    (`source`, `clock`): a unit of work then needs neither; a store opened without them (a
    tool, a test) is told them at each unit of work."""

    def __init__(self, url: str, *, pool_size: int = 5, source: str | None = None, clock: Clock | None = None) -> None:
        parsed = make_url(url)
        self.url = url
        self.source, self.clock = source, clock
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._outbox_listeners: list[Callable[[], None]] = []
        self._connect_hooks: list[Callable[[Any], None]] = []
        # `transact` on a SQLite file: synchronous engines, each used from threads of its own (made at first use)
        self._in_thread = self.is_sqlite and bool(parsed.database) and parsed.database != ":memory:"
        self._sync: _InThread | None = None
        self._closed = False
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                path = Path(parsed.database)
                if not creates_missing_stores() and not path.exists():
                    raise StoreMissing(path)
                path.parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S},
                                                           hide_parameters=True)
            _sqlite_pragmas_and_immediate_writes(self.engine.sync_engine, self._connect_hooks)
        else:
            self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                                              hide_parameters=True)
        self._writer = self.engine.execution_options(cmcoord_write=True)
        self._read = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._write = async_sessionmaker(self._writer, class_=AsyncSession, expire_on_commit=False)

    async def create_tables(self, tables: Sequence[Table]) -> None:
        """Create those of the tables the store lacks (one query for the names it has, not one per table:
        every command that opens a store calls this)."""

        def create(sync: Connection) -> None:
            have = set(inspect(sync).get_table_names())
            missing = [table for table in tables if table.name not in have]
            if missing:
                SQLModel.metadata.create_all(sync, tables=missing)

        async with self.engine.begin() as conn:
            await conn.run_sync(create)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction (BEGIN IMMEDIATE on SQLite), committed on exit.
        For writes that emit no events; those go through unit_of_work."""
        async with self._write() as session, session.begin():
            yield session

    @asynccontextmanager
    async def unit_of_work(
        self, *, source: str | None = None, clock: Clock | None = None, correlation_id: str | None = None
    ) -> AsyncIterator[UnitOfWork]:
        """Commit on normal exit, roll back on exception; wake the relay if events were written.
        `source` and `clock` default to the store's own."""
        source, clock = self.bound(source, clock)
        async with self._write() as session:
            async with session.begin():
                uow = UnitOfWork(session, source=source, clock=clock, correlation_id=correlation_id)
                yield uow
                await uow.write_records()
        if uow.emitted:
            for listener in self._outbox_listeners:
                listener()

    def bound(self, source: str | None = None, clock: Clock | None = None) -> tuple[str, Clock]:
        """The source and clock given, else the store's own."""
        source = self.source if source is None else source
        clock = self.clock if clock is None else clock
        if source is None or clock is None:
            raise ValueError("a unit of work needs the source of its events and a clock (the store was opened without)")
        return source, clock

    async def emit_once(self, written: Sequence[tuple[uuid.UUID, Event]], *, source: str | None = None,
                        clock: Clock | None = None) -> bool:
        """Write the events of one fact, each with the id the fact fixes (a report's, an AAR's, a message's
        reference), in one transaction: True when written now; False when they were written already, as
        when an update handled before a crash comes back."""
        try:
            async with self.unit_of_work(source=source, clock=clock) as uow:
                for event_id, fact in written:
                    uow.emit(fact, id=event_id)
        except IntegrityError:
            first_id, first = written[0]
            async with self.read() as session:
                found = (await session.exec(select(OutboxMessage.seq).where(OutboxMessage.event_id == first_id))).first()
            if found is None:
                raise  # another constraint: not a repeat
            log.info("event_already_written", event_id=str(first_id), type=first.type)
            return False
        return True

    def on_outbox_written(self, listener: Callable[[], None]) -> None:
        self._outbox_listeners.append(listener)

    def on_connect(self, hook: Callable[[Any], None]) -> None:
        """Run `hook(dbapi_connection)` on every SQLite connection the store opens, after its own
        pragmas (a service's busy timeout); for connections opened from now on."""
        self._connect_hooks.append(hook)

    async def transact(self, work: Callable[[Work], T], *, write: bool = True, correlation_id: str | None = None,
                       source: str | None = None, clock: Clock | None = None) -> T:
        """`work(w)` in one transaction (a write one, BEGIN IMMEDIATE on SQLite, unless `write` is
        False), committed when it returns, rolled back when it raises; the events it emits
        (`w.emit`, stamped with the clock's time when the call began) are written to the outbox in
        the same transaction. `work` is synchronous and uses SQLAlchemy on `w.conn`: on SQLite it runs
        in a thread of the store's (the writer's one, or one of the readers'), so it must not touch
        the event loop or anything it owns.

        On SQLite a call whose caller is cancelled (a service stopping) still runs to its end,
        commit included: what it wrote is there, as after a crash just past the commit."""
        if self._closed:
            raise RuntimeError("the store is closed")
        source = self.source if source is None else source
        clock = self.clock if clock is None else clock
        at = clock.now() if clock is not None else None  # read here, not in the store's threads

        def run(conn: Connection) -> tuple[T, list[Envelope]]:
            w = Work(conn, source=source, at=at, correlation_id=correlation_id)
            result = work(w)
            if w.emitted:
                if not write:
                    raise ValueError("events are emitted in a write transaction")
                conn.execute(insert(OutboxMessage.__table__), _outbox_rows(w.emitted))  # type: ignore[attr-defined]
            return result, w.emitted

        if self._in_thread:
            engine, thread = self._sync_engine(write=write)

            def in_thread() -> tuple[T, list[Envelope]]:
                with engine.begin() as conn:
                    return run(conn)

            # the caller's context goes with it: a log line written in `work` names its event
            context = contextvars.copy_context()
            result, emitted = await asyncio.get_running_loop().run_in_executor(thread, context.run, in_thread)
        else:
            bind = self._writer if write else self.engine
            async with bind.begin() as conn:
                result, emitted = await conn.run_sync(run)
        if emitted:
            for listener in self._outbox_listeners:
                listener()
        return result

    def _sync_engine(self, *, write: bool) -> tuple[Engine, ThreadPoolExecutor]:
        """The SQLite file's synchronous engine and the thread(s) it is used from: the writer's
        one thread, or the readers' (made at first use)."""
        if self._sync is None:
            url = make_url(self.url).set(drivername="sqlite")

            def engine(size: int) -> Engine:
                made = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
                                     hide_parameters=True, pool_size=size, max_overflow=0)
                _sqlite_pragmas_and_immediate_writes(made, self._connect_hooks)
                return made

            writer = engine(1)
            self._sync = _InThread(writer, writer.execution_options(cmcoord_write=True),
                                   ThreadPoolExecutor(max_workers=1, thread_name_prefix="store"),
                                   engine(SQLITE_READ_THREADS),
                                   ThreadPoolExecutor(max_workers=SQLITE_READ_THREADS, thread_name_prefix="store-read"))
        found = self._sync
        return (found.writes, found.thread) if write else (found.reader, found.readers)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception as exc:  # reported by /readyz, not raised
            log.warning("database_unreachable", error=str(exc))
            return False

    async def dispose(self) -> None:
        """Close the store's connections; a `transact` after this is refused (one already queued
        in the store's threads finishes first)."""
        self._closed = True
        await self.engine.dispose()
        if self._sync is not None:
            found, self._sync = self._sync, None
            loop = asyncio.get_running_loop()
            for engine, thread in ((found.writer, found.thread), (found.reader, found.readers)):
                await loop.run_in_executor(thread, engine.dispose)
                thread.shutdown(wait=False)


@dataclass(frozen=True)
class _InThread:
    """A SQLite file's synchronous engines: the writer with its one thread, the readers with theirs."""

    writer: Engine
    writes: Engine  # the writer's, with BEGIN IMMEDIATE
    thread: ThreadPoolExecutor
    reader: Engine
    readers: ThreadPoolExecutor


def _sqlite_pragmas_and_immediate_writes(sync_engine: Engine, hooks: Sequence[Callable[[Any], None]]) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would
        # otherwise begin lazily and always DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # after a checkpoint the write-ahead log shrinks back to this size (else it keeps its largest)
        cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        for hook in hooks:
            hook(dbapi_connection)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("cmcoord_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Work:
    """What a function given to `Database.transact` works with: the connection of its transaction,
    and `emit` for the events it commits with it."""

    def __init__(self, conn: Connection, *, source: str | None, at: datetime | None,
                 correlation_id: str | None) -> None:
        self.conn = conn
        self.source = source
        self.at = at
        self.correlation_id = correlation_id
        self.emitted: list[Envelope] = []

    def emit(self, event: Event, *, id: uuid.UUID | None = None) -> Envelope:
        if self.source is None or self.at is None:
            raise ValueError("an event needs its source and a clock (the store was opened without)")
        envelope = Envelope.wrap(event, source=self.source, occurred_at=self.at, id=id,
                                 correlation_id=self.correlation_id)
        self.emitted.append(envelope)
        return envelope


def _outbox_rows(envelopes: Sequence[Envelope]) -> list[dict[str, Any]]:
    return [{"event_id": e.id, "subject": e.subject, "payload": e.to_bytes(), "created_at": e.occurred_at}
            for e in envelopes]


class UnitOfWork:
    def __init__(self, session: AsyncSession, *, source: str, clock: Clock, correlation_id: str | None) -> None:
        self.session = session
        self.source = source
        self.clock = clock
        self.correlation_id = correlation_id
        self._cause: Envelope | None = None
        self.emitted: list[Envelope] = []
        self._claims: list[dict[str, Any]] = []

    @property
    def cause(self) -> Envelope:
        """The envelope of the event a consumer applies in this unit of work (its id names what
        the handler emits; its occurred_at is when the fact happened)."""
        if self._cause is None:
            raise RuntimeError("this unit of work applies no event")
        return self._cause

    @cause.setter
    def cause(self, envelope: Envelope) -> None:
        self._cause = envelope

    async def claim(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record that `consumer` applies `event_id` now; False if it already did."""
        if await self.claimed(consumer, [event_id]):
            return False
        self.record_claim(consumer, event_id)
        return True

    async def claimed(self, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Which of `event_ids` this consumer has applied already (one query)."""
        if not event_ids:
            return set()
        result = await self.session.exec(
            select(ProcessedEvent.event_id).where(
                ProcessedEvent.consumer == consumer, col(ProcessedEvent.event_id).in_(list(event_ids))
            )
        )
        return set(result.all())

    def record_claim(self, consumer: str, event_id: uuid.UUID) -> None:
        self._claims.append({"consumer": consumer, "event_id": event_id, "processed_at": self.clock.now()})

    def emit(self, event: Event, *, id: uuid.UUID | None = None) -> Envelope:
        """Write `event` to the outbox in this transaction."""
        envelope = Envelope.wrap(
            event, source=self.source, occurred_at=self.clock.now(), id=id, correlation_id=self.correlation_id
        )
        self.emitted.append(envelope)
        return envelope

    async def write_records(self) -> None:
        """Idempotency records and outbox rows, one multi-row insert each, just
        before commit (a duplicate event id fails the whole transaction)."""
        if self._claims:
            await self.session.exec(insert(ProcessedEvent.__table__), params=self._claims)  # type: ignore[attr-defined]
            self._claims = []
        if self.emitted:
            await self.session.exec(insert(OutboxMessage.__table__), params=_outbox_rows(self.emitted))  # type: ignore[attr-defined]


class Apply(Protocol):
    """An event handler: `async def on_x(event, *, uow, clock)`, the service's clients and
    settings bound by its consumers table (functools.partial); the event's envelope is `uow.cause`.
    A handler whose event has a `Lookup` also takes what it found: `found=`."""

    def __call__(self, event: Any, /, *, uow: UnitOfWork, clock: Clock) -> Awaitable[None]: ...


class Lookup(Protocol):
    """What a handler needs from another service, asked before its transaction so that no network
    call holds one open: `async def find_x(event, *, cause, clock)`, clients bound as for handlers.
    What it returns reaches the handler as `found`; a service that does not answer raises
    TransientError, and the event comes back later."""

    def __call__(self, event: Any, /, *, cause: Envelope, clock: Clock) -> Awaitable[Any]: ...


# Loads what a batch will read; returns the rows so they stay in the session's
# (weakly referenced) identity map while the batch is applied.
Prefetch = Callable[[UnitOfWork, Sequence[Any]], Awaitable[Sequence[Any]]]


def upsert(db_or_session: Any, table: Any) -> Any:
    """INSERT ... ON CONFLICT for the session's dialect (SQLite or PostgreSQL)."""
    bind = db_or_session.get_bind() if hasattr(db_or_session, "get_bind") else db_or_session.engine
    return upsert_for(bind.dialect.name, table)


def upsert_for(dialect: str, table: Any) -> Any:
    """INSERT ... ON CONFLICT for a dialect by name ("postgresql", else SQLite)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


@dataclass(frozen=True)
class Consumes:
    """A durable in a service's consumers table: the stream it reads and, by event type, the handler
    applied in the consumer's transaction; what is looked up before it (`Lookup`), what a batch
    prefetches, whether fetched messages are applied a batch to a transaction (and how long a batch
    short of full waits for more to join it: `linger`, seconds), and whether the service's `after`
    hears of its commits (`wakes`: False for events that leave nothing due sooner than the service's
    next tick, such as the bot's reports of sends, whose commits come 30 a second)."""

    stream: str
    apply: dict[type[Event], Apply]
    lookup: dict[type[Event], Lookup] = field(default_factory=dict)
    prefetch: Prefetch | None = None
    batched: bool = False
    wakes: bool = True
    linger: float = 0.0

    def __post_init__(self) -> None:
        # a batch's lookups would all be asked before its transaction, and one that fails puts the whole batch back
        if self.batched and self.lookup:
            raise ValueError("a consumer with lookups applies its events one at a time (batched=False)")
        if self.linger and not self.batched:
            raise ValueError("only a batched consumer lingers for more events to join a batch")


class Transactional:
    """Applies a consumer's events to the store once each: the idempotency
    record, the state change and the outgoing events commit together. How
    roster's, notify's and lessons' consumers apply events (shared/service.py);
    the bot's send to Telegram outside any transaction (services/bot/handlers.py).

    `one` applies a single message; `many` applies a fetched batch in one
    transaction (far fewer commits), and if it fails the consumer runner falls
    back to `one` per message so a bad message stays isolated.

    Apply functions run with autoflush off, so the idempotency and outbox rows
    of a whole batch reach the database as multi-row inserts at commit; an
    optional `prefetch` loads what the batch will read in one query.
    """

    def __init__(
        self,
        *,
        db: Database,
        consumer: str,
        apply: dict[type[Event], Apply],
        prefetch: Prefetch | None = None,
        lookup: dict[type[Event], Lookup] | None = None,
        after: Callable[[], None] | None = None,
        clock: Clock | None = None,
        source: str | None = None,
    ) -> None:
        self.db = db
        self.source, self.clock = source, clock  # None: the store's own
        self.consumer = consumer
        self.apply = apply
        self.prefetch = prefetch
        self.lookup = lookup or {}
        self.after = after  # told once a transaction committed (a service's due work, woken)

    async def _found(self, envelope: Envelope, event: Event) -> dict[str, Any]:
        lookup = self.lookup.get(type(event))
        if lookup is None:
            return {}
        clock = self.clock if self.clock is not None else self.db.clock
        if clock is None:
            raise RuntimeError("a lookup needs the store's clock, or the consumer's")
        return {"found": await lookup(event, cause=envelope, clock=clock)}

    async def one(self, envelope: Envelope, event: Event) -> None:
        found = await self._found(envelope, event)
        async with self.db.unit_of_work(source=self.source, clock=self.clock, correlation_id=envelope.correlation_id) as uow:
            if not await uow.claim(self.consumer, envelope.id):
                log.info("event_already_applied")
                return
            uow.cause = envelope
            with uow.session.no_autoflush:
                await self.apply[type(event)](event, uow=uow, clock=uow.clock, **found)
        if self.after is not None:
            self.after()

    async def many(self, items: Sequence[tuple[Envelope, Event]]) -> None:
        # lookups are for consumers applied one at a time (Consumes refuses them batched): a batch has none to await
        found = ([await self._found(envelope, event) for envelope, event in items] if self.lookup
                 else [{}] * len(items))
        async with self.db.unit_of_work(source=self.source, clock=self.clock) as uow:
            done = await uow.claimed(self.consumer, [envelope.id for envelope, _ in items])
            fresh = [(envelope, event, f) for (envelope, event), f in zip(items, found, strict=True)
                     if envelope.id not in done]
            # held in this frame so the rows stay in the identity map until applied
            _loaded = (await self.prefetch(uow, [e for _, e, _ in fresh]) if self.prefetch is not None and fresh
                       else ())
            with uow.session.no_autoflush:
                for envelope, event, f in fresh:
                    if envelope.id in done:  # the same event twice in one batch
                        continue
                    done.add(envelope.id)
                    uow.correlation_id, uow.cause = envelope.correlation_id, envelope
                    uow.record_claim(self.consumer, envelope.id)
                    await self.apply[type(event)](event, uow=uow, clock=uow.clock, **f)
        if self.after is not None:
            self.after()


class Publisher(Protocol):
    """What the relay needs from the bus."""

    async def publish_many(self, messages: Sequence[tuple[str, bytes, str]]) -> list[bool]: ...


WAL_SIZE_LIMIT_BYTES = 4 << 20
PRUNE_EVERY = timedelta(hours=1)


async def prune_published_outbox(db: Database, *, published_before: datetime, batch: int) -> int:
    """Remove at most `batch` outbox rows published before `published_before` (oldest first, by the
    index on published_at) in one short write transaction; rows not yet published never go."""
    oldest = (select(OutboxMessage.seq).where(col(OutboxMessage.published_at) < published_before)
              .order_by(col(OutboxMessage.published_at)).limit(batch))
    async with db.write() as session:
        result = await session.exec(delete(OutboxMessage).where(  # type: ignore[call-overload]
            col(OutboxMessage.seq).in_(oldest.scalar_subquery())))
    return int(result.rowcount or 0)


async def prune_processed_events(db: Database, *, processed_before: datetime, batch: int) -> int:
    """Remove at most `batch` idempotency records made before `processed_before`. They are looked
    for in a read transaction (the table has no index on the time: a scan, which never holds the
    write lock) and deleted by key in one short write transaction."""
    async with db.read() as session:
        found = (await session.exec(
            select(ProcessedEvent.consumer, ProcessedEvent.event_id)
            .where(col(ProcessedEvent.processed_at) < processed_before).limit(batch))).all()
    if not found:
        return 0
    by_consumer: dict[str, list[uuid.UUID]] = {}
    for consumer, event_id in found:
        by_consumer.setdefault(consumer, []).append(event_id)
    removed = 0
    async with db.write() as session:
        for consumer, event_ids in by_consumer.items():
            result = await session.exec(delete(ProcessedEvent).where(  # type: ignore[call-overload]
                col(ProcessedEvent.consumer) == consumer, col(ProcessedEvent.event_id).in_(event_ids),
                col(ProcessedEvent.processed_at) < processed_before))
            removed += int(result.rowcount or 0)
    return removed


async def prune_in_batches(step: Callable[[], Awaitable[int]], *, batch: int, pause: float = 0.05) -> int:
    """Run `step` (which removes at most `batch` rows in one short transaction and says how many)
    until it removes fewer; between two batches other writers, of other processes too, get
    SQLite's lock (theirs wait in its busy handler, which sleeps between tries)."""
    total = 0
    while True:
        removed = await step()
        total += removed
        if removed < batch:
            return total
        await asyncio.sleep(pause)


class OutboxRelay:
    """Publishes the outbox, oldest first. Any failure — NATS away, or JetStream
    refusing the write (store full: "insufficient resources", a stream's limits,
    no leader) — leaves the rows in the outbox and is retried with back-off, so
    publishing resumes by itself once the cause is gone. An outage is logged
    once when it starts and once when it ends.

    It also keeps the shared tables trimmed (`prune`): published rows are kept
    `keep_published` (a week: far past JetStream's duplicate window), consumers'
    idempotency records `keep_processed` (35 days: longer than the streams keep an
    event, see `ServiceSettings.processed_events_keep_days`), then removed. A round
    starts at most once an hour and removes at most `prune_batch` rows of each table
    per pass of the relay, each batch in a short write transaction of its own, so
    publishing goes on between batches and no writer waits long for SQLite's lock."""

    def __init__(
        self, db: Database, publisher: Publisher, *, clock: Clock, sweep_interval: float = 1.0, batch: int = 500,
        max_backoff: float = 5.0, keep_published: timedelta = timedelta(days=7),
        keep_processed: timedelta = timedelta(days=35), prune_batch: int = 1000, linger: float = 0.0,
    ) -> None:
        self.db = db
        self.linger = linger  # woken by a commit: wait this long for the commits right behind it to go with it
        self.publisher = publisher
        self.clock = clock
        self.sweep_interval = sweep_interval
        self.batch = batch
        self.max_backoff = max_backoff
        self.keep_published = keep_published
        self.keep_processed = keep_processed
        self.prune_batch = prune_batch
        self._pruned_at: datetime | None = None  # when the last round of pruning started
        self._pruning = False  # a round under way: its next batches come at the next passes
        self.published = 0
        self.failing_since: float | None = None  # monotonic start of a publishing outage
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._oldest_unpublished = (
            sa_select(_OUTBOX.c.seq, _OUTBOX.c.event_id, _OUTBOX.c.subject, _OUTBOX.c.payload)
            .where(_OUTBOX.c.published_at.is_(None)).order_by(_OUTBOX.c.seq).limit(batch))
        db.on_outbox_written(self.wake)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")
        return self._task

    async def stop(self, *, flush_timeout: float = 5.0) -> None:
        """Stop the loop, then publish what is left within `flush_timeout`; rows that
        cannot go now wait for the next start."""
        self._stopping.set()
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=flush_timeout)
            if not done:  # a publish hanging on a slow JetStream
                self._task.cancel()
                await asyncio.wait({self._task})
        try:
            await asyncio.wait_for(self.flush(), timeout=max(0.1, deadline - loop.time()))
        except Exception as exc:  # NATS away at shutdown: the outbox keeps them
            log.warning("outbox_not_flushed_at_stop", error=str(exc) or type(exc).__name__)

    async def run(self) -> None:
        backoff = self.sweep_interval
        while not self._stopping.is_set():
            if self.failing_since is None:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.sweep_interval)
                except TimeoutError:
                    pass
                else:
                    if self.linger and not self._stopping.is_set():
                        await asyncio.sleep(self.linger)  # one read and one mark for several commits
            else:  # in an outage each attempt waits its back-off, whatever is written meanwhile
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                except TimeoutError:
                    pass
                if self._stopping.is_set():
                    return
            self._wake.clear()
            try:
                await self.flush()
                await self.prune()
            except Exception as exc:  # NATS, JetStream or the database refused: rows wait in the outbox
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    backoff = self.sweep_interval
                    log.error("outbox_publish_failing", error=(str(exc) or type(exc).__name__)[:300])
                backoff = min(backoff * 2, self.max_backoff)
            else:
                if self.failing_since is not None:
                    log.warning("outbox_publish_resumed", outage_seconds=round(time.monotonic() - self.failing_since, 1))
                    self.failing_since = None

    async def prune(self) -> int:
        """One step of trimming: at most `prune_batch` published outbox rows older than
        `keep_published` and as many idempotency records older than `keep_processed`, each in
        its own write transaction. A round starts at most once an hour and goes on at each
        call until a batch comes back short; returns how many rows went in this step."""
        now = self.clock.now()
        if not self._pruning:
            if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
                return 0
            self._pruned_at, self._pruning = now, True
        outbox = await prune_published_outbox(self.db, published_before=now - self.keep_published,
                                              batch=self.prune_batch)
        processed = await prune_processed_events(self.db, processed_before=now - self.keep_processed,
                                                 batch=self.prune_batch)
        self._pruning = outbox >= self.prune_batch or processed >= self.prune_batch
        if outbox or processed:
            log.info("shared_tables_pruned", outbox=outbox, processed_events=processed, more=self._pruning)
        return outbox + processed

    @staticmethod
    async def backlog(db: Database, *, now: datetime | None = None) -> dict[str, float | int | None]:
        """Rows not yet published and the age in seconds of the oldest (None when empty)."""
        from sqlalchemy import func

        async with db.read() as session:
            count, oldest = (await session.exec(
                select(func.count(), func.min(OutboxMessage.created_at))  # type: ignore[call-overload]
                .where(col(OutboxMessage.published_at).is_(None))
            )).one()
        age: float | None = None
        if oldest is not None:
            now = now or datetime.now(UTC)
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            age = round(max(0.0, (now - oldest).total_seconds()), 1)
        return {"pending": int(count or 0), "oldest_age_seconds": age}

    async def flush(self) -> int:
        """Publish every unpublished row, oldest first; returns how many."""
        total = 0
        while True:
            rows = await self.db.transact(self._unpublished, write=False)
            if not rows:
                return total
            # Pipelined: every publish of the batch is in flight at once, in order.
            acked = await self.publisher.publish_many([(r.subject, r.payload, str(r.event_id)) for r in rows])
            done = [r.seq for r, ok in zip(rows, acked, strict=True) if ok]
            if done:
                await self._mark_published(done)
                total += len(done)
                self.published += len(done)
            if len(done) < len(rows):  # refused or unanswered: the same rows again after the back-off
                raise ConnectionError(f"{len(rows) - len(done)} outbox event(s) not acknowledged by JetStream")
            if len(rows) < self.batch:  # all there was: a row written since has woken the relay for another flush
                return total

    def _unpublished(self, w: Work) -> Sequence[Any]:
        return w.conn.execute(self._oldest_unpublished).all()

    async def _mark_published(self, seqs: list[int]) -> None:
        at = self.clock.now()
        await self.db.transact(lambda w: w.conn.execute(_MARK_PUBLISHED, {"seqs": seqs, "at": at}))


_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_MARK_PUBLISHED = update(_OUTBOX).where(_OUTBOX.c.seq.in_(bindparam("seqs", expanding=True))).values(
    published_at=bindparam("at"))
