"""Retention: each service's shared tables (published outbox rows, consumers' idempotency records)
and the bot's store (handled updates, ended conversations, abandoned drafts) are pruned, in short
batches, of what is past its period, and of nothing else: a row just inside its period stays.
Real SQLite files and PostgreSQL; a set clock."""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from pydantic import ValidationError
from sqlmodel import col, select

from services.bot.config import Settings as BotSettings
from services.bot.jobs import Housekeeping
from services.bot.models import BOT_TABLES, ConversationDraft, ConversationState, InboxUpdate
from services.bot.store import SqlStorage
from services.roster.config import Settings as RosterSettings
from shared.bus import Bus, owner_stream
from shared.clock import ManualClock
from shared.store import SHARED_TABLES, Database, OutboxMessage, OutboxRelay, ProcessedEvent

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

MINUTE = timedelta(minutes=1)


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(database_url or f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    yield database
    await database.dispose()


async def _claims(db: Database, clock: ManualClock, *, at: datetime, consumer: str, n: int) -> set[uuid.UUID]:
    ids = {uuid.uuid4() for _ in range(n)}
    clock.set(at)
    async with db.unit_of_work(source="test", clock=clock) as uow:
        for event_id in ids:
            uow.record_claim(consumer, event_id)
    return ids


def _outbox_row(*, created: datetime, published: datetime | None) -> OutboxMessage:
    return OutboxMessage(event_id=uuid.uuid4(), subject="cmcoord.roster.post.filled.v1", payload=b"{}",
                         created_at=created, published_at=published)


@both_backends
async def test_the_relay_prunes_old_published_rows_and_records_in_batches(db: Database, bus: Bus,
                                                                         clock: ManualClock) -> None:
    await db.create_tables(SHARED_TABLES)
    now = clock.now()
    keep_published, keep_processed = timedelta(days=7), timedelta(days=35)
    old_claims = await _claims(db, clock, at=now - timedelta(days=40), consumer="notify--on_roster", n=2)
    old_claims |= await _claims(db, clock, at=now - timedelta(days=60), consumer="lessons--on_roster", n=1)
    old_claims |= await _claims(db, clock, at=now - keep_processed - MINUTE, consumer="notify--on_roster", n=1)
    kept_claims = await _claims(db, clock, at=now - keep_processed + MINUTE, consumer="notify--on_roster", n=1)
    kept_claims |= await _claims(db, clock, at=now - timedelta(days=1), consumer="lessons--on_roster", n=2)
    clock.set(now)
    old_rows = [_outbox_row(created=now - timedelta(days=d), published=now - timedelta(days=d)) for d in (8, 9, 20)]
    old_rows.append(_outbox_row(created=now - keep_published, published=now - keep_published - MINUTE))
    kept_rows = [_outbox_row(created=now - keep_published, published=now - keep_published + MINUTE),
                 _outbox_row(created=now - timedelta(days=30), published=None),  # never published: never pruned
                 _outbox_row(created=now, published=now)]
    async with db.write() as session:
        session.add_all([*old_rows, *kept_rows])
    kept_ids = {r.event_id for r in kept_rows}

    relay = OutboxRelay(db, bus, clock=clock, keep_published=keep_published, keep_processed=keep_processed,
                        prune_batch=2)
    # a round goes batch by batch (two rows of each table per step), then stops when a batch is short
    assert [await relay.prune() for _ in range(4)] == [4, 4, 0, 0]
    async with db.read() as session:
        claims = set((await session.exec(select(ProcessedEvent.event_id))).all())
        outbox = set((await session.exec(select(OutboxMessage.event_id))).all())
    assert claims == kept_claims and not claims & old_claims
    assert outbox == kept_ids

    # the next round starts an hour after the last one did
    async with db.write() as session:
        session.add(_outbox_row(created=now - timedelta(days=9), published=now - timedelta(days=9)))
    clock.advance(timedelta(minutes=59))
    assert await relay.prune() == 0
    clock.advance(2 * MINUTE)
    # that one, and the two rows that were a minute inside their periods an hour ago
    assert await relay.prune() == 3
    async with db.read() as session:
        assert set((await session.exec(select(OutboxMessage.event_id))).all()) == kept_ids - {kept_rows[0].event_id}
        assert len((await session.exec(select(ProcessedEvent.event_id))).all()) == len(kept_claims) - 1


def test_idempotency_records_outlive_what_the_streams_can_deliver_again(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = RosterSettings()
    assert settings.processed_events_keep > owner_stream("roster").max_age  # 35 days against 30
    assert settings.outbox_keep == timedelta(days=7)
    monkeypatch.setenv("CMCOORD_ROSTER_PROCESSED_EVENTS_KEEP_DAYS", "60")
    monkeypatch.setenv("CMCOORD_ROSTER_OUTBOX_KEEP_DAYS", "2")
    assert (RosterSettings().processed_events_keep, RosterSettings().outbox_keep) == (timedelta(days=60),
                                                                                    timedelta(days=2))
    monkeypatch.setenv("CMCOORD_ROSTER_PROCESSED_EVENTS_KEEP_DAYS", "20")  # a replayed stream would apply again
    with pytest.raises(ValidationError):
        RosterSettings()


def _key(chat: int) -> StorageKey:
    return StorageKey(bot_id=1, chat_id=chat, user_id=chat)


@both_backends
async def test_the_bot_forgets_handled_updates_ended_conversations_and_abandoned_drafts(
        db: Database, clock: ManualClock) -> None:
    await db.create_tables(BOT_TABLES)
    now = clock.now()
    settings = BotSettings()
    inbox_keep, draft_keep = timedelta(days=settings.inbox_keep_days), timedelta(days=settings.draft_keep_days)
    assert (inbox_keep, draft_keep) == (timedelta(days=7), timedelta(days=90))

    async with db.write() as session:
        for update_id, handled in [(1, now - timedelta(days=30)), (2, now - timedelta(days=8)),
                                   (3, now - inbox_keep - MINUTE),  # these three go
                                   (4, now - inbox_keep + MINUTE), (5, now), (6, None)]:  # these stay
            session.add(InboxUpdate(update_id=update_id, payload="{}", received_at=now - timedelta(days=30),
                                    handled_at=handled))

    storage = SqlStorage(db, cache=True, clock=clock)
    await storage.load()

    async def converse(chat: int, at: datetime, *, state: str | None, data: dict[str, str]) -> None:
        clock.set(at)
        await storage.set_state(_key(chat), state)
        await storage.set_data(_key(chat), data)

    draft = {"text": "Convoys notified ahead were turned back at the bridge"}
    await converse(1, now - timedelta(days=2), state=None, data={})  # ended two days ago: goes
    await converse(2, now - timedelta(days=1) - MINUTE, state=None, data={})  # ended just over a day ago: goes
    await converse(3, now - timedelta(hours=23), state=None, data={})  # ended yesterday: stays a little
    await converse(4, now - draft_keep - MINUTE, state="ReportWriting:text", data=draft)  # abandoned: goes
    await converse(5, now - draft_keep - timedelta(days=5), state=None, data=draft)  # paused, abandoned: goes
    await converse(6, now - draft_keep + MINUTE, state=None, data=draft)  # paused AAR, not yet abandoned: stays
    await converse(7, now - timedelta(hours=1), state="AarWriting:planned", data=draft)  # in progress: stays
    # the drafts kept apart from the conversation (a /report ended by /cancel or another command)
    abandoned, recent = uuid.uuid4(), uuid.uuid4()
    for person, at, kinds in ((abandoned, now - draft_keep - MINUTE, ("report", "aar", "handover")),  # go
                              (recent, now - draft_keep + MINUTE, ("report",))):  # stays
        clock.set(at)
        for kind in kinds:
            await storage.drafts.keep(person, kind, f"{kind}:step", draft)
    clock.set(now)

    housekeeping = Housekeeping(db=db, storage=storage, clock=clock, inbox_keep=inbox_keep, draft_keep=draft_keep,
                                batch=2)
    pruned = await housekeeping.run_pass()
    assert (pruned.inbox, pruned.conversations, pruned.drafts) == (3, 4, 3)

    async with db.read() as session:
        updates = set((await session.exec(select(InboxUpdate.update_id))).all())
        rows = (await session.exec(select(ConversationState).order_by(col(ConversationState.key)))).all()
    assert updates == {4, 5, 6}
    assert sorted(int(row.key.split(":")[1]) for row in rows) == [3, 6, 7]
    # the process that holds the conversations in memory forgot them too; the rest reads as before
    assert (await storage.get_state(_key(4)), await storage.get_data(_key(5))) == (None, {})
    assert await storage.get_data(_key(6)) == draft
    assert await storage.get_state(_key(7)) == "AarWriting:planned"
    assert await SqlStorage(db).get_data(_key(4)) == {}
    async with db.read() as session:
        assert [(d.person_id, d.kind) for d in (await session.exec(select(ConversationDraft))).all()] == [
            (recent, "report")]
    assert (await storage.drafts.get(recent, "report")).data == draft  # type: ignore[union-attr]
    assert await storage.drafts.get(abandoned, "aar") is None
    assert await housekeeping.run_pass() == type(pruned)(inbox=0, conversations=0, drafts=0)  # nothing else goes
