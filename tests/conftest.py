from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from services.roster import bootstrap
from services.roster.cli import import_text
from services.roster.config import Settings as RosterSettings
from services.roster.samples import generate
from shared.bus import Bus, all_streams, ensure_streams
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port

TODAY = date(2026, 3, 2)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(store_dir=tmp_path / "nats" / "jetstream", name="test", log_file=tmp_path / "nats.log").start()
    yield server
    server.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    b = await Bus.open(nats_server.url, source="test", patience=10)
    await ensure_streams(b.js, all_streams())
    yield b
    await b.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(TODAY.year, TODAY.month, TODAY.day, 9, 0, tzinfo=UTC))


@pytest.fixture
def roster_settings(tmp_path: Path, nats_server: NatsServer) -> RosterSettings:
    return RosterSettings(
        home=tmp_path / "home",
        nats_url=nats_server.url,
        health_port=free_port(),
        scan_interval_seconds=3600,
        max_deliver=3,
        ack_wait_seconds=5,
    )


@pytest.fixture
async def roster(roster_settings: RosterSettings, clock: ManualClock, bus: Bus) -> AsyncIterator[bootstrap.RosterApp]:
    app = bootstrap.build(roster_settings, clock=clock)
    await app.start()
    for consumer in app.consumers:
        await consumer.wait_bound()
    yield app
    await app.stop()


@pytest.fixture
async def sample_roster(roster_settings: RosterSettings, clock: ManualClock) -> str:
    """The 60-person demo roster imported (dated from the test's today)."""
    text = generate(people=60, today=clock.now().date())
    _, errors, _ = await import_text(text, settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    return text
