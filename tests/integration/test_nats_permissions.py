"""NATS with one user per service (shared/permissions.py): a service cannot read, forge or
destroy another's data, a consumer refuses what its source does not own, and every service
does its work under its own user (the conftest's server is the production configuration)."""

import asyncio
import uuid
from collections.abc import Sequence
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
from shared import events
from shared.bus import Bus, inbox_prefix
from shared.clock import ManualClock
from shared.deadletter import list_dead_letters
from shared.events import Envelope
from shared.natsserver import NatsServer, free_port
from shared.permissions import QUERIES, SERVICES
from shared.topology import DURABLES, durables_of, missing
from tests.helpers import NATS_PASSWORDS, eventually
from tests.integration.telegram_users import User

AWA = 9801
PROBE = "probe.nobody.may.publish"
STREAMS = ("ROSTER", "NOTIFY", "LESSONS", "BOT", "DEADLETTER")
ALL_QUERIES = sorted({q for asked in QUERIES.values() for q in asked})


async def violations(service: str, url: str, *, publish: Sequence[str] = (), subscribe: Sequence[str] = ()) -> list[str]:
    """Errors the server reports when `service`'s user publishes or subscribes to these subjects.
    A last publish nobody may make ends the list: the server answers in order."""
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, user=service, password=NATS_PASSWORDS[service], error_cb=error_cb,
                            allow_reconnect=False, inbox_prefix=inbox_prefix(service))
    try:
        for subject in subscribe:
            await nc.subscribe(subject)
        for subject in [*publish, PROBE]:
            await nc.publish(subject, b"{}", reply=f"{inbox_prefix(service)}.x")
        await nc.flush()
        await eventually(lambda: any(PROBE in e for e in errors), timeout=5, what="the server's answers")
    finally:
        await nc.close()
    return [e for e in errors if PROBE not in e]


def refused(errors: list[str], subjects: Sequence[str]) -> set[str]:
    """The subjects the server named in a permissions violation."""
    said = [e.lower() for e in errors if "permissions violation" in e.lower()]  # nats-py lower-cases the text
    return {s for s in subjects if any(f' "{s.lower()}"' in e for e in said)}


async def test_a_service_cannot_publish_another_services_events(nats_server: NatsServer) -> None:
    forged = ["cmcoord.notify.notification.requested.v1", "cmcoord.lessons.aar.due.v1", "cmcoord.bot.delivery.sent.v1"]
    errors = await violations("roster", nats_server.url, publish=forged)
    assert refused(errors, forged) == set(forged) and len(errors) == 3
    assert await violations("roster", nats_server.url, publish=["cmcoord.roster.person.changed.v1"]) == []
    # lessons may ask notify to tell people, but not forge what the bot or the roster report
    assert await violations("lessons", nats_server.url, publish=["cmcoord.notify.notification.requested.v1"]) == []
    other = ["cmcoord.roster.deployment.ended.v1", "cmcoord.bot.notification.replied.v1"]
    assert refused(await violations("lessons", nats_server.url, publish=other), other) == set(other)
    errors = await violations("bot", nats_server.url, subscribe=["cmcoord.roster.svc.contacts"])
    assert len(errors) == 1 and "subscription" in errors[0].lower()  # nobody else answers the roster's queries
    with pytest.raises((NatsError, OSError, asyncio.TimeoutError)):
        await nats.connect(nats_server.url, user="roster", password="wrong", allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=2)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_cannot_read_forge_or_destroy_what_is_not_its_own(nats_server: NatsServer, service: str) -> None:
    """What the issue found each login could do, now refused for every service user."""
    others = [d for d in DURABLES if d.service != service]
    other_streams = [s for s in STREAMS if s != service.upper()]
    publish = [
        *(f"$JS.API.STREAM.{verb}.{s}" for s in STREAMS for verb in ("CREATE", "UPDATE", "DELETE", "PURGE")),
        *(f"$JS.API.STREAM.MSG.GET.{s}" for s in other_streams),  # read another stream's messages
        *(f"$JS.API.DIRECT.GET.{s}" for s in other_streams),
        *(f"$JS.API.STREAM.INFO.{s}" for s in other_streams),
        *(f"$JS.API.CONSUMER.CREATE.{s}" for s in STREAMS),  # an ephemeral consumer reading a whole stream
        *(f"$JS.API.CONSUMER.CREATE.{d.stream}.{d.name}" for d in DURABLES),  # nor change any durable
        *(f"$JS.API.CONSUMER.DURABLE.CREATE.{d.stream}.{d.name}" for d in DURABLES),
        *(f"$JS.API.CONSUMER.DELETE.{d.stream}.{d.name}" for d in DURABLES),
        *(f"$JS.API.CONSUMER.MSG.NEXT.{d.stream}.{d.name}" for d in others),  # pull another's durable
        *(f"$JS.ACK.{d.stream}.{d.name}.1.1.1.1.1" for d in others),
        *(f"cmcoord.deadletter.{d.name}" for d in others),
        f"cmcoord.{service}.replay.{durables_of_stream(service)}.v1",  # only the operator replays
        "$JS.API.ACCOUNT.PURGE", "$JS.API.META.LEADER.STEPDOWN",
        # queries it does not need: notify and lessons never read the directory or register an account
        *(f"cmcoord.{owner}.svc.{verb}" for owner, _, verb in (q.partition(".") for q in ALL_QUERIES)
          if owner != service and f"{owner}.{verb}" not in QUERIES[service]),
    ]
    subscribe = ["_INBOX.>", *(f"{inbox_prefix(o)}.>" for o in SERVICES if o != service),
                 *(f"cmcoord.{o}.>" for o in SERVICES), "$JS.API.>", "cmcoord.deadletter.>"]
    errors = await violations(service, nats_server.url, publish=publish, subscribe=subscribe)
    assert refused(errors, publish) == set(publish), set(publish) - refused(errors, publish)
    assert refused(errors, subscribe) == set(subscribe), set(subscribe) - refused(errors, subscribe)
    # and what it needs stays open
    mine = [f"$JS.API.CONSUMER.INFO.{d.stream}.{d.name}" for d in durables_of(service)]
    assert await violations(service, nats_server.url, publish=mine, subscribe=[f"{inbox_prefix(service)}.>"]) == []


def durables_of_stream(service: str) -> str:
    """A durable reading `service`'s stream (whose replay subject lands there)."""
    return next((d.name for d in DURABLES if d.stream == service.upper()), "nobody--reads_it_yet")


async def test_the_jetstream_calls_refused_say_so_and_change_nothing(nats_server: NatsServer, bus: Bus) -> None:
    """The issue's attacks through nats-py itself: a subject transform, a purge, a stream deleted,
    another's durable pulled and deleted. Each fails and the topology is as declared."""
    await bus.publish(Envelope.wrap(events.PersonChanged(person_id=uuid.uuid4(), created=True), source="roster",
                                    occurred_at=datetime.now(UTC)))
    nc = await nats.connect(nats_server.url, user="bot", password=NATS_PASSWORDS["bot"], allow_reconnect=False,
                            inbox_prefix=inbox_prefix("bot"))
    js = nc.jetstream(timeout=1)
    try:
        info = await bus.js.stream_info("ROSTER")
        transform = info.config
        transform.subjects = [*transform.subjects, "cmcoord.bot.forged.>"]
        attempts = [js.update_stream(transform), js.purge_stream("NOTIFY"), js.delete_stream("LESSONS"),
                    js.delete_consumer("NOTIFY", "notify--on_requests"), js.get_msg("ROSTER", 1),
                    js.pull_subscribe_bind("notify--on_requests", stream="NOTIFY")]
        for attempt in attempts:
            with pytest.raises((NatsError, asyncio.TimeoutError)):
                sub = await attempt
                await sub.fetch(1, timeout=1)  # pull_subscribe_bind itself asks nothing: its fetch is refused
    finally:
        await nc.close()
    for service in SERVICES:
        assert await missing(bus.js, service) == []  # every stream and durable still as declared
    assert (await bus.js.stream_info("ROSTER")).config.subjects == ["cmcoord.roster.*.*.*"]
    assert (await bus.js.stream_info("ROSTER")).state.messages == 1


async def test_a_fact_from_a_service_that_does_not_own_it_is_dead_lettered(bus: Bus, roster: RosterApp) -> None:
    """A consistency check beside the permissions: a consumer refuses an event attributed to a
    service that does not own its subject (published here with the operator's login)."""
    now = datetime.now(UTC)
    forged = Envelope.wrap(events.HandoverNoteSubmitted(person_id=uuid.uuid4(), deployment_id=uuid.uuid4(),
                                                        advice_to_successor="forged", submitted_at=now),
                           source="lessons", occurred_at=now)
    await bus.publish(forged)
    letters = await eventually(lambda: list_dead_letters(bus.js, consumer="roster--on_handover_submitted"),
                               what="the forged note dead-lettered")
    assert letters[0].summary()["event_id"] == str(forged.id)
    assert "only bot may publish it" in letters[0].reason


async def test_every_service_works_under_its_own_user(
    tmp_path: Path, nats_server: NatsServer, bus: Bus, roster: RosterApp, people: dict[str, uuid.UUID],
    sandbox_url: str, clock: ManualClock,
) -> None:
    common: dict[str, Any] = {"nats_url": nats_server.url, "max_deliver": 3}  # credentials: from the environment
    notify = notify_bootstrap.build(NotifySettings(home=tmp_path / "n", health_port=free_port(), tick_seconds=0.2,
                                                   call_reminders=False, **common), clock=clock)
    lessons = lessons_bootstrap.build(LessonsSettings(home=tmp_path / "l", health_port=free_port(), tick_seconds=0.2,
                                                      **common), clock=clock)
    bot = bot_bootstrap.build(BotSettings(home=tmp_path / "b", sandbox_url=sandbox_url, health_port=free_port(),
                                          poll_timeout_seconds=1, **common), clock=clock)
    for settings in (notify.settings, lessons.settings, bot.settings):
        assert settings.nats_auth()["user"] == settings.nats_identity  # each under its own user
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
        lessons.parts.duties.wake()  # type: ignore[union-attr]
        # lessons -> notify (request) -> roster (who) -> notify -> bot -> Telegram, each under its own user
        reminder = await eventually(lambda: _reminder(awa), what="the AAR reminder in the chat")
        assert f"is due on {due.day} {due:%B %Y}" in reminder
    finally:
        for app in reversed(apps):
            await app.stop()


async def _aar_owed(lessons: lessons_bootstrap.LessonsApp) -> bool:
    from services.lessons.store import all_aars

    async with lessons.db.read() as session:
        return bool(await all_aars(session))


async def _reminder(user: User) -> str | None:
    return next((m["text"] for m in await user.messages() if "after action review" in (m["text"] or "")), None)
