"""Lessons' composition root."""

from __future__ import annotations

from dataclasses import dataclass

from services.lessons import search, store
from services.lessons.config import Settings
from services.lessons.consumers import consumers
from services.lessons.duties import DutyPolicy
from services.lessons.jobs import AarDuties
from services.lessons.models import LESSONS_TABLES
from services.lessons.queries import LessonsQueries
from services.lessons.rights import RosterRights
from shared.clock import Clock, clock_for
from shared.metrics import ServiceMetrics
from shared.service import ServiceHost

VERSION = "0.1.0"


def duty_policy(s: Settings) -> DutyPolicy:
    return DutyPolicy(reminder_days_before=s.reminder_days_before, adviser_after_days=s.adviser_after_days,
                      desk_after_days=s.desk_after_days, hour=s.reminder_hour_utc)


@dataclass
class Lessons:
    """What only lessons has: the AARs' duties (a job)."""

    duties: AarDuties | None = None


LessonsApp = ServiceHost[Lessons]  # lessons as built and started


async def compose(host: LessonsApp) -> None:
    s = host.settings
    assert isinstance(s, Settings)
    await host.enter_store(LESSONS_TABLES, package="services.lessons")
    await search.search_index(host.db)  # on the tables just made (or migrated)
    await host.enter_health()
    bus = await host.enter_bus()
    host.enter_relay()
    policy = duty_policy(s)
    duties = host.parts.duties = AarDuties(db=host.db, clock=host.clock, policy=policy, bus=bus,
                                           tick_seconds=s.tick_seconds, query_timeout=s.query_timeout_seconds)
    host.scheduler.add(duties)
    host.consume(consumers(policy=policy, due_days=s.aar_due_days, threshold=s.similarity_threshold),
                 after=duties.wake)  # a new AAR may have a step due already
    rights = RosterRights(bus, clock=host.clock, cache_seconds=s.rights_cache_seconds, timeout=s.rights_timeout_seconds)
    host.enter_queries(await LessonsQueries(db=host.db, rights=rights).serve(bus.nc, version=VERSION))
    host.enter_jobs()


def build(settings: Settings, *, clock: Clock | None = None) -> LessonsApp:
    clock = clock or clock_for(settings.clock_file)
    db, metrics = store.open_store(settings.db_url, clock=clock), ServiceMetrics("lessons")
    overdue = metrics.gauge("aars_overdue", "AARs open past their due date, by region", ("region",))

    async def count() -> None:
        async with db.read() as session:
            rows = await store.overdue_by_region(session, clock.now().date())
        overdue.clear()
        for region, n in rows.items():
            overdue.labels(region).set(n)

    metrics.on_scrape(count)
    return ServiceHost(service="lessons", settings=settings, clock=clock, db=db, metrics=metrics, parts=Lessons(),
                       compose=compose)
