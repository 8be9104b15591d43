"""A fan-out of 1,000 notifications with the sandbox's Telegram limits on, notify and the bot
as processes, each killed (-9) halfway: every chat gets its message; a repeat is possible only
for sends in flight when the bot died, and is counted."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlmodel import select

from services.bot.models import Delivery
from services.notify import bootstrap as notify_bootstrap
from services.notify.config import Settings as NotifySettings
from services.notify.store import notification_id
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.models import Person
from services.roster.samples import generate
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import Envelope
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from tests.helpers import (
    eventually,
    link_to_telegram,
    mark_started,
    service_env,
    start_service,
    stop_process,
)
from tests.integration.conftest import started_bot

pytestmark = pytest.mark.field  # minutes of processes killed under Telegram's limits: `make test-field`

OFFICERS = 1000
FIRST_CHAT = 200_000


async def link_everyone(settings: Settings, clock: ManualClock, sandbox_url: str) -> list[Any]:
    _, errors, _ = await import_text(generate(people=OFFICERS, today=clock.now().date()), settings=settings,
                                     clock=clock, publish=False)
    assert errors == []
    linked = await link_to_telegram(settings.db_url, first_chat=FIRST_CHAT, at=clock.now())
    await mark_started(sandbox_url, [chat for _, _, chat in linked])  # they pressed Start earlier
    return [person_id for _, person_id, _ in linked]


TEXT = "Regional CMCoord call tomorrow 13:00 GMT."


async def counts(url: str, text: str = TEXT) -> dict[str, Any]:
    """Chats that got this text (the roster's own alerts, gapped posts and so on, also go out)."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/sandbox/counts", params={"contains": text}) as resp:
        return await resp.json()


async def delivered_with(url: str, text: str, at_least: int) -> dict[str, int] | None:
    per_chat = (await counts(url, text))["per_chat"]
    return per_chat if len(per_chat) >= at_least else None


async def delivered(url: str, at_least: int) -> dict[str, int] | None:
    return await delivered_with(url, TEXT, at_least)


async def test_a_thousand_with_telegram_limits_and_both_services_killed_halfway(
    tmp_path: Path, nats_server: NatsServer, sandbox_url: str, roster: RosterApp, roster_settings: Settings,
    clock: ManualClock, bus: Bus,
) -> None:
    person_ids = await link_everyone(roster_settings, clock, sandbox_url)
    notify_env = service_env(tmp_path / "notify-home", nats_server.url, CMCOORD_NOTIFY_HEALTH_PORT=str(free_port()),
                             CMCOORD_NOTIFY_TICK_SECONDS="0.2")
    bot_env = service_env(tmp_path / "bot-home", nats_server.url, CMCOORD_SANDBOX_URL=sandbox_url,
                          CMCOORD_BOT_HEALTH_PORT=str(free_port()), CMCOORD_BOT_POLL_TIMEOUT_SECONDS="1")
    notify = start_service("services.notify", notify_env, tmp_path / "notify.log")
    bot = start_service("services.bot", bot_env, tmp_path / "bot.log")
    try:
        request = events.NotificationRequested(kind="call.reminder", about="rowca-call", occurrence="2026-03-03",
                                               person_ids=person_ids, urgent=True,
                                               text=TEXT)
        await bus.publish(Envelope.wrap(request, source="lessons", occurred_at=datetime.now(UTC)))
        await eventually(lambda: delivered(sandbox_url, 50), timeout=60, what="the fan-out under way")
        stop_process(notify, kill=True)  # notify dies while deliver commands are still going out
        notify = start_service("services.notify", notify_env, tmp_path / "notify-restarted.log")
        await eventually(lambda: delivered(sandbox_url, 500), timeout=60, what="half delivered")
        stop_process(bot, kill=True)  # the bot dies mid-send
        bot = start_service("services.bot", bot_env, tmp_path / "bot-restarted.log")
        per_chat = await eventually(lambda: delivered(sandbox_url, OFFICERS), timeout=420, interval=0.5,
                                    what="every chat reached")
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot-home' / 'bot.db'}")
        ours = {notification_id(request.kind, request.about, p, request.occurrence) for p in person_ids}
        async with db.read() as session:
            rows = [r for r in (await session.exec(select(Delivery))).all() if r.notification_id in ours]
        await db.dispose()
        repeats = sum(r.sends - 1 for r in rows)
        duplicates = sum(n - 1 for n in per_chat.values())
        assert len(rows) == OFFICERS and all(r.message_id is not None for r in rows)
        assert set(per_chat) == {str(FIRST_CHAT + i) for i in range(OFFICERS)}
        # only sends in flight at the kill can repeat, and each is counted: a send is marked in flight
        # once it has its turn, and turns are handed out at 28 a second
        assert duplicates <= repeats <= 30
    finally:
        stop_process(notify)
        stop_process(bot)


BULK, URGENT = "Quarterly CMCoord newsletter is out.", "Convoy incident on the Mopti road: confirm your status."


async def awake(settings: Settings, person_ids: list[Any], at: datetime) -> list[Any]:
    """Those for whom `at` is outside quiet hours (a bulk message to the others would be held)."""
    db = Database(settings.db_url)
    async with db.read() as session:
        zones = {p.id: p.timezone for p in (await session.exec(select(Person))).all()}
    await db.dispose()
    return [p for p in person_ids if 7 <= at.astimezone(ZoneInfo(zones[p] or "UTC")).hour < 22]


async def test_an_urgent_message_goes_before_a_bulk_fan_out_under_way(
    tmp_path: Path, nats_server: NatsServer, sandbox_url: str, roster: RosterApp, roster_settings: Settings,
    clock: ManualClock, bus: Bus,
) -> None:
    person_ids = await awake(roster_settings, await link_everyone(roster_settings, clock, sandbox_url), clock.now())
    bulk, urgent_to = person_ids[:300], person_ids[300]
    notify = notify_bootstrap.build(NotifySettings(home=tmp_path / "notify-home", nats_url=nats_server.url,
                                                   health_port=free_port(), tick_seconds=0.2), clock=clock)
    await notify.start()
    bot = await started_bot(tmp_path / "bot", nats_server.url, sandbox_url, clock=clock)
    try:
        def ask(to: list[Any], text: str, *, urgent: bool) -> Envelope:
            return Envelope.wrap(events.NotificationRequested(kind="test.notice", about=text[:20], occurrence="1",
                                                              person_ids=to, urgent=urgent, text=text),
                                 source="lessons", occurred_at=datetime.now(UTC))

        await bus.publish(ask(bulk, BULK, urgent=False))
        await eventually(lambda: delivered_with(sandbox_url, BULK, 20), timeout=60, what="the bulk under way")
        await bus.publish(ask([urgent_to], URGENT, urgent=True))
        await eventually(lambda: delivered_with(sandbox_url, URGENT, 1), timeout=60, what="the urgent message")
        bulk_before = len((await counts(sandbox_url, BULK))["per_chat"])
        # 300 at Telegram's pace take ten seconds; the urgent one waited for no more than a few
        assert bulk_before < 120, f"{bulk_before} bulk messages went before the urgent one"
    finally:
        await bot.stop()
        await notify.stop()
