"""The roster's composition root: the only place that creates the engine, the
NATS connection, the scheduler and the servers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from nats.micro.service import Service
from prometheus_client import Gauge

from services.roster import handlers
from services.roster.config import Settings
from services.roster.consumers import build_consumers
from services.roster.models import ROSTER_TABLES
from services.roster.queries import RosterQueries
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock, clock_for
from shared.health import HealthServer
from shared.metrics import ServiceMetrics
from shared.service import close_infrastructure, open_infrastructure
from shared.store import Database, OutboxRelay

log = structlog.get_logger("roster")

VERSION = "0.1.0"


@dataclass
class RosterApp:
    settings: Settings
    clock: Clock
    db: Database
    bus: Bus | None = None
    relay: OutboxRelay | None = None
    consumers: list[ConsumerRunner] = field(default_factory=list)
    queries: RosterQueries | None = None
    service: Service | None = None
    scheduler: AsyncIOScheduler | None = None
    health: HealthServer | None = None
    _scanning: asyncio.Lock = field(default_factory=asyncio.Lock)
    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics("roster"))
    # the last scan refused for a clock jump (None while scans are accepted); see /metrics
    scan_refused: handlers.ClockJumpRefused | None = None
    _refused_gauge: Gauge | None = None
    _jump_gauge: Gauge | None = None

    def __post_init__(self) -> None:
        self._refused_gauge = self.metrics.gauge(
            "roster_scan_clock_refused", "1 while the rotation scan is refused for a clock jump, else 0")
        self._jump_gauge = self.metrics.gauge(
            "roster_scan_clock_jump_seconds", "How far past the last accepted scan the refused scan's clock is")

    async def start(self) -> None:
        s = self.settings
        self.health, self.bus = await open_infrastructure(
            service="roster", settings=s, db=self.db, tables=ROSTER_TABLES, readiness=self.readiness,
            metrics=self.metrics, package="services.roster",
        )
        self.relay = OutboxRelay(self.db, self.bus, clock=self.clock, keep_published=s.outbox_keep,
                                 keep_processed=s.processed_events_keep)
        self.bus.on_reconnect(self.relay.wake)  # publish what waited during an outage at once
        self.relay.start()
        self.consumers = build_consumers(
            bus=self.bus, db=self.db, clock=self.clock, max_deliver=s.max_deliver
        )
        self.metrics.consumers = self.consumers
        for consumer in self.consumers:
            consumer.start()
        self.queries = RosterQueries(
            db=self.db, clock=self.clock, required_course=s.required_course, revision_check_seconds=s.query_cache_seconds,
            member_grace=s.member_grace,
        )
        await self.queries.snapshot()  # built before the first query, not by it
        self.service = await self.queries.serve(self.bus.nc, version=VERSION)
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        # Every replica scans; the facts a scan announces are recorded with the
        # state change and carry deterministic ids, so replicas never double up.
        self.scheduler.add_job(
            self.scan,
            "interval",
            seconds=s.scan_interval_seconds,
            id="rotation_scan",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(max(s.scan_interval_seconds, 1)),
            next_run_time=datetime.now(UTC),  # the scheduler keeps real time, whatever the service's clock says
        )
        self.scheduler.start()
        log.info("roster_started", health_port=self.health.port)

    async def scan(self, *, confirm_jump: bool = False) -> None:
        async with self._scanning:  # a stop waits for a scan under way (its transaction commits or not at all)
            try:
                await handlers.run_rotation_scan(db=self.db, clock=self.clock, policy=self.settings.rotation_policy,
                                                 max_jump=self.settings.scan_max_jump, confirm_jump=confirm_jump)
            except handlers.ClockJumpRefused as refused:
                self._clock_refused(refused)
            except Exception:
                log.exception("rotation_scan_failed")  # the next interval tries again
            else:
                if self.scan_refused is not None:
                    log.info("rotation_scan_clock_accepted", refused_since=self.scan_refused.scan_at.isoformat())
                self.scan_refused = None
                assert self._refused_gauge is not None and self._jump_gauge is not None
                self._refused_gauge.set(0)
                self._jump_gauge.set(0)

    def _clock_refused(self, refused: handlers.ClockJumpRefused) -> None:
        """Told once per episode (the gauge stays up); the service keeps answering queries
        and consuming, and does no scan until the clock is back or a scan is confirmed."""
        if self.scan_refused is None:
            log.error("rotation_scan_clock_jump_refused", last_scan_at=refused.last_scan_at.isoformat(),
                      scan_at=refused.scan_at.isoformat(), jump_hours=round(refused.jump_hours, 1),
                      max_jump_hours=self.settings.scan_max_jump_hours,
                      remedy="fix the host clock; if it is right, run `cmcoord roster scan --confirm-jump`")
        self.scan_refused = refused
        assert self._refused_gauge is not None and self._jump_gauge is not None
        self._refused_gauge.set(1)
        self._jump_gauge.set(refused.jump_hours * 3600)

    async def readiness(self) -> dict[str, bool]:
        return {
            "nats": bool(self.bus and self.bus.connected),
            "store": await self.db.ping(),
            "consumers": bool(self.consumers) and all(c.bound for c in self.consumers),
            "queries": self.service is not None,  # a client told "ready" must find someone answering
        }

    async def stop(self) -> None:
        """Stop pulling, finish in-flight work, flush the outbox, drain."""
        if self.scheduler is not None:
            self.scheduler.pause()  # no new scan; one under way finishes (cancelling it logged an error)
            async with self._scanning:
                self.scheduler.shutdown(wait=False)
        await asyncio.gather(*(c.stop() for c in self.consumers))
        if self.service is not None:
            await self.service.stop()
        await close_infrastructure(relay=self.relay, bus=self.bus, health=self.health, db=self.db)
        log.info("roster_stopped")


def build(settings: Settings, *, clock: Clock | None = None) -> RosterApp:
    return RosterApp(settings=settings, clock=clock or clock_for(settings.clock_file), db=Database(settings.db_url))
