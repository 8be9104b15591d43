"""Bounded noise, end to end: failures told once a day, no alert about an alert about an
alert, a daily cap with the rest folded into one summary, and one failing step never
holding the others. Real nats-server, SQLite, roster, the bot on the sandbox; a set clock."""

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from services.bot.bootstrap import BotApp
from services.notify import bootstrap as notify_bootstrap
from services.notify.models import DeskNotice, Notification
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings
from shared.bus import Bus
from shared.clock import ManualClock
from shared.natsserver import NatsServer
from tests.helpers import eventually
from tests.integration.conftest import PEOPLE_HEADER
from tests.integration.telegram_users import User
from tests.integration.test_notify import (
    count_texts,
    notifications,
    notify_settings,
    publish,
    request,
    started_notify,
    texts,
)


@pytest.fixture
async def unlinked_desk(roster_settings: Settings, clock: ManualClock, people: dict[str, uuid.UUID]) -> None:
    """A second CMCS desk officer who never linked Telegram, as on the first day of a rollout."""
    t = clock.now().date()
    row = (f"Desk Unlinked,desk2@ocha.example,+41 2,OCHA,CH,Geneva,CMCS Desk Surge Officer,cmcs_desk,"
           f"{t - timedelta(days=10)},{t + timedelta(days=300)},")
    _, errors, _ = await import_text(PEOPLE_HEADER + row + "\n", settings=roster_settings, clock=clock, publish=False)
    assert errors == []


@pytest.fixture
async def capped(tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp,
                 people: dict[str, uuid.UUID], unlinked_desk: None) -> AsyncIterator[notify_bootstrap.NotifyApp]:
    app = await started_notify(notify_settings(tmp_path, nats_server.url).model_copy(update={"daily_cap": 5}), clock)
    yield app
    await app.stop()


async def _count(app: notify_bootstrap.NotifyApp, **where: object) -> int:
    async with app.db.read() as session:
        query = select(func.count()).select_from(Notification)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        return int((await session.exec(query)).one())


async def _settled(app: notify_bootstrap.NotifyApp) -> None:
    """Every step due now done (a pass of the loop, run here so the test knows when it ended)."""
    await app.parts.due.run_pass()


async def test_an_unlinked_desk_hears_once_and_nothing_cascades(
    capped: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    nadia = people["noone@ocha.example"]
    for i in range(30):
        await publish(bus, request([nadia], about=f"subject-{i}", text=f"Notice {i}"))
    # thirty requests, each asked of the roster then applied in turn: a deadline for thirty, not one
    await eventually(lambda: _at_least(capped, 30, state="unlinked"), timeout=30, what="thirty kept, none tried")
    assert await _count(capped, state="failed") == 0
    for _ in range(3):  # the gathering window passes, then hours: nothing grows by itself
        clock.advance(timedelta(minutes=11))
        await _settled(capped)
    (desk,) = await eventually(lambda: count_texts(9803, sandbox_url, 1), what="the linked desk member's summary")
    assert "• Nadia Unlinked (no Telegram link), 30 messages" in desk
    (adviser,) = await eventually(lambda: count_texts(9802, sandbox_url, 1), what="the region's adviser told too")
    assert adviser.startswith("Could not reach on Telegram in West and Central Africa (1)")
    # the linked desk member's and the adviser's copies sent; the unlinked desk member's kept, not reported
    summaries = await eventually(lambda: _states_are(capped, "delivery.unreached", ["sent", "sent", "unlinked"]),
                                 what="the summaries' states")
    assert {n.depth for n in summaries} == {1}
    async with capped.db.read() as session:
        notices = list((await session.exec(select(DeskNotice))).all())
    assert [(n.key, n.count) for n in notices] == [(f"unreached:{nadia}", 30)]
    total = await _count(capped)
    for _ in range(24):  # a day later, nothing new has happened: nothing new is sent
        clock.advance(timedelta(hours=1))
        await _settled(capped)
    assert await _count(capped) == total == 33
    assert len(await texts(9803, sandbox_url)) == 1


async def _states_are(app: notify_bootstrap.NotifyApp, kind: str, states: list[str]) -> list[Notification] | None:
    found = await notifications(app, kind=kind)
    return found if sorted(n.state for n in found) == states else None


async def _at_least(app: notify_bootstrap.NotifyApp, n: int, **where: object) -> bool:
    return await _count(app, **where) >= n


async def test_past_the_daily_cap_the_rest_comes_in_one_summary_acknowledged_at_once(
    capped: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    awa = people["awa@ocha.example"]
    for i in range(12):
        await publish(bus, request([awa], about=f"subject-{i}", text=f"Notice {i}\nsecond line"))
    await publish(bus, request([awa], about="urgent", text="Urgent: convoy incident.", urgent=True))
    await eventually(lambda: _at_least(capped, 7, state="folded"), what="seven folded")
    got = await eventually(lambda: count_texts(9801, sandbox_url, 6), what="five one by one, and the urgent one")
    assert sorted(got) == sorted([f"Notice {i}\nsecond line" for i in range(5)] + ["Urgent: convoy incident."])
    clock.set(clock.now().replace(hour=18, minute=0, second=1))  # the summary's local hour (Bamako: UTC)
    await _settled(capped)
    summary = await eventually(lambda: _last_with(User(sandbox_url, 9801), "more messages today"),
                               what="the daily summary")
    assert summary["text"].startswith("7 more messages today")
    assert [line for line in summary["text"].split("\n") if line.startswith("• ")] == [
        f"• Notice {i}" for i in range(5, 12)]
    assert len(await texts(9801, sandbox_url)) == 7  # 5 + the urgent one + the summary, never more on one day
    button = summary["reply_markup"]["inline_keyboard"][0][0]
    assert button["text"] == "Acknowledge all"
    await User(sandbox_url, 9801).press(summary["message_id"], button["callback_data"])
    await eventually(lambda: _at_least(capped, 8, state="acknowledged"), what="the summary and all it listed")
    assert await _count(capped, state="folded") == 0
    # the next day, the five still unanswered are re-sent within the new day's cap
    clock.advance(timedelta(hours=15))
    await _settled(capped)
    await eventually(lambda: count_texts(9801, sandbox_url, 12), what="the five re-notified")


async def _last_with(user: User, needle: str) -> dict[str, object] | None:
    found = [m for m in await user.messages() if needle in (m["text"] or "")]
    return found[-1] if found else None


async def test_a_step_that_fails_is_recorded_and_never_holds_the_others(
    capped: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    awa, jean = people["awa@ocha.example"], people["jean@ocha.example"]
    await publish(bus, request([awa], about="broken"))
    await eventually(lambda: count_texts(9801, sandbox_url, 1), what="the first send")
    (broken,) = await notifications(capped, subject="broken")
    async with capped.db.write() as session:  # a row a bug left behind: its buttons are not JSON
        row = await session.get(Notification, broken.id)
        assert row is not None
        row.buttons, row.due_at, row.due_action = "not json", clock.now(), "renotify"
        session.add(row)
    await publish(bus, request([jean], about="fine", text="Still delivered."))
    await eventually(lambda: count_texts(9802, sandbox_url, 1), what="the other notification")
    # the step fails before the clock moves: the desk's notice gathers from now (a pass whose failure found the
    # row changed meanwhile, as by the bot's report of the first send applied late, leaves it to the next pass)
    await eventually(lambda: _step_failed(capped, "broken"), what="the step failed, recorded")
    clock.advance(timedelta(minutes=11))  # past the gathering window: the next pass tells the desk
    await _settled(capped)
    (failed,) = await notifications(capped, subject="broken")
    assert failed.state == "failed" and failed.due_at is None
    assert failed.failed_reason is not None and failed.failed_reason.startswith("renotify failed: JSONDecodeError")
    desk = await eventually(lambda: count_texts(9803, sandbox_url, 1), what="the desk told")
    assert desk[0].startswith("Messages that could not be prepared:\n• &#x27;test.notice&#x27; messages could not "
                              "be prepared (JSONDecodeError")
    metrics = await _metrics(capped)
    assert 'cmcoord_due_steps_failed_total{kind="test.notice",outcome="failed"} 1.0' in metrics


async def _step_failed(app: notify_bootstrap.NotifyApp, subject: str) -> bool:
    await _settled(app)
    return [n.state for n in await notifications(app, subject=subject)] == ["failed"]


async def _metrics(app: notify_bootstrap.NotifyApp) -> str:
    body, _ = await app.metrics.render()
    return body.decode()
