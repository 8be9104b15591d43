"""What every service does first when it starts, and last when it stops."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence

import structlog
from aiohttp import web
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError
from sqlalchemy import Table

from shared.bus import Bus, StreamSpec, all_streams, ensure_streams
from shared.health import HealthServer, ReadinessCheck, Route
from shared.metrics import ServiceMetrics
from shared.migrations import migrate
from shared.settings import ServiceSettings
from shared.store import Database, OutboxRelay

log = structlog.get_logger("service")


async def open_infrastructure(
    *, service: str, settings: ServiceSettings, db: Database, tables: Sequence[Table], readiness: ReadinessCheck,
    routes: Sequence[Route] = (), metrics: ServiceMetrics | None = None, package: str | None = None,
) -> tuple[HealthServer, Bus]:
    """Name this instance in the logs, migrate the store (when told to; else create missing
    tables), serve /healthz, /readyz and /metrics, connect to NATS (waiting for it) and make
    sure the streams exist (waiting for a starting cluster's JetStream)."""
    instance = settings.instance or f"{socket.gethostname()}:{os.getpid()}"
    structlog.contextvars.bind_contextvars(instance=instance)
    if settings.migrate_on_start and package is not None:
        await migrate(db, package=package, service=service, tables=tables)
    else:
        await db.create_tables(tables)
    pages = list(routes)
    if metrics is not None:
        async def scrape(_request: web.Request) -> web.Response:
            body, content_type = await metrics.render()
            return web.Response(body=body, headers={"Content-Type": content_type})

        pages.append(("/metrics", scrape))
    async def outbox() -> dict[str, object]:
        return {"outbox": await OutboxRelay.backlog(db)}

    health = HealthServer(service=service, host=settings.health_host, port=settings.health_port, readiness=readiness,
                          routes=pages, details=outbox)
    await health.start()
    bus = await Bus.open(settings.nats_url, source=service, instance=instance, auth=settings.nats_auth())
    await _streams_when_jetstream_ready(bus, all_streams(replicas=settings.stream_replicas))
    if metrics is not None:
        metrics.bus = bus
    return health, bus


async def _streams_when_jetstream_ready(bus: Bus, specs: Sequence[StreamSpec], *, patience: float = 120.0) -> None:
    """A cluster starting up has no JetStream leader for a few seconds: wait for it (with back-off)."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            await ensure_streams(bus.js, specs)
            return
        except (NatsTimeoutError, ServiceUnavailableError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("jetstream_not_ready_waiting", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)  # back-off between attempts, not synchronisation
            delay = min(delay * 2, 5.0)


async def close_infrastructure(
    *, relay: OutboxRelay | None, bus: Bus | None, health: HealthServer | None, db: Database, budget: float = 4.0
) -> None:
    """After the service's own work has stopped: publish what the outbox holds, drain
    NATS, stop answering /healthz and /readyz, close the database — within `budget`
    seconds whatever NATS does (what the outbox still holds goes at the next start)."""
    deadline = time.monotonic() + budget
    if relay is not None:
        await relay.stop(flush_timeout=budget / 2)
    if bus is not None:
        try:
            await asyncio.wait_for(bus.close(), timeout=max(0.5, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("nats_drain_cut_short_at_stop")
            await bus.nc.close()
    if health is not None:
        await health.stop()
    await db.dispose()
