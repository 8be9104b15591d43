"""The one host every service runs in: what it starts, in which order, and how it stops.

A service's `bootstrap.build()` returns a `ServiceHost` whose `compose` enters the
service's parts in order: the store (migrated, or missing tables created), the health
server (first, so /readyz can say what the start waits for), NATS (and its topology),
the outbox relay, the consumers, the query services, then the jobs. Each `enter_*`
pushes its stop onto an `AsyncExitStack`, so `stop()` undoes the start in reverse, and
a start that fails part way undoes what it entered. Readiness is computed in one place
from what was entered (NATS connected, the store answering, every consumer bound, the
queries served) and the checks a service adds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Generic, TypeVar

import nats.errors
import structlog
from aiohttp import web
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import ServiceUnavailableError
from nats.micro.service import Service
from sqlalchemy import Table

from shared.bus import Bus, ConsumerRunner, answers_finished, explain_missing
from shared.clock import Clock
from shared.health import HealthServer, Route
from shared.metrics import ServiceMetrics
from shared.migrations import migrate
from shared.periodic import Scheduler
from shared.settings import ServiceSettings
from shared.store import Consumes, Database, OutboxRelay, Transactional
from shared.topology import missing

log = structlog.get_logger("service")

P = TypeVar("P")
Check = Callable[[], Awaitable[bool]]
QUERY_SERVICE_CHECKS = ("nats", "store", "consumers", "queries")
INFRASTRUCTURE_STOP_BUDGET = 4.0  # seconds for the outbox flush and the NATS drain together


def consumers_of(table: dict[str, Consumes], *, bus: Bus, db: Database, max_deliver: int,
                 after: Callable[[], None] | None = None) -> list[ConsumerRunner]:
    """A service's consumers table (durable name -> what it consumes) as consumer runners, each
    applying its events once through `Transactional`; `after` is told after each commit."""
    runners = []
    for durable, consumes in table.items():
        applied = Transactional(db=db, consumer=durable, apply=consumes.apply, lookup=consumes.lookup,
                                prefetch=consumes.prefetch, after=after if consumes.wakes else None)
        runners.append(ConsumerRunner(bus=bus, stream=consumes.stream, durable=durable,
                                      handlers={cls: applied.one for cls in consumes.apply},
                                      batch_handler=applied.many if consumes.batched else None,
                                      max_deliver=max_deliver, linger=consumes.linger))
    return runners


class ServiceHost(Generic[P]):
    """One service process: `start()` runs `compose(host)`, which enters the parts in order;
    `stop()` stops them in reverse. `parts` holds what only this service has (its jobs'
    work, its own servers), for its composition root and its tests."""

    def __init__(self, *, service: str, settings: ServiceSettings, clock: Clock, db: Database, parts: P,
                 compose: Callable[[ServiceHost[P]], Awaitable[None]], metrics: ServiceMetrics | None = None,
                 checks: Sequence[str] = QUERY_SERVICE_CHECKS) -> None:
        self.service, self.settings, self.clock, self.db, self.parts = service, settings, clock, db, parts
        self.metrics = metrics or ServiceMetrics(service)
        self.health: HealthServer | None = None
        self.bus: Bus | None = None
        self.relay: OutboxRelay | None = None
        self.consumers: list[ConsumerRunner] = []
        self.query_service: Service | None = None  # the NATS micro service answering the queries
        self.scheduler = Scheduler()
        self.started_details: dict[str, Any] = {}  # said with `<service>_started`
        self.stop_began: float | None = None  # loop time the stop began
        self._compose = compose
        self._check_names = tuple(checks)
        self._checks: dict[str, Check] = {}
        self._failures: list[Callable[[], Awaitable[str]]] = []
        self._stack = AsyncExitStack()
        self._consumers_stopping: asyncio.Future[Any] | None = None
        self._infrastructure_deadline: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        instance = self.settings.instance or f"{socket.gethostname()}:{os.getpid()}"
        structlog.contextvars.bind_contextvars(instance=instance)
        try:
            await self._compose(self)
        except BaseException:
            await self._stack.aclose()  # what was entered stops, in reverse
            raise
        await self._subscribed()
        log.info(f"{self.service}_started", health_port=self.health.port if self.health else None,
                 **self.started_details)

    async def _subscribed(self) -> None:
        """Started means asked: the server holds the query service's subscriptions before anyone is told the
        service started (a loaded machine otherwise answers the first question with "no responders")."""
        if self.bus is None:
            return
        try:
            await self.bus.nc.flush(timeout=5)
        except nats.errors.Error as exc:  # NATS away: the subscriptions go again at the reconnect
            log.warning("subscriptions_not_confirmed", error=str(exc) or type(exc).__name__)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        self.stop_began = loop.time()
        await self._stack.aclose()
        log.info(f"{self.service}_stopped", seconds=round(loop.time() - self.stop_began, 2))

    def on_stop(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Run `callback` at stop, before what was entered earlier stops."""
        self._stack.push_async_callback(callback)

    def stop_budget_left(self, budget: float) -> float:
        """Of `budget` seconds counted from the stop's beginning, what is left (at least 0.1 s)."""
        loop = asyncio.get_running_loop()
        began = self.stop_began if self.stop_began is not None else loop.time()
        return max(0.1, began + budget - loop.time())

    async def readiness(self) -> dict[str, bool]:
        """Each named check; one whose part is not entered yet says False."""
        result: dict[str, bool] = {}
        for name in self._check_names:
            check = self._checks.get(name)
            result[name] = bool(await check()) if check is not None else False
        return result

    def check(self, name: str, check: Check) -> None:
        """A readiness check of the service's own (or its own way of checking a standard one)."""
        self._checks[name] = check

    def watch(self, failure: Callable[[], Awaitable[str]]) -> None:
        """`failure()` returns, with the reason, when the service can no longer work."""
        self._failures.append(failure)

    async def failure(self) -> str:
        """The first watched failure's reason (the runner then stops the service and exits 1); never returns
        when nothing is watched."""
        if not self._failures:
            await asyncio.Event().wait()
        tasks = [asyncio.ensure_future(f()) for f in self._failures]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).result()
        finally:
            for task in tasks:
                task.cancel()

    # --- parts, in the order they are entered ------------------------------------------------------------
    async def enter_store(self, tables: Sequence[Table], *, package: str, check: Check | None = None) -> Database:
        """Migrate the store (when told to; else create missing tables); it closes last."""
        self.on_stop(self.db.dispose)
        if self.settings.migrate_on_start:
            await migrate(self.db, package=package, service=self.service, tables=tables)
        else:
            await self.db.create_tables(tables)
        self.check("store", check or self.db.ping)
        return self.db

    async def enter_health(self, routes: Sequence[Route] = ()) -> HealthServer:
        """Serve /healthz, /readyz (with the outbox backlog), /metrics and the service's own pages."""
        metrics, db = self.metrics, self.db

        async def scrape(_request: web.Request) -> web.Response:
            body, content_type = await metrics.render()
            return web.Response(body=body, headers={"Content-Type": content_type})

        async def outbox() -> dict[str, object]:
            return {"outbox": await OutboxRelay.backlog(db)}

        health = HealthServer(service=self.service, host=self.settings.health_host, port=self.settings.health_port,
                              readiness=self.readiness, routes=[*routes, ("/metrics", scrape)], details=outbox)
        await health.start()
        self.health = health
        self.on_stop(health.stop)
        return health

    async def enter_bus(self) -> Bus:
        """Connect to NATS (waiting for it) and wait until the streams and durables exist."""
        health = self.health
        if health is not None:
            health.waiting = "a connection to NATS"  # (its URL may hold a password: not shown)
        instance = self.settings.instance or f"{socket.gethostname()}:{os.getpid()}"
        bus = await Bus.open(self.settings.nats_url, source=self.service, instance=instance,
                             auth=self.settings.nats_auth())
        self.bus = bus
        self.on_stop(self._close_bus)

        async def connected() -> bool:
            return bus.connected

        self.check("nats", connected)
        await topology_when_ready(bus, self.service, health)
        if health is not None:
            health.waiting = None
        self.metrics.bus = bus
        return bus

    def enter_relay(self, *, linger: float = 0.0) -> OutboxRelay:
        """Publish what the outbox holds, at once after an outage; at stop, flush it (for half the budget).
        `linger`: seconds a commit's events wait for those of the commits right behind it (OutboxRelay)."""
        assert self.bus is not None, "enter_bus first"
        s = self.settings
        relay = OutboxRelay(self.db, self.bus, clock=self.clock, keep_published=s.outbox_keep,
                            keep_processed=s.processed_events_keep, linger=linger)
        self.bus.on_reconnect(relay.wake)
        relay.start()
        self.relay = relay

        async def flush() -> None:
            self._infrastructure_deadline = time.monotonic() + INFRASTRUCTURE_STOP_BUDGET
            await relay.stop(flush_timeout=INFRASTRUCTURE_STOP_BUDGET / 2)

        self.on_stop(flush)
        return relay

    def consume(self, table: dict[str, Consumes], *, after: Callable[[], None] | None = None) -> list[ConsumerRunner]:
        """Start the consumers of a service's table (`consumers_of`)."""
        assert self.bus is not None, "enter_bus first"
        return self.enter_consumers(consumers_of(table, bus=self.bus, db=self.db, max_deliver=self.settings.max_deliver,
                                                 after=after))

    def enter_consumers(self, consumers: Sequence[ConsumerRunner], *,
                        stop_within: Callable[[], float] | None = None) -> list[ConsumerRunner]:
        """Start pulling; at stop, stop pulling and let the messages in hand finish (for at most
        `stop_within()` seconds if given: what is left unacknowledged comes again at the next start)."""
        self.consumers = list(consumers)
        self.metrics.consumers = self.consumers
        for consumer in self.consumers:
            consumer.start()

        async def bound() -> bool:
            return bool(self.consumers) and all(c.bound for c in self.consumers)

        self.check("consumers", bound)

        async def stop() -> None:
            stopping = self.stop_consumers_soon()
            if stop_within is None:
                await stopping
                return
            done, _ = await asyncio.wait({stopping}, timeout=stop_within())
            if not done:
                log.warning("consumers_left_in_hand_at_stop")

        self.on_stop(stop)
        return self.consumers

    def stop_consumers_soon(self) -> asyncio.Future[Any]:
        """Begin the consumers' stop now (a part that stops first may want them to take nothing new)."""
        if self._consumers_stopping is None:
            self._consumers_stopping = asyncio.ensure_future(asyncio.gather(*(c.stop() for c in self.consumers)))
        return self._consumers_stopping

    def enter_queries(self, service: Service) -> Service:
        """A query service answering (a client told "ready" must find someone answering)."""
        self.query_service = service

        async def stop() -> None:
            if self.query_service is not None:  # (the one serving then)
                await self.query_service.stop()
                await answers_finished(self.query_service)  # before the store they read closes

        self.on_stop(stop)

        async def served() -> bool:
            return self.query_service is not None

        self.check("queries", served)
        return service

    def enter_jobs(self) -> Scheduler:
        """Start the jobs added to `scheduler` (each runs once now); at stop, the passes in hand finish."""
        self.scheduler.start()
        self.on_stop(self.scheduler.stop)
        return self.scheduler

    # --- stop helpers ------------------------------------------------------------------------------------
    async def _close_bus(self) -> None:
        """Drain NATS within what the budget leaves (what the outbox still holds goes at the next start)."""
        bus = self.bus
        assert bus is not None
        deadline = self._infrastructure_deadline or time.monotonic() + INFRASTRUCTURE_STOP_BUDGET
        try:
            await asyncio.wait_for(bus.close(), timeout=max(0.5, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("nats_drain_cut_short_at_stop")
            await bus.nc.close()


async def topology_when_ready(bus: Bus, service: str, health: HealthServer | None = None) -> None:
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
