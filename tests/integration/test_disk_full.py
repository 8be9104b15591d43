"""nats-server's disk fills up, then space is freed: the roster's events wait in
its outbox (none dropped, the backlog shown by /readyz and `cmcoord status`),
and once JetStream can write again the relay publishes them by itself, each once.

The disk is real: a 96 MiB tmpfs mounted for nats-server's store (the tests run
as root, here and in CI). nats-server marks a stream that hit "no space left on
device" as failed until it restarts, so space is freed and nats-server restarted,
as its supervisor does; the roster process is not touched.
"""

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from services.roster import bootstrap
from services.roster.cli import import_text
from services.roster.config import Settings
from shared.bus import Bus
from shared.clock import SystemClock
from shared.natsserver import NatsServer, free_port
from shared.status import collect_status
from tests.helpers import eventually, stream_events
from tests.integration.roster_db import outbox

HEADER = "name,email,organisation,country,duty_station,post_title,role,start,planned_end\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Every free block taken by one file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:  # ENOSPC: full
            pass
        for size in (4096, 512, 1):  # the last partial blocks too
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                continue
    return filler


async def readyz(port: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
        return await resp.json()


async def test_publishing_resumes_by_itself_after_a_full_disk(
    tmp_path: Path, small_disk: Path
) -> None:
    clock = SystemClock()  # the backlog's age is real time
    nats = NatsServer(store_dir=small_disk / "jetstream", name="disk-full", log_file=tmp_path / "nats.log").start()
    settings = Settings(home=tmp_path / "home", nats_url=nats.url, health_port=free_port(), scan_interval_seconds=3600)
    app = bootstrap.build(settings, clock=clock)
    bus: Bus | None = None
    try:
        with capture_logs() as logs:
            await app.start()
            filler = fill(small_disk)
            assert os.statvfs(small_disk).f_bavail == 0

            today = clock.now().date()
            rows = "".join(f"Officer {i} Full,full{i}@ocha.example,OCHA,ML,Bamako,CMCoord Officer {i},cmcoord_officer,"
                           f"{today - timedelta(days=1)},{today + timedelta(days=120)}\n" for i in range(20))
            _, errors, _ = await import_text(HEADER + rows, settings=settings, clock=clock, publish=False)
            assert errors == []
            written = {e.id for e in await outbox(settings)}
            assert len(written) >= 20

            async def backlog_shown() -> dict[str, Any] | None:
                body = (await readyz(settings.health_port))["outbox"]
                age = body["oldest_age_seconds"]
                return body if body["pending"] == len(written) and age is not None and age >= 2 else None

            await eventually(lambda: any(e["event"] == "outbox_publish_failing" for e in logs), timeout=30,
                             what="the relay sees JetStream refuse")
            shown = await eventually(backlog_shown, timeout=10, what="the backlog on /readyz")
            lines: list[str] = []
            await collect_status(settings=settings, state={"nats_url": nats.url, "services": {
                "roster": {"health": f"http://127.0.0.1:{settings.health_port}"}}}, out=lines.append)
            assert any(line.startswith("roster") and f"outbox={len(written)} oldest=" in line for line in lines), lines
            assert app.relay is not None and app.relay.failing_since is not None

            filler.unlink()  # space freed ...
            nats.stop()  # ... and nats-server restarted, as its supervisor does (same store, same port)
            nats.start()
            freed_at = datetime.now(UTC)

            async def published() -> bool:
                return (await readyz(settings.health_port))["outbox"]["pending"] == 0

            await eventually(published, timeout=60, interval=0.2, what="the outbox published")
            resumed_in = (datetime.now(UTC) - freed_at).total_seconds()
            bus = await Bus.open(nats.url, source="test", patience=10)
            in_stream = [e.id for e in await stream_events(bus.js, "ROSTER")]
            assert set(in_stream) == written and len(in_stream) == len(written)  # none lost, none twice
            assert [e["event"] for e in logs].count("outbox_publish_failing") == 1  # once per outage
            assert any(e["event"] == "outbox_publish_resumed" for e in logs)
            print(f"backlog {shown}; published {resumed_in:.1f}s after space was freed")
    finally:
        if bus is not None:
            await bus.close()
        await app.stop()
        nats.stop()
