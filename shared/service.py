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

from shared.bus import Bus, explain_missing
from shared.health import HealthServer, ReadinessCheck, Route
from shared.metrics import ServiceMetrics
from shared.migrations import migrate
from shared.settings import ServiceSettings
from shared.store import Database, OutboxRelay
from shared.topology import missing

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
    health.waiting = "a connection to NATS"  # (its URL may hold a password: not shown)
    bus = await Bus.open(settings.nats_url, source=service, instance=instance, auth=settings.nats_auth())
    await _topology_when_ready(bus, service, health)
    health.waiting = None
    if metrics is not None:
        metrics.bus = bus
    return health, bus


async def _topology_when_ready(bus: Bus, service: str, health: HealthServer | None = None) -> None:
    """Wait until the streams and durables this service needs exist as declared (`cmcoord nats-init`
    creates them; in Kubernetes its Job may still be running, and a cluster starting up has no
    JetStream leader for a few seconds). Says what is missing, at most once a minute."""
    delay, said = 0.5, 0.0
    while True:
        try:
            problems = await missing(bus.js, service)
        except (NatsTimeoutError, ServiceUnavailableError, TimeoutError) as exc:
            problems = [f"JetStream not answering ({str(exc) or type(exc).__name__})"]
        if not problems:
            return
        if health is not None:  # /readyz says it: `cmcoord up` names it when the start takes too long
            health.waiting = f"NATS topology (missing: {'; '.join(problems)[:200]})"
        if time.monotonic() - said > 60:
            log.error("nats_topology_missing", error=explain_missing(problems))
            said = time.monotonic()
        await asyncio.sleep(delay)  # back-off between checks, not synchronisation
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
