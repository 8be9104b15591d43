"""NATS with one user per service (shared/permissions.py): a service cannot publish another's
events, and every service does its work under its own user."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import Error as NatsError

from services.bot import bootstrap as bot_bootstrap
from services.bot.config import Settings as BotSettings
from services.lessons import bootstrap as lessons_bootstrap
from services.lessons.config import Settings as LessonsSettings
from services.notify import bootstrap as notify_bootstrap
from services.notify.config import Settings as NotifySettings
from services.roster.bootstrap import RosterApp
from services.roster.config import Settings as RosterSettings
from shared import events
from shared.bus import Bus, all_streams, ensure_streams
from shared.clock import ManualClock
from shared.events import Envelope
from shared.natsserver import NatsServer, free_port
from shared.permissions import PERMISSIONS, authorization
from tests.helpers import eventually
from tests.integration.telegram_users import User

PASSWORDS = {service: f"{service}-secret-{i}" for i, service in enumerate(PERMISSIONS)}
AWA = 9801
PROBE = "probe.nobody.may.publish"


def auth(service: str) -> dict[str, str]:
    return {"nats_user": service, "nats_password": PASSWORDS[service]}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """The test's server, with the services' users and permissions (and no anonymous access)."""
    server = NatsServer(store_dir=tmp_path / "nats" / "jetstream", name="secured", log_file=tmp_path / "nats.log",
                        extra_config=authorization(PASSWORDS)).start()
    yield server
    server.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Bus]:
    b = await Bus.open(nats_server.url, source="roster", patience=10,
                       auth={"user": "roster", "password": PASSWORDS["roster"]})
    await ensure_streams(b.js, all_streams())
    yield b
    await b.close()


@pytest.fixture
def roster_settings(tmp_path: Path, nats_server: NatsServer) -> RosterSettings:
    return RosterSettings(home=tmp_path / "home", nats_url=nats_server.url, health_port=free_port(),
                          scan_interval_seconds=3600, max_deliver=3, ack_wait_seconds=5, **auth("roster"))


async def violations(service: str, url: str, *, publish: list[str] = (), subscribe: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """Errors the server reports when `service`'s user publishes or subscribes to these subjects.
    A last publish nobody may make ends the list: the server answers in order."""
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, user=service, password=PASSWORDS[service], error_cb=error_cb,
                            allow_reconnect=False)
    try:
        for subject in subscribe:
            await nc.subscribe(subject)
        for subject in [*publish, PROBE]:
            await nc.publish(subject, b"{}")
        await nc.flush()
        await eventually(lambda: any(PROBE in e for e in errors), timeout=5, what="the server's answers")
    finally:
        await nc.close()
    return [e for e in errors if PROBE not in e]


async def test_a_service_cannot_publish_another_services_events(nats_server: NatsServer) -> None:
    forged = ["cmcoord.notify.notification.requested.v1", "cmcoord.lessons.aar.due.v1", "cmcoord.bot.delivery.sent.v1"]
    errors = await violations("roster", nats_server.url, publish=forged)
    assert len(errors) == 3 and all("permissions violation for publish" in e.lower() for e in errors)
    assert {s for s in forged if any(s in e for e in errors)} == set(forged)
    assert await violations("roster", nats_server.url, publish=["cmcoord.roster.person.changed.v1"]) == []
    # lessons may ask notify to tell people, but not forge what the bot or the roster report
    assert await violations("lessons", nats_server.url, publish=["cmcoord.notify.notification.requested.v1"]) == []
    errors = await violations("lessons", nats_server.url, publish=["cmcoord.roster.deployment.ended.v1"])
    assert len(errors) == 1 and "publish" in errors[0].lower()
    errors = await violations("bot", nats_server.url, subscribe=["cmcoord.roster.svc.contacts"])
    assert len(errors) == 1 and "subscription" in errors[0].lower()  # nobody else answers the roster's queries
    with pytest.raises((NatsError, OSError, asyncio.TimeoutError)):
        await nats.connect(nats_server.url, user="roster", password="wrong", allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=2)


async def test_every_service_works_under_its_own_user(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, roster: RosterApp, people: dict[str, uuid.UUID],
    sandbox_url: str, clock: ManualClock,
) -> None:
    common: dict[str, Any] = {"nats_url": nats_server.url, "max_deliver": 3, "ack_wait_seconds": 5}
    notify = notify_bootstrap.build(NotifySettings(home=tmp_path / "n", health_port=free_port(), tick_seconds=0.2,
                                                   call_reminders=False, **common, **auth("notify")), clock=clock)
    lessons = lessons_bootstrap.build(LessonsSettings(home=tmp_path / "l", health_port=free_port(), tick_seconds=0.2,
                                                      **common, **auth("lessons")), clock=clock)
    bot = bot_bootstrap.build(BotSettings(home=tmp_path / "b", sandbox_url=sandbox_url, health_port=free_port(),
                                          poll_timeout_seconds=1, **common, **auth("bot")), clock=clock)
    apps: list[Any] = [notify, lessons, bot]
    for app in apps:
        await app.start()
    try:
        for consumer in [*notify.consumers, *lessons.consumers]:
            await consumer.wait_bound()
        awa = User(sandbox_url, AWA)
        assert "Awa Traoré" in (await awa.reply_to("/me"))["text"]  # bot -> roster query
        assert "Nothing found" in (await awa.reply_to("/lessons ferry"))["text"]  # bot -> lessons query
        today = clock.now().date()
        await bus.publish(Envelope.wrap(events.DeploymentEnded(  # the roster's event, under the roster's user
            deployment_id=uuid.uuid4(), person_id=people["awa@ocha.example"], post_id=uuid.uuid4(), country="ML",
            region="ROWCA", role="cmcoord_officer", start=today - timedelta(days=90), planned_end=today,
            ended_on=today), source="roster", occurred_at=datetime.now(UTC)))
        due: date = today + timedelta(days=30)
        await eventually(lambda: _aar_owed(lessons), what="lessons heard the roster")
        clock.set(datetime.combine(due - timedelta(days=7), datetime.min.time(), tzinfo=UTC) + timedelta(hours=8))
        lessons.duties.wake()  # type: ignore[union-attr]
        # lessons -> notify (request) -> roster (who) -> notify -> bot -> Telegram, each under its own user
        reminder = await eventually(lambda: _reminder(awa), what="the AAR reminder in the chat")
        assert f"is due on {due:%d %B %Y}" in reminder
    finally:
        for app in reversed(apps):
            await app.stop()


async def _aar_owed(lessons: lessons_bootstrap.LessonsApp) -> bool:
    from services.lessons.store import all_aars

    async with lessons.db.read() as session:
        return bool(await all_aars(session))


async def _reminder(user: User) -> str | None:
    return next((m["text"] for m in await user.messages() if "after action review" in (m["text"] or "")), None)
