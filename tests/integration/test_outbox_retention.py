"""The outbox keeps what it published a week, then lets it go: storage follows what happened,
not how long the service has run. Real nats-server and SQLite; a set clock."""

import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func
from sqlmodel import col, select

from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.store import SHARED_TABLES, Database, OutboxMessage, OutboxRelay
from tests.helpers import eventually


def _filled() -> events.PostFilled:
    return events.PostFilled(post_id=uuid.uuid4(), country="ML", region="ROWCA", deployment_id=uuid.uuid4(),
                             person_id=uuid.uuid4(), filled_on=date(2026, 3, 2), gapped_since=date(2026, 2, 20))


async def _rows(db: Database, *, published: bool) -> int:
    async with db.read() as session:
        column = col(OutboxMessage.published_at)
        where = column.is_not(None) if published else column.is_(None)
        return int((await session.exec(select(func.count()).select_from(OutboxMessage).where(where))).one())


async def test_published_rows_go_after_a_week_and_the_rest_stays(tmp_path: Path, bus: Bus, clock: ManualClock) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    await db.create_tables(SHARED_TABLES)
    relay = OutboxRelay(db, bus, clock=clock)
    try:
        async with db.unit_of_work(source="roster", clock=clock) as uow:
            for _ in range(3):
                uow.emit(_filled())
        assert await relay.flush() == 3
        assert await relay.prune() == 0  # published just now: kept
        clock.advance(timedelta(days=6))
        async with db.unit_of_work(source="roster", clock=clock) as uow:
            uow.emit(_filled())
        assert await relay.flush() == 1
        assert await relay.prune() == 0  # checked less than an hour ago: not even looked at
        clock.advance(timedelta(days=1, hours=1))
        async with db.unit_of_work(source="roster", clock=clock) as uow:
            uow.emit(_filled())  # not published yet: never pruned, whatever its age
        assert await relay.prune() == 3
        assert (await _rows(db, published=True), await _rows(db, published=False)) == (1, 1)
        relay.start()
        await eventually(lambda: _none_waiting(db), what="the last one published by the running relay")
    finally:
        await relay.stop()
        await db.dispose()


async def _none_waiting(db: Database) -> bool:
    return await _rows(db, published=False) == 0


async def test_an_event_with_a_fixed_id_written_again_is_recognised_not_doubled(tmp_path: Path,
                                                                                clock: ManualClock) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'once.db'}")
    await db.create_tables(SHARED_TABLES)
    try:
        fact, event_id = _filled(), uuid.uuid4()  # as a replayed "Send" makes the same report again
        assert await db.emit_once([(event_id, fact)], source="roster", clock=clock) is True
        assert await db.emit_once([(event_id, fact)], source="roster", clock=clock) is False
        assert await _rows(db, published=False) == 1
    finally:
        await db.dispose()
