"""HNS4D's composition root."""

from __future__ import annotations

from dataclasses import dataclass

from services.hns4d import store
from services.hns4d.config import Settings
from services.hns4d.consumers import consumers
from services.hns4d.jobs import SilenceSteps
from services.hns4d.models import HNS4D_TABLES
from services.hns4d.queries import Hns4dQueries
from shared.clock import Clock, clock_for
from shared.metrics import ServiceMetrics
from shared.service import ServiceHost

VERSION = "0.1.0"


@dataclass
class Hns4d:
    """What only HNS4D has: the silence steps (a job)."""

    silences: SilenceSteps | None = None


Hns4dApp = ServiceHost[Hns4d]


async def compose(host: Hns4dApp) -> None:
    s = host.settings
    assert isinstance(s, Settings)
    await host.enter_store(HNS4D_TABLES, package="services.hns4d")
    await store.guard_audit(host.db)
    await host.enter_health()
    bus = await host.enter_bus()
    host.enter_relay()
    silences = host.parts.silences = SilenceSteps(db=host.db, clock=host.clock, tick_seconds=s.tick_seconds)
    host.scheduler.add(silences)
    host.consume(consumers())
    host.enter_queries(await Hns4dQueries(db=host.db, bus=bus, timeout=s.rights_timeout_seconds).serve(
        bus.nc, version=VERSION))
    host.enter_jobs()


def build(settings: Settings, *, clock: Clock | None = None) -> Hns4dApp:
    clock = clock or clock_for(settings.clock_file)
    db, metrics = store.open_store(settings.db_url, clock=clock), ServiceMetrics("hns4d")
    waiting = metrics.gauge("hns4d_parties_silent", "Parties past their deadline without acknowledging receipt, "
                            "by country", ("country",))

    async def count() -> None:
        async with db.read() as session:
            rows = await store.silent_by_country(session, clock.now())
        waiting.clear()
        for country, n in rows.items():
            waiting.labels(country).set(n)

    metrics.on_scrape(count)
    return ServiceHost(service="hns4d", settings=settings, clock=clock, db=db, metrics=metrics, parts=Hns4d(),
                       compose=compose)
