"""Notify's composition root."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from prometheus_client import Counter
from sqlalchemy import func
from sqlmodel import select

from services.notify import calls
from services.notify.calendar_feed import CalendarServer, feed_secret
from services.notify.config import Settings
from services.notify.consumers import consumers
from services.notify.jobs.call_reminders import CallPlanner
from services.notify.jobs.due import DueWork
from services.notify.mail import AnswerPages, Links, Mailer, link_secret
from services.notify.messages import MessageQueries
from services.notify.models import NOTIFY_TABLES, Notification
from services.notify.policy import STATES
from services.notify.queries import NotifyQueries
from services.notify.recipients import Roster
from services.notify.store import open_store
from shared.clock import Clock, clock_for
from shared.documents import Documents
from shared.metrics import ServiceMetrics
from shared.service import ServiceHost

VERSION = "0.1.0"
log = structlog.get_logger("notify")


@dataclass
class Notify:
    """What only notify has: its due work and call planner (jobs) and the calendar feeds' server."""

    feed_requests: Counter
    due: DueWork | None = None
    planner: CallPlanner | None = None
    calendar: CalendarServer | None = None


NotifyApp = ServiceHost[Notify]  # notify as built and started


async def compose(host: NotifyApp) -> None:
    s, parts = host.settings, host.parts
    assert isinstance(s, Settings)
    await host.enter_store(NOTIFY_TABLES, package="services.notify")
    await host.enter_health()
    bus = await host.enter_bus()
    host.enter_relay()
    roster = Roster(bus, timeout=s.query_timeout_seconds, cache_seconds=s.role_cache_seconds)
    rules = s.rules()
    parts.due = DueWork(db=host.db, clock=host.clock, roster=roster, rules=rules, tick_seconds=s.tick_seconds,
                        metrics=host.metrics)
    host.scheduler.add(parts.due)
    links = None
    if s.smtp_host and s.calendar_port:  # the e-mails' buttons are links to the public listener
        links = Links(link_secret(s), base_url=s.calendar_base_url or f"http://{s.calendar_host}:{s.calendar_port}",
                      days=s.link_days)
    if s.smtp_host and (not s.calendar_port or not s.calendar_base_url):  # said at every start until it is set
        log.warning("email_links_local_or_missing", public_port=s.calendar_port or None,
                    hint="set CMCOORD_NOTIFY_CALENDAR_PORT and CMCOORD_NOTIFY_CALENDAR_BASE_URL (the listener's "
                         "public address) for answer links that work away from this machine")
    mailer = Mailer(db=host.db, settings=s, links=links, documents=Documents(bus.js)) if s.smtp_host else None
    host.consume(consumers(db=host.db, roster=roster, rules=rules, mailer=mailer), after=parts.due.wake)
    queries = NotifyQueries(db=host.db, clock=host.clock, roster=roster)  # roster: who chairs a call
    service = host.enter_queries(await queries.serve(bus.nc, version=VERSION))
    await MessageQueries(db=host.db).serve_on(service)  # ad-hoc messages' figures (/send status)
    await calls.CallQueries(db=host.db, clock=host.clock).serve_on(service)  # /summary asks first
    parts.planner = CallPlanner(db=host.db, clock=host.clock, roster=roster, due=parts.due.wake, rules=rules,
                                tick_seconds=s.call_tick_seconds)
    if s.call_reminders:
        host.scheduler.add(parts.planner)
    host.enter_jobs()
    if s.calendar_port:  # the feeds' own listener (the health port stays internal); the outside's way in closes first
        answers = AnswerPages(db=host.db, clock=host.clock, links=links) if links is not None else None
        calendar = CalendarServer(db=host.db, clock=host.clock, secret=feed_secret(s), host=s.calendar_host,
                                  port=s.calendar_port, requests=parts.feed_requests,
                                  routes=answers.routes if answers is not None else None)
        await calendar.start()
        parts.calendar = calendar
        host.on_stop(calendar.stop)
    host.started_details["calendar_port"] = parts.calendar.port if parts.calendar is not None else None


def build(settings: Settings, *, clock: Clock | None = None) -> NotifyApp:
    clock = clock or clock_for(settings.clock_file)
    db, metrics = open_store(settings.db_url, clock=clock), ServiceMetrics("notify")
    by_state = metrics.gauge("notifications", "Notifications by state", ("state",))

    async def count() -> None:
        async with db.read() as session:
            rows = (await session.exec(select(Notification.state, func.count()).group_by(Notification.state))).all()
        for state in STATES:
            by_state.labels(state).set(dict(rows).get(state, 0))

    metrics.on_scrape(count)
    feed_requests = metrics.counter("calendar_feed_requests", "Calendar feed requests by outcome "
                                    "(served, not_modified, not_found: a wrong token too)", ("outcome",))
    return ServiceHost(service="notify", settings=settings, clock=clock, db=db, metrics=metrics,
                       parts=Notify(feed_requests=feed_requests), compose=compose)
