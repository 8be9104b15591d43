"""The consumer runner and publisher against a real nats-server."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from nats.micro import add_service

from shared.bus import Bus, ConsumerRunner, TransientError, answers_finished
from shared.contracts.query import answer, ask
from shared.contracts.roster import CONTACTS, ContactsPage, ContactsRequest
from shared.events import Envelope, PersonChanged
from tests.helpers import eventually, stream_events, stream_messages


def person_changed(**kw: object) -> Envelope:
    return Envelope.wrap(PersonChanged(person_id=uuid.uuid4(), created=True), source="roster",
                         occurred_at=datetime.now(UTC), **kw)  # type: ignore[arg-type]


async def test_publishing_the_same_event_twice_stores_it_once(bus: Bus) -> None:
    env = person_changed()
    first = await bus.publish(env)
    second = await bus.publish(env)
    assert first == second
    assert [e.id for e in await stream_events(bus.js, "ROSTER")] == [env.id]


async def test_a_transient_failure_is_retried_and_applied_once(bus: Bus) -> None:
    attempts: list[uuid.UUID] = []
    applied: list[uuid.UUID] = []

    async def handler(envelope: Envelope, event: object) -> None:
        attempts.append(envelope.id)
        if len(attempts) == 1:
            raise TransientError("database busy", delay=0.1)
        applied.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--transient", declare=True, handlers={PersonChanged: handler},
                            max_deliver=3, ack_wait=5)
    runner.start()
    env = person_changed()
    await bus.publish(env)
    await eventually(lambda: applied == [env.id], what="applied after one retry")
    assert attempts == [env.id, env.id]
    await runner.stop()
    assert runner.stats.redelivered == 1 and runner.stats.dead_lettered == 0


async def test_poison_message_goes_to_dead_letter_after_max_deliver_and_consuming_goes_on(bus: Bus) -> None:
    seen: list[uuid.UUID] = []
    poison = person_changed()

    async def handler(envelope: Envelope, event: object) -> None:
        if envelope.id == poison.id:
            raise RuntimeError("bug in handler")
        seen.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--poison", declare=True, handlers={PersonChanged: handler},
                            max_deliver=3, ack_wait=5)
    runner.start()
    await bus.publish(poison)
    good = person_changed()
    await bus.publish(good)
    await eventually(lambda: good.id in seen, what="the next message handled")
    dead = await eventually(lambda: stream_messages(bus.js, "DEADLETTER"), what="dead letter")
    await runner.stop()
    assert len(dead) == 1
    assert Envelope.from_bytes(dead[0].data).id == poison.id
    assert dead[0].headers["Cmcoord-Reason"].startswith("failed 3 times: bug in handler")
    assert dead[0].headers["Cmcoord-Original-Subject"] == PersonChanged.subject()
    info = await bus.js.consumer_info("ROSTER", "test--poison")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_malformed_messages_are_dead_lettered_at_once(bus: Bus) -> None:
    seen: list[uuid.UUID] = []

    async def handler(envelope: Envelope, event: object) -> None:
        seen.append(envelope.id)

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--malformed", declare=True, handlers={PersonChanged: handler})
    runner.start()
    subject = PersonChanged.subject()
    await bus.publish_raw(subject, b"{not json", msg_id="garbage-1")
    bad_payload = person_changed().model_dump(mode="json")
    bad_payload["data"] = {"person_id": "not-a-uuid"}  # a valid envelope around a payload that breaks the schema
    await bus.publish_raw(subject, json.dumps(bad_payload).encode(), msg_id="garbage-2")
    good = person_changed()
    await bus.publish(good)
    await eventually(lambda: seen == [good.id], what="valid message after two malformed ones")
    dead = await eventually(lambda: _at_least(stream_messages(bus.js, "DEADLETTER"), 2), what="two dead letters")
    await runner.stop()
    assert all(m.headers["Cmcoord-Reason"].startswith("invalid:") for m in dead)
    assert runner.stats.dead_lettered == 2 and runner.stats.redelivered == 0


async def _at_least(messages: "asyncio.Future[list[object]] | object", n: int) -> list[object] | None:
    found = await messages  # type: ignore[misc]
    return found if len(found) >= n else None


async def test_keyed_consumers_handle_keys_side_by_side_and_each_key_in_order(bus: Bus) -> None:
    """One person's messages wait for the first; another person's go meanwhile; all acked."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    release = asyncio.Event()
    handled: list[tuple[uuid.UUID, int]] = []
    order: dict[uuid.UUID, int] = {}

    async def handler(envelope: Envelope, event: PersonChanged) -> None:
        n = order[envelope.id]
        if event.person_id == alice and n == 0:
            await release.wait()  # alice's first message is slow
        handled.append((event.person_id, n))

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--keyed", declare=True, handlers={PersonChanged: handler},
                            max_deliver=3, ack_wait=30, key=lambda e: e.person_id)  # type: ignore[attr-defined]
    runner.start()
    for n, person in enumerate([alice, alice, bob, bob]):
        env = Envelope.wrap(PersonChanged(person_id=person, created=False), source="roster",
                            occurred_at=datetime.now(UTC))
        order[env.id] = n % 2
        await bus.publish(env)
    await eventually(lambda: handled == [(bob, 0), (bob, 1)], what="bob's messages while alice's first waits")
    release.set()
    await eventually(lambda: len(handled) == 4, what="alice's, in order")
    assert handled[2:] == [(alice, 0), (alice, 1)]
    await eventually(lambda: runner.stats.handled == 4, what="all acked")
    await runner.stop()


async def test_a_long_queue_for_one_key_holds_up_no_other_and_is_not_redelivered(bus: Bus) -> None:
    """Ten messages for alice, each slow, with two keys worked on at once and an ack wait shorter
    than alice's queue: bob's message goes first, alice's ten are each handled once, in order."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    handled: list[tuple[uuid.UUID, int]] = []
    order: dict[uuid.UUID, int] = {}

    async def handler(envelope: Envelope, event: PersonChanged) -> None:
        if event.person_id == alice:
            await asyncio.sleep(0.3)  # a slow handler (one Telegram message a second per chat), not a synchronisation
        handled.append((event.person_id, order[envelope.id]))

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--long-queue", declare=True, handlers={PersonChanged: handler},
                            max_deliver=3, ack_wait=1.5, batch=2, key=lambda e: e.person_id)  # type: ignore[attr-defined]
    for n, person in enumerate([alice] * 10 + [bob]):
        env = Envelope.wrap(PersonChanged(person_id=person, created=False), source="roster",
                            occurred_at=datetime.now(UTC))
        order[env.id] = n
        await bus.publish(env)
    runner.start()
    await eventually(lambda: (bob, 10) in handled, what="bob's message while alice's queue is worked through")
    assert len(handled) < 5
    await eventually(lambda: runner.stats.handled == 11, what="all acked", timeout=20)
    assert [n for person, n in handled if person == alice] == list(range(10))
    assert runner.stats.redelivered == 0
    await runner.stop()


async def test_a_batched_consumer_lingers_for_the_rest_of_a_wave_to_join_its_batch(bus: Bus) -> None:
    """The bot's reports of a fan-out come 30 a second: one fetched alone waits `linger` for the
    others, and they are applied together, in one call (one transaction in a service)."""
    batches: list[list[uuid.UUID]] = []

    async def one(envelope: Envelope, event: object) -> None:
        batches.append([envelope.id])

    async def batch(items: list[tuple[Envelope, object]]) -> None:
        batches.append([envelope.id for envelope, _ in items])

    runner = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--linger", declare=True, handlers={PersonChanged: one},
                            batch_handler=batch, max_deliver=3, ack_wait=30, linger=5.0)  # time to publish four
    runner.start()
    await runner.wait_bound()
    first = person_changed()
    await bus.publish(first)

    async def fetched() -> bool:  # the first is in the consumer's hands, not yet applied
        return (await bus.js.consumer_info("ROSTER", "test--linger")).num_ack_pending == 1

    await eventually(fetched, what="the first event fetched")
    rest = [person_changed() for _ in range(4)]
    for envelope in rest:
        await bus.publish(envelope)
    await eventually(lambda: runner.stats.handled == 5, what="all five applied")
    await runner.stop()
    assert batches == [[first.id, *(e.id for e in rest)]]


async def test_a_stopped_query_service_sends_the_answers_in_hand_and_cuts_short_only_the_late(bus: Bus) -> None:
    """A service stops its queries before closing the store they read: what it was answering is
    answered; an answer still running after the timeout is cancelled and waited for, not left to
    the event loop's end."""
    started, release = asyncio.Event(), asyncio.Event()
    cut: list[str] = []

    async def contacts(request: ContactsRequest) -> ContactsPage:
        started.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cut.append(request.query)
            raise
        return ContactsPage(query=request.query, total=0, offset=0, items=[])

    service = await add_service(bus.nc, name="roster", version="0.0.1")
    await answer(service, CONTACTS, contacts)
    asking = asyncio.ensure_future(ask(bus, CONTACTS, ContactsRequest(query="in hand"), timeout=10))
    await asyncio.wait_for(started.wait(), timeout=10)
    await service.stop()  # no new question, the one in hand still running
    finishing = asyncio.ensure_future(answers_finished(service, timeout=10))
    await asyncio.wait({finishing}, timeout=0.2)
    assert not finishing.done()  # waits for the answer
    release.set()
    await asyncio.wait_for(finishing, timeout=10)
    assert (await asking).query == "in hand"

    started.clear()
    release.clear()
    service = await add_service(bus.nc, name="roster", version="0.0.1")
    await answer(service, CONTACTS, contacts)
    asking = asyncio.ensure_future(ask(bus, CONTACTS, ContactsRequest(query="late"), timeout=1))
    await asyncio.wait_for(started.wait(), timeout=10)
    await service.stop()
    await answers_finished(service, timeout=0.2)
    assert cut == ["late"]  # cancelled and finished by the time the stop goes on
    with pytest.raises(TimeoutError):
        await asking
