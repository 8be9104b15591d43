"""nats-server down longer than JetStream's duplicate window: the roster
process survives, resumes by itself, loses nothing and applies nothing twice."""

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from services.roster.config import Settings
from services.roster.models import Deployment
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import Envelope, HandoverNoteSubmitted
from shared.natsserver import NatsServer
from tests.helpers import (
    ADMIN_AUTH,
    cli,
    eventually,
    service_env,
    start_service,
    stop_process,
    stream_events,
)
from tests.integration.roster_db import deployments, handover_notes

# Three minutes by default: longer than nats-py's default reconnect budget
# (~2 min) and than the stream's two-minute duplicate window.
OUTAGE = float(os.environ.get("CMCOORD_TEST_OUTAGE_SECONDS", "185"))


async def readiness(port: int) -> dict | None:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return await resp.json()
    except aiohttp.ClientError:
        return None


def handover(dep: Deployment) -> Envelope:
    now = datetime.now(UTC)
    return Envelope.wrap(HandoverNoteSubmitted(person_id=dep.person_id, deployment_id=dep.id,
                                               advice_to_successor="Keep the HNS4D log current.", submitted_at=now),
                         source="bot", occurred_at=now)


async def ready_with_nats(port: int) -> bool:
    body = await readiness(port)
    return bool(body and body["ready"])


@pytest.mark.slow
@pytest.mark.field  # three minutes of waiting: `make test-field` (CI runs it), so `make test` stays near ten
async def test_roster_rides_out_a_long_nats_outage(
    tmp_path: Path, nats_server: NatsServer, roster_settings: Settings, clock: ManualClock
) -> None:
    from services.roster.samples import generate

    env = service_env(roster_settings.home, nats_server.url,
                      CMCOORD_ROSTER_HEALTH_PORT=str(roster_settings.health_port),
                      CMCOORD_ROSTER_SCAN_INTERVAL_SECONDS="5")
    sample = tmp_path / "roster.csv"
    sample.write_text(generate(people=30, today=datetime.now(UTC).date()))
    code, _, err = await cli("roster", "import", str(sample), env=env)
    assert code == 0, err
    proc = start_service("services.roster", env, tmp_path / "roster.log")
    bus = await Bus.open(nats_server.url, source="test", patience=10, auth=ADMIN_AUTH)
    try:
        await eventually(lambda: ready_with_nats(roster_settings.health_port), timeout=30, what="roster ready")
        info = await bus.js.stream_info("ROSTER")
        assert info.config.duplicate_window == 120  # the window the outage outlasts
        deps = await deployments(roster_settings)
        first, second = handover(deps[0]), handover(deps[1])
        first_seq = await bus.publish(first)
        await eventually(lambda: _recorded(bus, 1), what="first note recorded")
        await bus.close()

        nats_server.stop()
        # While NATS is away: a roster change commits, its events wait in the outbox.
        today = datetime.now(UTC).date()
        sample.write_text(sample.read_text() + f"Outage Person,outage@ocha.example,,,OCHA,en,UTC,TD,Abeche,ROWCA,"
                          f"CMCoord Officer 9,cmcoord_officer,{today},{today + timedelta(days=100)},,,\n")
        code, out, err = await cli("roster", "import", str(sample), env=env, timeout=120)
        assert code == 0, err
        assert "NATS not reachable" in out
        body = await readiness(roster_settings.health_port)
        assert body is not None and body["checks"]["nats"] is False and body["checks"]["store"] is True

        await asyncio.sleep(OUTAGE)  # the outage itself is what is under test
        assert proc.poll() is None, "the roster process must ride out the outage"

        nats_server.start()
        await eventually(lambda: ready_with_nats(roster_settings.health_port), timeout=60, what="roster ready again")
        bus = await Bus.open(nats_server.url, source="test", patience=10, auth=ADMIN_AUTH)
        # the events committed during the outage are published
        await eventually(lambda: _assigned_in(bus, "TD"), timeout=60, what="outage-time events published")
        # consuming resumed: a new note is applied
        await bus.publish(second)
        await eventually(lambda: _recorded(bus, 2), timeout=30, what="second note recorded")
        # the first note again, with the same message id, now outside the duplicate window: JetStream
        # stores it, and the roster's idempotency record keeps it from applying twice
        seq = await bus.publish(first)
        if OUTAGE > 120:
            assert seq > first_seq, "past the duplicate window JetStream stores the same id again"
        await eventually(lambda: _consumer_caught_up(bus, seq), timeout=30, what="redelivered note consumed")
        assert len(await stream_events(bus.js, "ROSTER", type_prefix="roster.handover")) == 2
        assert sorted(n.revision for n in await handover_notes(roster_settings)) == [1, 1]
        assert proc.poll() is None
    finally:
        await bus.close()
        stop_process(proc)


async def _recorded(bus: Bus, n: int) -> bool:
    return len(await stream_events(bus.js, "ROSTER", type_prefix="roster.handover")) == n


async def _assigned_in(bus: Bus, country: str) -> bool:
    events = await stream_events(bus.js, "ROSTER", type_prefix="roster.deployment.assigned")
    return any(e.data["country"] == country for e in events)


async def _consumer_caught_up(bus: Bus, seq: int) -> bool:
    info = await bus.js.consumer_info("BOT", "roster--on_handover_submitted")
    return info.delivered.stream_seq >= seq and info.num_ack_pending == 0 and info.num_pending == 0


async def test_a_service_stops_cleanly_while_nats_is_down(
    tmp_path: Path, nats_server: NatsServer, roster_settings: Settings
) -> None:
    env = service_env(roster_settings.home, nats_server.url,
                      CMCOORD_ROSTER_HEALTH_PORT=str(roster_settings.health_port))
    proc = start_service("services.roster", env, tmp_path / "roster.log")
    try:
        await eventually(lambda: ready_with_nats(roster_settings.health_port), timeout=30, what="roster ready")
        nats_server.stop()
        await eventually(lambda: _nats_down(roster_settings.health_port), timeout=15, what="roster sees NATS down")
        stop_process(proc)
        assert proc.returncode == 0, (tmp_path / "roster.log").read_text()[-2000:]
    finally:
        stop_process(proc, kill=True)


async def _nats_down(port: int) -> bool:
    body = await readiness(port)
    return bool(body) and body["checks"]["nats"] is False
