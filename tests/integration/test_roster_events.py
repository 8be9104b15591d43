"""The roster service's consumer and outbox end to end: idempotent, dead-lettering, crash-safe."""

import uuid
from datetime import UTC, datetime

import pytest

from services.roster.bootstrap import RosterApp, build
from services.roster.config import Settings
from services.roster.models import Deployment, HandoverNote
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import Envelope, HandoverNoteSubmitted
from tests.helpers import eventually, stream_events, stream_messages
from tests.integration.roster_db import deployments, handover_notes, outbox

# The store is under test here: run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


async def a_deployment(settings: Settings) -> Deployment:
    return (await deployments(settings))[0]


async def notes(settings: Settings) -> list[HandoverNote]:
    return await handover_notes(settings)


def handover(dep: Deployment, *, advice: str = "Meet the liaison officer weekly.") -> Envelope:
    event = HandoverNoteSubmitted(person_id=dep.person_id, deployment_id=dep.id, key_counterparts="G-CMCoord",
                                  advice_to_successor=advice, submitted_at=datetime.now(UTC))
    return Envelope.wrap(event, source="bot", occurred_at=datetime.now(UTC))


async def test_redelivered_event_has_no_second_effect(
    sample_roster: str, roster: RosterApp, roster_settings: Settings, bus: Bus
) -> None:
    dep = await a_deployment(roster_settings)
    env = handover(dep)
    await bus.publish(env)
    recorded = await eventually(lambda: stream_events(bus.js, "ROSTER", type_prefix="roster.handover"), what="recorded")
    assert recorded[0].correlation_id == env.correlation_id
    # The same event arriving again, as after a lost ack or beyond the duplicate window
    await bus.publish_raw(env.subject, env.to_bytes(), msg_id=f"{env.id}-again")
    await eventually(lambda: roster.consumers[0].stats.handled == 2, what="second delivery handled")
    assert [n.revision for n in await notes(roster_settings)] == [1]
    assert len(await stream_events(bus.js, "ROSTER", type_prefix="roster.handover")) == 1

    # a new submission of the note is a new event: a second revision
    await bus.publish(handover(dep, advice="Also: the access working group meets Mondays."))
    await eventually(lambda: _revisions(roster_settings, [2]), what="revision 2")


async def _revisions(settings: Settings, expected: list[int]) -> bool:
    return [n.revision for n in await notes(settings)] == expected


async def test_malformed_and_unknown_events_are_dead_lettered_while_the_next_is_handled(
    sample_roster: str, roster: RosterApp, roster_settings: Settings, bus: Bus
) -> None:
    dep = await a_deployment(roster_settings)
    subject = HandoverNoteSubmitted.subject()
    await bus.publish_raw(subject, b'{"id": "nope"}', msg_id="malformed")
    stranger = HandoverNoteSubmitted(person_id=uuid.uuid4(), deployment_id=dep.id, submitted_at=datetime.now(UTC))
    await bus.publish(Envelope.wrap(stranger, source="bot", occurred_at=datetime.now(UTC)))
    await bus.publish(handover(dep))
    await eventually(lambda: notes(roster_settings), what="the valid note stored")
    dead = await eventually(lambda: _two(stream_messages(bus.js, "DEADLETTER")), what="two dead letters")
    reasons = sorted(m.headers["Cmcoord-Reason"].split(":")[0] for m in dead)
    assert reasons == ["invalid", "refused"]


async def _two(messages: object) -> list[object] | None:
    found = await messages  # type: ignore[misc]
    return found if len(found) == 2 else None


async def test_events_committed_before_a_crash_are_published_by_the_next_start(
    sample_roster: str, roster_settings: Settings, clock: ManualClock, bus: Bus
) -> None:
    # sample_roster committed state and outbox rows without publishing: the
    # process "died" between commit and publish. Nothing is in the stream yet.
    pending = await outbox(roster_settings)
    assert len(pending) > 120
    assert await stream_events(bus.js, "ROSTER") == []
    app = build(roster_settings, clock=clock)
    await app.start()
    try:
        published = await eventually(
            lambda: _count(stream_events(bus.js, "ROSTER"), len(pending)), what="every outbox event published"
        )
        assert [e.id for e in published] == [e.id for e in pending]  # in commit order, each once
    finally:
        await app.stop()
    # a second start publishes nothing again
    app = build(roster_settings, clock=clock)
    await app.start()
    await app.stop()
    assert len(await stream_events(bus.js, "ROSTER")) == len(pending)


async def _count(events: object, n: int) -> list[Envelope] | None:
    found = await events  # type: ignore[misc]
    return found if len(found) == n else None
