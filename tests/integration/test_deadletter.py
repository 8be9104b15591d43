"""Transient is transient: a database lock is waited out however long it lasts and never
dead-lettered; a real failure is, and `cmcoord deadletter` gives it back to its consumer once."""

import json
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy.exc
import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlmodel import func, select

import shared.store
from services.notify import bootstrap as notify_bootstrap
from services.notify.config import Settings as NotifySettings
from services.notify.models import Notification
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.samples import generate
from shared import events
from shared.bus import Bus, ConsumerRunner, TransientError, replay_subject
from shared.clock import ManualClock
from shared.deadletter import list_dead_letters, replay
from shared.events import Envelope, PersonChanged
from shared.natsserver import NatsServer, free_port
from tests.helpers import cli, eventually, link_to_telegram, service_env, stream_messages

pytestmark = pytest.mark.field  # faults as the field brings them: `make test-field` (CI runs it), apart from `make test`


def person_changed() -> Envelope:
    return Envelope.wrap(PersonChanged(person_id=uuid.uuid4(), created=True), source="roster",
                         occurred_at=datetime.now(UTC))


def locked() -> sqlalchemy.exc.OperationalError:
    """What a write meets when another process holds the SQLite file: SQLAlchemy's wrapper around sqlite3's."""
    return sqlalchemy.exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


async def dead_letters(bus: Bus) -> list[object]:
    return await stream_messages(bus.js, "DEADLETTER")


async def test_an_existing_durable_with_a_finite_max_deliver_is_updated(bus: Bus) -> None:
    """A consumer created by an earlier version (server-side max_deliver 5) is brought to the new
    settings at bind: no server-side limit, and its replay subject taken."""
    await bus.js.add_consumer("ROSTER", ConsumerConfig(
        durable_name="test--old", ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, max_deliver=5,
        ack_wait=30, filter_subjects=[PersonChanged.subject()], max_ack_pending=10_000))

    async def handler(envelope: Envelope, event: object) -> None:
        pass

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--old", declare=True, handlers={PersonChanged: handler})
    runner.start()
    await runner.wait_bound()
    info = await bus.js.consumer_info("ROSTER", "test--old")
    await runner.stop()
    assert info.config.max_deliver == -1
    assert sorted(info.config.filter_subjects or []) == sorted([PersonChanged.subject(),
                                                                replay_subject("ROSTER", "test--old")])


async def test_a_database_locked_for_more_deliveries_than_max_deliver_is_waited_out(bus: Bus) -> None:
    """Eight deliveries meet a locked database (max_deliver is 3); the ninth is handled, once."""
    attempts: list[uuid.UUID] = []
    applied: list[uuid.UUID] = []

    async def handler(envelope: Envelope, event: object) -> None:
        attempts.append(envelope.id)
        if len(attempts) <= 8:
            raise locked()
        applied.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--locked", declare=True, handlers={PersonChanged: handler},
                            max_deliver=3, ack_wait=5, max_retry_delay=0.2)
    runner.start()
    env = person_changed()
    await bus.publish(env)
    await eventually(lambda: applied == [env.id], what="applied once the lock is gone", timeout=20)
    await eventually(lambda: runner.stats.handled == 1, what="acked")
    await runner.stop()
    assert attempts == [env.id] * 9
    assert runner.stats.transient == 8 and runner.stats.dead_lettered == 0
    assert await dead_letters(bus) == []
    info = await bus.js.consumer_info("ROSTER", "test--locked")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_unknown_failures_after_a_long_lock_still_get_max_deliver_tries(bus: Bus) -> None:
    """Deliveries spent on a lock do not count against a real failure: after six locked ones, two
    unknown failures (max_deliver 3) are retried and the event is handled; a third would have been
    dead-lettered."""
    outcomes: list[Exception | None] = [locked()] * 6 + [RuntimeError("flaky"), RuntimeError("flaky"), None]
    applied: list[uuid.UUID] = []

    async def handler(envelope: Envelope, event: object) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        applied.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--lock-then-bug", declare=True, handlers={PersonChanged: handler},
                            max_deliver=3, ack_wait=5, max_retry_delay=0.2)
    runner.start()
    env = person_changed()
    await bus.publish(env)
    await eventually(lambda: applied == [env.id], what="handled after the lock and two failures", timeout=20)
    await runner.stop()
    assert outcomes == [] and runner.stats.dead_lettered == 0
    assert await dead_letters(bus) == []


async def test_a_batch_meeting_a_lock_comes_back_whole_and_is_applied_once(bus: Bus) -> None:
    """The batch path: a locked database puts the whole batch back (not one by one, each waiting
    on the lock), as many times as it takes; then each event is applied once."""
    envelopes = [person_changed() for _ in range(5)]
    for env in envelopes:
        await bus.publish(env)  # before the runner starts: its first fetch is one batch of five
    tries: list[int] = []  # the lock holds for the first six writes, batch or single
    applied: list[uuid.UUID] = []

    async def batch(items: Sequence[tuple[Envelope, events.Event]]) -> None:
        tries.append(len(items))
        if len(tries) <= 6:
            raise locked()
        applied.extend(envelope.id for envelope, _ in items)

    async def one(envelope: Envelope, event: object) -> None:
        tries.append(1)
        if len(tries) <= 6:
            raise locked()
        applied.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--locked-batch", declare=True, handlers={PersonChanged: one},
                            batch_handler=batch, max_deliver=3, ack_wait=5, max_retry_delay=0.2)
    with structlog.testing.capture_logs() as logs:
        runner.start()
        await eventually(lambda: sorted(applied) == sorted(e.id for e in envelopes), what="each applied", timeout=20)
        await eventually(lambda: runner.stats.handled == 5, what="all acked")
        await runner.stop()
    assert len(applied) == 5 and runner.stats.dead_lettered == 0
    said = [line["event"] for line in logs]
    assert "batch_retry_transient" in said and "batch_failed_one_by_one" not in said
    assert await dead_letters(bus) == []


async def test_keyed_consumers_wait_out_a_lock_too(bus: Bus) -> None:
    person = uuid.uuid4()
    tries: dict[uuid.UUID, int] = {}
    applied: list[uuid.UUID] = []

    async def handler(envelope: Envelope, event: object) -> None:
        tries[envelope.id] = tries.get(envelope.id, 0) + 1
        if tries[envelope.id] <= 5:
            raise TransientError("database busy", delay=0.05)
        applied.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--locked-keyed", declare=True, handlers={PersonChanged: handler},
                            max_deliver=2, ack_wait=5, max_retry_delay=0.2, key=lambda e: person)
    runner.start()
    envelopes = [person_changed() for _ in range(3)]
    for env in envelopes:
        await bus.publish(env)
    await eventually(lambda: sorted(applied) == sorted(e.id for e in envelopes), what="each applied", timeout=20)
    await eventually(lambda: runner.stats.handled == 3, what="all acked")
    await runner.stop()
    assert len(applied) == 3 and runner.stats.dead_lettered == 0
    assert await dead_letters(bus) == []


# --- the realistic case: a backup holds notify's database while a fan-out arrives ---------------------------
PEOPLE = 150


@pytest.fixture
async def everyone(roster: RosterApp, roster_settings: Settings, clock: ManualClock) -> list[uuid.UUID]:
    _, errors, _ = await import_text(generate(people=PEOPLE, today=clock.now().date()), settings=roster_settings,
                                     clock=clock, publish=False)
    assert errors == []
    return [pid for _, pid, _ in await link_to_telegram(roster_settings.db_url, first_chat=300_000, at=clock.now())]


async def test_a_fan_out_arriving_while_a_backup_locks_notify_is_created_once_after_it(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, clock: ManualClock, everyone: list[uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # time scaled down: each write waits one second for the lock (thirty in production)
    monkeypatch.setattr(shared.store, "SQLITE_BUSY_TIMEOUT_S", 1)
    settings = NotifySettings(home=tmp_path / "notify-home", nats_url=nats_server.url, health_port=free_port(),
                              tick_seconds=0.2, max_deliver=5, call_reminders=False)
    notify = notify_bootstrap.build(settings, clock=clock)
    await notify.start()
    try:
        for consumer in notify.consumers:
            await consumer.wait_bound()
        requests = next(c for c in notify.consumers if c.durable == "notify--on_requests")
        backup = sqlite3.connect(settings.home / "notify.db", isolation_level=None)
        backup.execute("BEGIN EXCLUSIVE")
        try:
            request = events.NotificationRequested(kind="test.fanout", about="route-closed", occurrence="1",
                                                   person_ids=everyone, text="Mopti route closed.")
            await bus.publish(Envelope.wrap(request, source="lessons", occurred_at=datetime.now(UTC)))
            # max_deliver (5) failed deliveries: the old policy dead-lettered it at the fifth
            await eventually(lambda: requests.stats.transient >= settings.max_deliver,
                             what="the lock outlasting max_deliver tries", timeout=60)
            assert await created(notify) == 0
        finally:
            backup.rollback()
            backup.close()
        await eventually(lambda: _at_least(created(notify), PEOPLE), what="every notification", timeout=60)
        await eventually(lambda: requests.stats.handled == 1, what="the request acked")
        async with notify.db.read() as session:
            recipients = (await session.exec(select(Notification.person_id).where(
                Notification.kind == "test.fanout"))).all()
        assert sorted(recipients) == sorted(everyone)  # each person once
        assert requests.stats.dead_lettered == 0
        assert await dead_letters(bus) == []
    finally:
        await notify.stop()


async def created(app: notify_bootstrap.NotifyApp) -> int:
    async with app.db.read() as session:
        return (await session.exec(select(func.count()).select_from(Notification).where(
            Notification.kind == "test.fanout"))).one()


async def _at_least(count: "object", n: int) -> bool:
    return await count >= n  # type: ignore[operator]


# --- cmcoord deadletter ----------------------------------------------------------------------------------
async def test_dead_letters_are_listed_shown_and_replayed_to_their_consumer_once(
    tmp_path: Path, nats_server: NatsServer, bus: Bus,
) -> None:
    """A bug dead-letters an event after max_deliver tries; once fixed, `cmcoord deadletter replay`
    gives it back to that consumer only, which handles it once; replaying again does nothing."""
    broken = True
    applied: list[uuid.UUID] = []
    bystander: list[uuid.UUID] = []

    async def handler(envelope: Envelope, event: object) -> None:
        if broken:
            raise RuntimeError("bug in handler")
        applied.append(envelope.id)

    async def other(envelope: Envelope, event: object) -> None:
        bystander.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--buggy", declare=True, handlers={PersonChanged: handler},
                            max_deliver=3, ack_wait=5)
    watcher = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--bystander", declare=True, handlers={PersonChanged: other})
    runner.start()
    watcher.start()
    try:
        env = person_changed()
        await bus.publish(env)
        await eventually(lambda: runner.stats.dead_lettered == 1, what="dead-lettered after three failures")
        env_vars = service_env(tmp_path / "home", nats_server.url)

        code, out, err = await cli("deadletter", "list", "--format", "json", env=env_vars)
        assert code == 0, err
        (listed,) = json.loads(out)
        assert (listed["consumer"], listed["event_id"], listed["original_subject"], listed["stream"]) == (
            "test--buggy", str(env.id), PersonChanged.subject(), "ROSTER")
        assert listed["reason"].startswith("failed 3 times: bug in handler")
        code, out, err = await cli("deadletter", "list", env=env_vars)
        assert code == 0 and "test--buggy" in out and str(env.id) in out

        code, out, err = await cli("deadletter", "show", str(listed["seq"]), env=env_vars)
        assert code == 0, err
        shown = json.loads(out)
        assert shown["message"]["id"] == str(env.id) and shown["headers"]["Cmcoord-Consumer"] == "test--buggy"

        broken = False  # the fix is deployed
        code, out, err = await cli("deadletter", "replay", str(listed["seq"]), env=env_vars)
        assert code == 0, err
        assert f"replayed {listed['seq']} to test--buggy" in out
        await eventually(lambda: applied == [env.id], what="the replay handled")
        await eventually(lambda: runner.stats.handled == 1, what="and acked")

        code, out, err = await cli("deadletter", "replay", str(listed["seq"]), env=env_vars)
        assert code == 1 and "no dead letter" in err  # gone: replaying it again is refused
        code, out, err = await cli("deadletter", "replay", "--all", env=env_vars)
        assert code == 0 and "no dead letters to replay" in out
        code, out, err = await cli("deadletter", "list", "--format", "json", env=env_vars)
        assert code == 0 and json.loads(out) == []
        code, out, err = await cli("deadletter", "show", str(listed["seq"]), env=env_vars)
        assert code == 1 and "no dead letter" in err

        # nothing more came: the first replay was handled once, by the consumer that had given up only
        await eventually(lambda: watcher.stats.handled == 1, what="the bystander's one delivery")
        info = await bus.js.consumer_info("ROSTER", "test--buggy")
        assert info.num_pending == 0 and info.num_ack_pending == 0
        assert applied == [env.id] and bystander == [env.id]
    finally:
        await runner.stop()
        await watcher.stop()


async def test_a_replay_interrupted_before_the_dead_letter_was_removed_is_not_delivered_twice(bus: Bus) -> None:
    """Replaying the same dead letter twice (a crash between the publish and the delete): the
    second publish carries the same message id and JetStream drops it."""
    broken = True
    applied: list[uuid.UUID] = []

    async def handler(envelope: Envelope, event: object) -> None:
        if broken:
            raise RuntimeError("bug in handler")
        applied.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--twice", declare=True, handlers={PersonChanged: handler},
                            max_deliver=2, ack_wait=5)
    runner.start()
    try:
        env = person_changed()
        await bus.publish(env)
        await eventually(lambda: runner.stats.dead_lettered == 1, what="dead-lettered")
        (letter,) = await list_dead_letters(bus.js, consumer="test--twice")
        broken = False
        first = await replay(bus.js, letter)
        second = await replay(bus.js, letter)  # as if the delete had not happened
        assert first == second
        await eventually(lambda: applied == [env.id], what="the replay handled")
        await eventually(lambda: runner.stats.handled == 1, what="and acked")
        info = await bus.js.consumer_info("ROSTER", "test--twice")
        assert info.num_pending == 0 and info.num_ack_pending == 0 and applied == [env.id]
        assert await list_dead_letters(bus.js) == []
    finally:
        await runner.stop()


async def test_replay_is_refused_for_a_consumer_that_does_not_exist(
    tmp_path: Path, nats_server: NatsServer, bus: Bus,
) -> None:
    """A dead letter whose consumer is gone stays where it is, and the command says why."""
    env = person_changed()
    await bus.publish_raw("cmcoord.deadletter.test--gone", env.to_bytes(), msg_id="dl-gone", headers={
        "Cmcoord-Reason": "failed 5 times: bug", "Cmcoord-Consumer": "test--gone",
        "Cmcoord-Original-Subject": PersonChanged.subject(), "Cmcoord-Stream-Seq": "7"})
    code, out, err = await cli("deadletter", "replay", "--consumer", "test--gone",
                               env=service_env(tmp_path / "home", nats_server.url))
    assert code == 1 and "no consumer test--gone on stream ROSTER" in err
    assert len(await list_dead_letters(bus.js)) == 1
