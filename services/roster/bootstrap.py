"""The roster's composition root: the only place that creates the engine, the
NATS connection, the scheduler and the servers."""

from __future__ import annotations

from dataclasses import dataclass

from services.roster import store
from services.roster.config import Settings
from services.roster.consumers import CONSUMERS
from services.roster.jobs import RotationScan
from services.roster.models import ROSTER_TABLES
from services.roster.queries import RosterQueries
from shared.clock import Clock, clock_for
from shared.metrics import ServiceMetrics
from shared.service import ServiceHost

VERSION = "0.1.0"


@dataclass
class Roster:
    """What only the roster has: its rotation scan (`run_pass(confirm_jump=...)` scans now)
    and its queries (what the query service answers with)."""

    scan: RotationScan
    queries: RosterQueries | None = None


RosterApp = ServiceHost[Roster]  # the roster as built and started


async def compose(host: RosterApp) -> None:
    s = host.settings
    assert isinstance(s, Settings)
    await host.enter_store(ROSTER_TABLES, package="services.roster")
    queries = host.parts.queries = RosterQueries(db=host.db, clock=host.clock, required_course=s.required_course,
                            revision_check_seconds=s.query_cache_seconds, member_grace=s.member_grace)
    host.on_stop(queries.refreshed)  # just before the store closes: answers and handlers may start a rebuild
    await host.enter_health()
    bus = await host.enter_bus()
    host.enter_relay()
    host.consume(CONSUMERS)
    await queries.snapshot()  # built before the first query, not by it
    host.enter_queries(await queries.serve(bus.nc, version=VERSION))
    scan = host.parts.scan
    host.on_stop(scan.idle)  # after the scheduler's stop: a scan run by hand finishes too
    host.scheduler.every(s.scan_interval_seconds, scan.run_pass, name=RotationScan.name)
    host.enter_jobs()


def build(settings: Settings, *, clock: Clock | None = None) -> RosterApp:
    clock = clock or clock_for(settings.clock_file)
    db, metrics = store.open_store(settings.db_url, clock=clock), ServiceMetrics("roster")
    scan = RotationScan(db=db, clock=clock, settings=settings, metrics=metrics)
    return ServiceHost(service="roster", settings=settings, clock=clock, db=db, metrics=metrics,
                       parts=Roster(scan=scan), compose=compose)
