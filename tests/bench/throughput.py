"""Roster event throughput as a ratio to bare nats-py JetStream, same server, same run.

Both sides: the same producer publishes N events one by one, awaiting each
PubAck (as the outbox relay does), while a consumer drains them.
- baseline: a bare nats-py pull consumer that acks each message;
- roster: the roster's own consumer, which for every event claims the event
  id, upserts the handover note in SQLite, writes a HandoverRecorded event to
  the outbox in the same transaction, commits and acks; the relay publishes
  the outbox event. The clock stops when the last outbox event is in JetStream.
A backlog-drain figure (consumer only, events published beforehand) is
reported beside it for both.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig
from sqlmodel import select

from services.roster import bootstrap
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.models import Deployment
from services.roster.samples import generate
from shared.bus import Bus, StreamSpec, ensure_streams
from shared.clock import SystemClock
from shared.events import Envelope, HandoverNoteSubmitted
from shared.natsserver import NatsServer, free_port
from shared.topology import DEFAULT_ACK_WAIT
from tests.bench.common import result
from tests.helpers import declare_topology


def _events(deployments: list[Deployment], n: int) -> list[Envelope]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        dep = deployments[i % len(deployments)]
        event = HandoverNoteSubmitted(person_id=dep.person_id, deployment_id=dep.id,
                                      key_counterparts=f"Liaison cell, revision {i}",
                                      advice_to_successor="Keep the deconfliction log current.", submitted_at=now)
        out.append(Envelope.wrap(event, source="bot", occurred_at=now))
    return out


async def _publish_all(bus: Bus, envelopes: list[Envelope], subject: str | None = None) -> None:
    for env in envelopes:
        if subject is None:
            await bus.publish(env)
        else:
            await bus.publish_raw(subject, env.to_bytes(), msg_id=str(env.id))


async def _bare(bus: Bus, envelopes: list[Envelope], *, backlog: bool) -> float:
    name = "BARE_BACKLOG" if backlog else "BARE"
    subject = f"bench.{name.lower()}"
    await ensure_streams(bus.js, [StreamSpec(name=name, subjects=(subject,))])
    await bus.js.add_consumer(name, ConsumerConfig(durable_name="bare", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=10_000))
    sub = await bus.js.pull_subscribe_bind(durable="bare", stream=name)
    n = len(envelopes)

    async def consume() -> None:
        done = 0
        while done < n:
            try:
                msgs = await sub.fetch(64, timeout=1)
            except Exception:
                continue
            for m in msgs:
                await m.ack()
            done += len(msgs)

    if backlog:
        await _publish_all(bus, envelopes, subject)
        started = time.perf_counter()
        await consume()
    else:
        started = time.perf_counter()
        await asyncio.gather(_publish_all(bus, envelopes, subject), consume())
    return n / (time.perf_counter() - started)


async def _roster(settings: Settings, bus: Bus, envelopes: list[Envelope], *, backlog: bool) -> float:
    app = bootstrap.build(settings)
    n = len(envelopes)
    before = (await bus.js.stream_info("ROSTER")).state.messages

    async def all_recorded() -> None:
        while (await bus.js.stream_info("ROSTER")).state.messages < before + n:
            await asyncio.sleep(0.005)  # polling the stream's count: the measured condition

    if backlog:
        await _publish_all(bus, envelopes)
        started = time.perf_counter()
        await app.start()
        await all_recorded()
    else:
        await app.start()
        await app.consumers[0].wait_bound()
        started = time.perf_counter()
        await asyncio.gather(_publish_all(bus, envelopes), all_recorded())
    elapsed = time.perf_counter() - started
    await app.stop()
    return n / elapsed


async def measure(work: Path, *, events: int) -> list[dict[str, object]]:
    server = NatsServer(store_dir=work / "nats" / "jetstream", name="bench").start()
    await declare_topology(server.url, ack_wait=DEFAULT_ACK_WAIT)  # as `cmcoord nats-init`, its ack wait too
    try:
        settings = Settings(home=work / "home", nats_url=server.url, health_port=free_port(), scan_interval_seconds=3600)
        clock = SystemClock()
        _, errors, _ = await import_text(generate(people=200, today=clock.now().date()), settings=settings,
                                         clock=clock, publish=False)
        assert not errors
        db = bootstrap.build(settings).db
        async with db.read() as s:
            deployments = list((await s.exec(select(Deployment))).all())
        await db.dispose()
        bus = await Bus.open(server.url, source="bench", patience=10)
        # publish the import's outbox first so it does not count against the roster
        app = bootstrap.build(settings)
        await app.start()
        await app.stop()

        bare_live = await _bare(bus, _events(deployments, events), backlog=False)
        roster_live = await _roster(settings, bus, _events(deployments, events), backlog=False)
        bare_drain = await _bare(bus, _events(deployments, events), backlog=True)
        roster_drain = await _roster(settings, bus, _events(deployments, events), backlog=True)
        await bus.close()
    finally:
        server.stop()
    live, drain = roster_live / bare_live, roster_drain / bare_drain
    return [
        result("roster_event_throughput_ratio", live, "ratio", ">= 0.25", live >= 0.25, events=events,
               roster_events_per_s=round(roster_live), bare_nats_events_per_s=round(bare_live)),
        # Consume-only against a loop that acks and does nothing: informational. Every roster
        # event is a durable SQLite write (~0.6 ms per statement through aiosqlite).
        result("roster_backlog_drain_ratio", drain, "ratio", "informational", True, events=events,
               roster_events_per_s=round(roster_drain), bare_nats_events_per_s=round(bare_drain)),
    ]
