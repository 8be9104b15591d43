"""Notify's composition root."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from nats.micro.service import Service
from sqlalchemy import func
from sqlmodel import select

from services.notify import calls
from services.notify.calendar_feed import CalendarServer, feed_secret
from services.notify.call_reminders import CallPlanner
from services.notify.config import Settings
from services.notify.consumers import build_consumers
from services.notify.messages import MessageQueries
from services.notify.models import NOTIFY_TABLES, Notification
from services.notify.policy import STATES
from services.notify.queries import NotifyQueries
from services.notify.recipients import Roster
from services.notify.scheduler import DueWork
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock, clock_for
from shared.health import HealthServer
from shared.metrics import ServiceMetrics
from shared.service import close_infrastructure, open_infrastructure
from shared.store import Database, OutboxRelay

log = structlog.get_logger("notify")
VERSION = "0.1.0"


@dataclass
class NotifyApp:
    settings: Settings
    clock: Clock
    db: Database
    bus: Bus | None = None
    relay: OutboxRelay | None = None
    due: DueWork | None = None
    consumers: list[ConsumerRunner] = field(default_factory=list)
    health: HealthServer | None = None
    service: Service | None = None
    planner: CallPlanner | None = None
    calendar: CalendarServer | None = None
    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics("notify"))

    def __post_init__(self) -> None:
        by_state = self.metrics.gauge("notifications", "Notifications by state", ("state",))

        async def count() -> None:
            async with self.db.read() as session:
                rows = (await session.exec(select(Notification.state, func.count()).group_by(Notification.state))).all()
            for state in STATES:
                by_state.labels(state).set(dict(rows).get(state, 0))

        self.metrics.on_scrape(count)
        self._feed_requests = self.metrics.counter("calendar_feed_requests", "Calendar feed requests by outcome "
                                                   "(served, not_modified, not_found: a wrong token too)", ("outcome",))

    async def start(self) -> None:
        s = self.settings
        self.health, self.bus = await open_infrastructure(
            service="notify", settings=s, db=self.db, tables=NOTIFY_TABLES, readiness=self.readiness,
            metrics=self.metrics, package="services.notify",
        )
        if s.calendar_port:  # the feeds' own listener: the health port stays internal
            self.calendar = CalendarServer(db=self.db, clock=self.clock, secret=feed_secret(s), host=s.calendar_host,
                                           port=s.calendar_port, requests=self._feed_requests)
            await self.calendar.start()
        self.relay = OutboxRelay(self.db, self.bus, clock=self.clock, keep_published=s.outbox_keep,
                                 keep_processed=s.processed_events_keep)
        self.bus.on_reconnect(self.relay.wake)
        self.relay.start()
        roster = Roster(self.bus, timeout=s.query_timeout_seconds, cache_seconds=s.role_cache_seconds)
        rules = s.rules()
        self.due = DueWork(db=self.db, clock=self.clock, roster=roster, rules=rules, tick_seconds=s.tick_seconds,
                           metrics=self.metrics)
        self.due.start()
        self.consumers = build_consumers(bus=self.bus, db=self.db, clock=self.clock, roster=roster, wake=self.due.wake,
                                         max_deliver=s.max_deliver, rules=rules)
        self.metrics.consumers = self.consumers
        for consumer in self.consumers:
            consumer.start()
        queries = NotifyQueries(db=self.db, clock=self.clock, roster=roster)  # roster: who chairs a call
        self.service = await queries.serve(self.bus.nc, version=VERSION)
        await MessageQueries(db=self.db).serve_on(self.service)  # ad-hoc messages' figures (/send status)
        await calls.CallQueries(db=self.db, clock=self.clock).serve_on(self.service)  # /summary asks first
        self.planner = CallPlanner(db=self.db, clock=self.clock, roster=roster, due=self.due.wake, rules=rules,
                                   tick_seconds=s.call_tick_seconds)
        if s.call_reminders:
            self.planner.start()
        log.info("notify_started", health_port=self.health.port,
                 calendar_port=self.calendar.port if self.calendar is not None else None)

    async def readiness(self) -> dict[str, bool]:
        return {
            "nats": bool(self.bus and self.bus.connected),
            "store": await self.db.ping(),
            "consumers": bool(self.consumers) and all(c.bound for c in self.consumers),
            "queries": self.service is not None,  # a client told "ready" must find someone answering
        }

    async def stop(self) -> None:
        if self.calendar is not None:  # the outside's way in closes first
            await self.calendar.stop()
        await asyncio.gather(*(c.stop() for c in self.consumers))
        if self.service is not None:
            await self.service.stop()
        if self.planner is not None:
            await self.planner.stop()
        if self.due is not None:
            await self.due.stop()
        await close_infrastructure(relay=self.relay, bus=self.bus, health=self.health, db=self.db)
        log.info("notify_stopped")


def build(settings: Settings, *, clock: Clock | None = None) -> NotifyApp:
    return NotifyApp(settings=settings, clock=clock or clock_for(settings.clock_file), db=Database(settings.db_url))
