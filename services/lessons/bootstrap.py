"""Lessons' composition root."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from nats.micro.service import Service

from services.lessons import store
from services.lessons.config import Settings
from services.lessons.consumers import build_consumers
from services.lessons.duties import DutyPolicy
from services.lessons.models import LESSONS_TABLES
from services.lessons.queries import LessonsQueries
from services.lessons.reminders import AarDuties
from services.lessons.rights import RosterRights
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock, clock_for
from shared.health import HealthServer
from shared.metrics import ServiceMetrics
from shared.service import close_infrastructure, open_infrastructure
from shared.store import Database, OutboxRelay

log = structlog.get_logger("lessons")
VERSION = "0.1.0"


def duty_policy(s: Settings) -> DutyPolicy:
    return DutyPolicy(reminder_days_before=s.reminder_days_before, adviser_after_days=s.adviser_after_days,
                      desk_after_days=s.desk_after_days, hour=s.reminder_hour_utc)


@dataclass
class LessonsApp:
    settings: Settings
    clock: Clock
    db: Database
    bus: Bus | None = None
    relay: OutboxRelay | None = None
    duties: AarDuties | None = None
    consumers: list[ConsumerRunner] = field(default_factory=list)
    health: HealthServer | None = None
    service: Service | None = None
    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics("lessons"))

    def __post_init__(self) -> None:
        overdue = self.metrics.gauge("aars_overdue", "AARs open past their due date, by region", ("region",))

        async def count() -> None:
            async with self.db.read() as session:
                rows = await store.overdue_by_region(session, self.clock.now().date())
            overdue.clear()
            for region, n in rows.items():
                overdue.labels(region).set(n)

        self.metrics.on_scrape(count)

    async def start(self) -> None:
        s = self.settings
        self.health, self.bus = await open_infrastructure(
            service="lessons", settings=s, db=self.db, tables=LESSONS_TABLES, readiness=self.readiness,
            metrics=self.metrics, package="services.lessons")
        await store.search_index(self.db)  # the tables were made (or migrated) by open_infrastructure
        self.relay = OutboxRelay(self.db, self.bus, clock=self.clock, keep_published=s.outbox_keep,
                                 keep_processed=s.processed_events_keep)
        self.bus.on_reconnect(self.relay.wake)
        self.relay.start()
        policy = duty_policy(s)
        self.duties = AarDuties(db=self.db, clock=self.clock, policy=policy, bus=self.bus, tick_seconds=s.tick_seconds,
                                query_timeout=s.query_timeout_seconds)
        self.duties.start()
        self.consumers = build_consumers(bus=self.bus, db=self.db, clock=self.clock, policy=policy,
                                         due_days=s.aar_due_days, threshold=s.similarity_threshold,
                                         wake=self.duties.wake, max_deliver=s.max_deliver)
        self.metrics.consumers = self.consumers
        for consumer in self.consumers:
            consumer.start()
        rights = RosterRights(self.bus, clock=self.clock, cache_seconds=s.rights_cache_seconds,
                              timeout=s.rights_timeout_seconds)
        self.service = await LessonsQueries(db=self.db, rights=rights).serve(self.bus.nc, version=VERSION)
        log.info("lessons_started", health_port=self.health.port)

    async def readiness(self) -> dict[str, bool]:
        return {
            "nats": bool(self.bus and self.bus.connected),
            "store": await self.db.ping(),
            "consumers": bool(self.consumers) and all(c.bound for c in self.consumers),
            "queries": self.service is not None,
        }

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.consumers))
        if self.service is not None:
            await self.service.stop()
        if self.duties is not None:
            await self.duties.stop()
        await close_infrastructure(relay=self.relay, bus=self.bus, health=self.health, db=self.db)
        log.info("lessons_stopped")


def build(settings: Settings, *, clock: Clock | None = None) -> LessonsApp:
    return LessonsApp(settings=settings, clock=clock or clock_for(settings.clock_file), db=Database(settings.db_url))
