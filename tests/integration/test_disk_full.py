"""nats-server's disk fills up, then space is freed: the roster's events wait in
its outbox (none dropped, the backlog shown by /readyz and `cmcoord status`),
and once JetStream can write again they are published by themselves, each once.

The disk is real: a 96 MiB tmpfs mounted for nats-server's store (the tests run
as root, here and in CI). nats-server marks a stream that hit "no space left on
device" as failed until it restarts; nothing here restarts it: nats-server runs
under the `cmcoord up` supervisor, which sees the write error on /healthz, waits
while the disk is still full, and restarts it once there is room, saying so.
The roster process is not touched.
"""

import asyncio
import io
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
from services.roster.admin import import_text
from services.roster.config import Settings
from shared.bus import Bus
from shared.clock import SystemClock
from shared.natsserver import free_port
from shared.status import collect_status
from shared.supervisor import Supervisor, UpSettings
from tests.helpers import eventually, stream_events
from tests.integration.roster_db import outbox

pytestmark = pytest.mark.field  # faults as the field brings them: `make test-field` (CI runs it), apart from `make test`

HEADER = "name,email,organisation,country,duty_station,post_title,role,start,planned_end\n"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The store folder of a `cmcoord up` home at tmp_path / "up"."""
    disk = tmp_path / "up" / "jetstream"
    disk.mkdir(parents=True)
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
    out = io.StringIO()
    supervisor = Supervisor(  # `cmcoord up` with nats-server alone: the roster runs in this process
        home=tmp_path / "up", nats_port=free_port(), nats_http_port=free_port(), sandbox_port=None, services=(),
        out=out, settings=UpSettings(nats_write_error_restart_seconds=2),
    )
    stop = asyncio.Event()
    up = asyncio.create_task(supervisor.run(stop=stop))

    def said(text: str) -> list[str]:
        return [line for line in out.getvalue().splitlines() if text in line]

    await eventually(lambda: said("cmcoord ready"), timeout=30, what="the supervisor ready")
    assert supervisor.nats is not None and supervisor.nats.store_dir == small_disk
    nats_url = supervisor.nats_url
    settings = Settings(home=tmp_path / "home", nats_url=nats_url, health_port=free_port(), scan_interval_seconds=3600,
                        nats_user="roster", nats_password=supervisor.passwords["roster"])  # as `up` gives its child
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
            await collect_status(settings=settings, state={"nats_url": nats_url, "services": {
                "roster": {"health": f"http://127.0.0.1:{settings.health_port}"}}}, out=lines.append)
            assert any(line.startswith("roster") and f"outbox={len(written)} oldest=" in line for line in lines), lines
            assert app.relay is not None and app.relay.failing_since is not None

            # the supervisor sees the stream's write error, and holds the restart while the disk is full
            await eventually(lambda: said("no space left on device"), timeout=30, what="the write error told")
            await eventually(lambda: said("restart waits for free space"), timeout=30, what="the restart held")
            held_at = supervisor.nats_health_checked_at
            await eventually(lambda: supervisor.nats_health_checked_at > held_at + 2, timeout=10,
                             what="two more health checks")  # past the restart delay already: held, not restarted
            assert not said("restarting nats-server") and supervisor.nats.process is not None
            pid = supervisor.nats.process.pid

            filler.unlink()  # space freed; nothing else done by hand
            freed_at = datetime.now(UTC)

            async def published() -> bool:
                return (await readyz(settings.health_port))["outbox"]["pending"] == 0

            await eventually(published, timeout=60, interval=0.2, what="the outbox published")
            resumed_in = (datetime.now(UTC) - freed_at).total_seconds()
            assert len(said("restarting nats-server")) == 1, out.getvalue()
            assert "JetStream write error for" in said("restarting nats-server")[0]
            assert said(f"nats-server restarted on {nats_url}")
            assert supervisor.nats.process.pid != pid
            bus = await Bus.open(nats_url, source="test", patience=10,
                                 auth={"user": "admin", "password": supervisor.passwords["admin"]})
            in_stream = [e.id for e in await stream_events(bus.js, "ROSTER")]
            assert set(in_stream) == written and len(in_stream) == len(written)  # none lost, none twice
            assert [e["event"] for e in logs].count("outbox_publish_failing") == 1  # once per outage
            assert any(e["event"] == "outbox_publish_resumed" for e in logs)
            print(f"backlog {shown}; published {resumed_in:.1f}s after space was freed")
            print(out.getvalue())
    finally:
        if bus is not None:
            await bus.close()
        await app.stop()
        stop.set()
        await asyncio.wait_for(up, 30)
    assert said("cmcoord stopped")
