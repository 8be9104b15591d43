"""A sender's settled matter, kept by notify on both stores: settled twice is one record, and a request
about it that comes after (retried while the roster was away) creates nothing. The handlers run as the
consumer runs them, in a unit of work with the event's envelope as its cause."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from services.notify import store
from services.notify.handlers import facts
from services.notify.models import NOTIFY_TABLES, Notification, Settled
from services.notify.recipients import Recipient
from services.notify.store import Request
from shared import events
from shared.clock import ManualClock
from shared.events import Envelope

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
SOMEONE = uuid.UUID(int=7)


@pytest.fixture
async def notify_db(database_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[store.Database]:
    db = store.open_store(database_url or f"sqlite+aiosqlite:///{tmp_path / 'notify.db'}", clock=clock)
    await db.create_tables(NOTIFY_TABLES)
    yield db
    await db.dispose()


async def handled(db: store.Database, event: events.Event, handler: object, **kw: object) -> None:
    async with db.unit_of_work() as uow:
        uow.cause = Envelope.wrap(event, source="hns4d", occurred_at=datetime(2026, 3, 2, 9, tzinfo=UTC))
        await handler(event, uow=uow, **kw)  # type: ignore[operator]


@both_backends
async def test_a_settled_matter_is_kept_once_and_a_later_request_about_it_creates_nothing(
    notify_db: store.Database, clock: ManualClock,
) -> None:
    settle = events.NotificationsSettled(kinds=["hns4d.notification", "hns4d.silence"], about="forwarding-1",
                                         reason="the party acknowledged")
    for _ in range(2):  # told twice (a redelivery under another id): kept once, no error
        await handled(notify_db, settle, facts.on_settled, clock=clock)
    async with notify_db.read() as session:
        kept = sorted((s.kind, s.about) for s in (await session.exec(select(Settled))).all())
    assert kept == [("hns4d.notification", "forwarding-1"), ("hns4d.silence", "forwarding-1")]

    def request(about: str) -> tuple[events.NotificationRequested, facts.Found]:
        e = events.NotificationRequested(kind="hns4d.notification", about=about, occurrence="r1",
                                         person_ids=[SOMEONE], text="Humanitarian notification HN-ML-2026-0001.")
        asked = Request(kind=e.kind, about=e.about, occurrence=e.occurrence, text=e.text)
        keita = Recipient(person_id=SOMEONE, name="Cdt Keita", telegram_user_id=None, timezone="UTC",
                          regions=("ROWCA",))
        return e, facts.Found(asks=[(asked, [keita])])

    for about in ("forwarding-1", "forwarding-2"):  # the settled one, and one still waiting (the control)
        e, found = request(about)
        await handled(notify_db, e, facts.on_requested, clock=clock, found=found)
    async with notify_db.read() as session:
        created = [n.subject for n in (await session.exec(select(Notification))).all()]
    assert created == ["forwarding-2"]
