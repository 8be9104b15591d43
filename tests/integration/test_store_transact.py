"""`Database.transact`: a function of Core statements in one transaction, with the events it emits,
on a SQLite file (the store's threads) and on PostgreSQL (the async engine). Real databases and a
real nats-server; a set clock."""

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, insert, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import col, select

from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.store import SHARED_TABLES, Database, OutboxMessage, OutboxRelay, ProcessedEvent, Work

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
PROCESSED = ProcessedEvent.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def db(database_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Database]:
    database = Database(database_url or f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", source="roster", clock=clock)
    await database.create_tables(SHARED_TABLES)
    yield database
    await database.dispose()


def _filled() -> events.PostFilled:
    return events.PostFilled(post_id=uuid.uuid4(), country="ML", region="ROWCA", deployment_id=uuid.uuid4(),
                             person_id=uuid.uuid4(), filled_on=date(2026, 3, 2), gapped_since=date(2026, 2, 20))


async def _counts(db: Database) -> tuple[int, int]:
    """(idempotency records, outbox rows), read through the store's async engine."""
    async with db.read() as session:
        claims = (await session.exec(select(func.count()).select_from(ProcessedEvent))).one()
        rows = (await session.exec(select(func.count()).select_from(OutboxMessage))).one()
    return int(claims), int(rows)


@both_backends
async def test_the_state_change_and_its_events_commit_together_and_are_published(
        db: Database, bus: Bus, clock: ManualClock) -> None:
    event_id = uuid.uuid4()
    woken: list[bool] = []
    db.on_outbox_written(lambda: woken.append(True))

    def work(w: Work) -> str:
        w.conn.execute(insert(PROCESSED), {"consumer": "c", "event_id": event_id, "processed_at": clock.now()})
        w.emit(_filled(), id=event_id)
        return "done"

    assert await db.transact(work, correlation_id="corr-1") == "done"
    assert await _counts(db) == (1, 1)
    assert woken == [True]
    async with db.read() as session:
        row = (await session.exec(select(OutboxMessage))).one()
    assert row.event_id == event_id and row.subject == events.PostFilled.subject()
    envelope = events.Envelope.from_bytes(row.payload)
    assert (envelope.source, envelope.correlation_id, envelope.occurred_at) == ("roster", "corr-1", clock.now())
    assert await OutboxRelay(db, bus, clock=clock).flush() == 1
    async with db.read() as session:
        published = (await session.exec(select(OutboxMessage.published_at))).one()
    assert published is not None and published.replace(tzinfo=None) == clock.now().replace(tzinfo=None)


@both_backends
async def test_a_work_that_fails_leaves_nothing(db: Database, clock: ManualClock) -> None:
    def work(w: Work) -> None:
        w.conn.execute(insert(PROCESSED), {"consumer": "c", "event_id": uuid.uuid4(), "processed_at": clock.now()})
        w.emit(_filled())
        raise RuntimeError("refused half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        await db.transact(work)
    assert await _counts(db) == (0, 0)
    # the same event id twice: the second transaction fails whole, the first stays
    same = uuid.uuid4()
    await db.transact(lambda w: w.emit(_filled(), id=same))
    with pytest.raises(IntegrityError):
        await db.transact(lambda w: (w.conn.execute(insert(PROCESSED), {
            "consumer": "c", "event_id": uuid.uuid4(), "processed_at": clock.now()}), w.emit(_filled(), id=same)))
    assert await _counts(db) == (0, 1)


@both_backends
async def test_a_read_transaction_takes_no_events(db: Database) -> None:
    with pytest.raises(ValueError, match="write transaction"):
        await db.transact(lambda w: w.emit(_filled()), write=False)
    assert await _counts(db) == (0, 0)
    assert await db.transact(lambda w: w.conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one(),
                             write=False) == 0


async def test_sqlite_writes_keep_the_services_pragmas_and_wait_its_busy_timeout(tmp_path: Path,
                                                                                clock: ManualClock) -> None:
    path = tmp_path / "bot.db"
    db = Database(f"sqlite+aiosqlite:///{path}", source="bot", clock=clock)
    db.on_connect(lambda connection: connection.execute("PRAGMA busy_timeout=250"))
    seen: list[int] = []  # outbox rows a listener finds, on a connection of its own, when it is woken

    def count_outbox() -> None:
        with closing(sqlite3.connect(path)) as connection:
            seen.append(connection.execute("SELECT count(*) FROM outbox").fetchone()[0])

    db.on_outbox_written(count_outbox)
    try:
        await db.create_tables(SHARED_TABLES)
        # the service's hook reaches the store's writer and reader threads and its async engine alike
        assert await db.transact(lambda w: w.conn.execute(text("PRAGMA busy_timeout")).scalar_one()) == 250
        assert await db.transact(lambda w: w.conn.execute(text("PRAGMA busy_timeout")).scalar_one(), write=False) == 250
        async with db.read() as session:
            assert (await session.exec(text("PRAGMA busy_timeout"))).scalar_one() == 250  # type: ignore[call-overload]
        assert await db.transact(lambda w: w.conn.execute(text("PRAGMA journal_mode")).scalar_one()) == "wal"
        # another process holds the write lock: a write waits the service's 250 ms for it, before doing anything
        # (BEGIN IMMEDIATE), then says the store is busy
        entered: list[bool] = []
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(OperationalError, match="database is locked"):
                await db.transact(lambda w: (entered.append(True), w.emit(_filled())))
            assert entered == []
            # a read is not a writer: it goes on
            assert await db.transact(lambda w: w.conn.execute(
                select(func.count()).select_from(OutboxMessage)).scalar_one(), write=False) == 0
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert seen == []
        await db.transact(lambda w: w.emit(_filled()))
        assert seen == [1]  # woken once its commit is there for others to read
        async with db.read() as session:
            assert len((await session.exec(select(col(OutboxMessage.seq)))).all()) == 1
    finally:
        await db.dispose()
    with pytest.raises(RuntimeError, match="closed"):
        await db.transact(lambda w: w.emit(_filled()))


async def test_a_read_does_not_wait_for_a_write_in_progress(tmp_path: Path, clock: ManualClock) -> None:
    """On a SQLite file a read has a thread and connection of its own: while a write transaction is open
    in the writer's thread, a read goes ahead and sees what was committed before it."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", source="roster", clock=clock)
    await db.create_tables(SHARED_TABLES)
    writing, release = threading.Event(), threading.Event()

    def slow_write(w: Work) -> None:
        w.conn.execute(insert(PROCESSED), [{"consumer": "c", "event_id": uuid.uuid4(), "processed_at": clock.now()}])
        writing.set()
        if not release.wait(timeout=30):  # the test's deadline: the read below must finish first
            raise TimeoutError("the read did not finish while the write was open")

    try:
        write = asyncio.ensure_future(db.transact(slow_write))
        assert await asyncio.get_running_loop().run_in_executor(None, writing.wait, 30)
        seen = await asyncio.wait_for(db.transact(
            lambda w: w.conn.execute(select(func.count()).select_from(PROCESSED)).scalar_one(), write=False), 10)
        release.set()
        await write
        assert seen == 0  # not the open transaction's row
        assert await db.transact(
            lambda w: w.conn.execute(select(func.count()).select_from(PROCESSED)).scalar_one(), write=False) == 1
    finally:
        release.set()
        await db.dispose()
