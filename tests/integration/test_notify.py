"""Notify end to end: real nats-server, SQLite, the roster, the bot on the sandbox; a clock the test sets."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from sqlmodel import col, select

from services.bot.bootstrap import BotApp
from services.notify import bootstrap as notify_bootstrap
from services.notify.config import Settings as NotifySettings
from services.notify.models import Notification, Settled, Transition
from services.roster.bootstrap import RosterApp
from services.roster.config import Settings
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import Envelope, ReplyButton
from shared.natsserver import NatsServer, free_port
from shared.store import Database, OutboxMessage
from tests.helpers import cli, eventually, published, service_env, stream_events, stream_messages
from tests.integration.conftest import import_people, started_bot
from tests.integration.telegram_users import User


def notify_settings(tmp_path: Path, nats_url: str) -> NotifySettings:
    return NotifySettings(home=tmp_path / "notify-home", nats_url=nats_url, health_port=free_port(), tick_seconds=0.2,
                          max_deliver=3, call_reminders=False,  # calls: test_calls.py
                          unreached_gather_minutes=10)


async def started_notify(settings: NotifySettings, clock: ManualClock) -> notify_bootstrap.NotifyApp:
    """Notify built and started, its consumers bound."""
    app = notify_bootstrap.build(settings, clock=clock)
    await app.start()
    for consumer in app.consumers:
        await consumer.wait_bound()
    return app


@pytest.fixture
async def notify(tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp,
                 people: dict[str, uuid.UUID]) -> AsyncIterator[notify_bootstrap.NotifyApp]:
    app = await started_notify(notify_settings(tmp_path, nats_server.url), clock)
    yield app
    await app.stop()


async def publish(bus: Bus, event: events.Event, *, source: str | None = None) -> Envelope:
    envelope = Envelope.wrap(event, source=source or event.owner(), occurred_at=datetime.now(UTC))
    await bus.publish(envelope)
    return envelope


def request(person_ids: list[uuid.UUID], **kw: Any) -> events.NotificationRequested:
    fields: dict[str, Any] = {"kind": "test.notice", "about": "subject-1", "occurrence": "1",
                              "text": "Mopti route closed <today> & tomorrow.",
                              "buttons": [ReplyButton(label="Acknowledge", reply="ack")]}
    return events.NotificationRequested(person_ids=person_ids, **{**fields, **kw})


async def notifications(app: notify_bootstrap.NotifyApp, **where: Any) -> list[Notification]:
    async with app.db.read() as session:
        query = select(Notification)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        return list((await session.exec(query)).all())


async def texts(user_id: int, sandbox_url: str) -> list[str]:
    return [m["text"] for m in await User(sandbox_url, user_id).messages()]


async def count_texts(user_id: int, sandbox_url: str, n: int) -> list[str] | None:
    found = await texts(user_id, sandbox_url)
    return found if len(found) >= n else None


async def test_a_repeated_request_is_one_notification_and_one_message(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    for _ in range(3):  # three requests, three different event ids: the same notification
        await publish(bus, request([people["awa@ocha.example"]]))
    got = await eventually(lambda: count_texts(9801, sandbox_url, 1), what="the message")
    assert got == ["Mopti route closed &lt;today&gt; &amp; tomorrow."]
    await eventually(lambda: _state(notify, "sent"), what="sent once Telegram accepted it")
    assert len(await notifications(notify)) == 1
    assert len(await texts(9801, sandbox_url)) == 1


async def _state(app: notify_bootstrap.NotifyApp, state: str, n: int = 1) -> list[Notification] | None:
    found = await notifications(app, state=state)
    return found if len(found) >= n else None


async def test_renotify_then_escalate_to_the_adviser_then_the_desk_then_acknowledged(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    await publish(bus, request([people["awa@ocha.example"]]))
    await eventually(lambda: count_texts(9801, sandbox_url, 1), what="first send")
    await eventually(lambda: _state(notify, "sent"), what="Telegram's acceptance recorded before time moves on")
    clock.advance(timedelta(hours=24, minutes=1))
    notify.parts.due.wake()
    await eventually(lambda: count_texts(9801, sandbox_url, 2), what="re-notified after 24 h")
    assert await texts(9802, sandbox_url) == []  # the adviser not yet
    clock.advance(timedelta(hours=24))
    notify.parts.due.wake()
    adviser = await eventually(lambda: count_texts(9802, sandbox_url, 1), what="the regional adviser told at 48 h")
    assert adviser[0].startswith("Not acknowledged: Awa Traoré has not answered")
    assert await texts(9803, sandbox_url) == []
    clock.advance(timedelta(hours=48))
    notify.parts.due.wake()
    desk = await eventually(lambda: count_texts(9803, sandbox_url, 1), what="the CMCS desk told at 96 h")
    assert "Awa Traoré" in desk[0]
    (original,) = await notifications(notify, kind="test.notice")
    assert original.state == "escalated" and original.escalation_level == 2

    # the officer finally presses the button of the last copy: acknowledged, nothing more is scheduled
    last = (await User(sandbox_url, 9801).messages())[-1]
    await User(sandbox_url, 9801).press(last["message_id"], last["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    await eventually(lambda: _state(notify, "acknowledged"), what="acknowledged")
    (original,) = await notifications(notify, kind="test.notice")
    assert original.due_at is None and original.reply == "ack"
    async with notify.db.read() as session:
        steps = [(t.from_state, t.to_state) for t in (await session.exec(
            select(Transition).where(Transition.notification_id == original.id).order_by(Transition.id))).all()]
    assert steps == [(None, "queued"), ("queued", "sent"), ("sent", "escalated"), ("escalated", "escalated"),
                     ("escalated", "acknowledged")]
    code, out, err = await cli("notify", "stats", "--format", "json", "--kind", "test.notice",
                               env=service_env(notify.settings.home, notify.settings.nats_url))
    assert code == 0, err
    (figures,) = json.loads(out)
    assert (figures["sent"], figures["acknowledged"], figures["escalated"], figures["ack_rate"]) == (1, 1, 1, 1.0)
    assert (figures["total"], figures["unanswered"], figures["waiting"], figures["withdrawn"]) == (1, 0, 0, 0)
    code, out, err = await cli("notify", "stats", "--kind", "test.notice",
                               env=service_env(notify.settings.home, notify.settings.nats_url))
    header, row = out.splitlines()[:2]
    assert code == 0 and header.split()[2:7] == ["total", "sent", "acknowledged", "unanswered", "waiting"], err
    assert row.split()[2:7] == ["1", "1", "1", "0", "0"]  # the acknowledged message, sent once
    assert "total = sent + waiting + unlinked + failed + withdrawn; sent = acknowledged + unanswered." in out
    assert figures["ack_median_minutes"] >= 96 * 60
    published = await stream_events(bus.js, "NOTIFY", type_prefix="notify.notification.transitioned")
    assert [(e.data["to_state"], e.data["via"]) for e in published if e.data["notification_id"] == str(original.id)
            ] == [("queued", None), ("sent", None), ("escalated", None), ("escalated", None),
                  ("acknowledged", "telegram")]  # the answer came by its button in Telegram


async def test_quiet_hours_hold_non_urgent_until_seven_local_and_urgent_goes_at_once(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    clock.set(datetime(2026, 3, 2, 16, 30, tzinfo=UTC))  # 23:30 in Bangkok (UTC+7)
    somchai = people["somchai@ocha.example"]
    await publish(bus, request([somchai], about="calm"))
    await publish(bus, request([somchai], about="urgent", urgent=True, text="Urgent: convoy incident."))
    await eventually(lambda: count_texts(9804, sandbox_url, 1), what="the urgent one")
    (held,) = await notifications(notify, subject="calm")
    assert held.state == "queued" and held.due_at is not None
    assert held.due_at.replace(tzinfo=UTC) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 07:00 Bangkok
    assert await texts(9804, sandbox_url) == ["Urgent: convoy incident."]
    clock.set(datetime(2026, 3, 3, 0, 0, 5, tzinfo=UTC))
    notify.parts.due.wake()
    got = await eventually(lambda: count_texts(9804, sandbox_url, 2), what="released at 07:00 local")
    assert got[1].startswith("Mopti route closed")


async def test_blocked_or_unlinked_recipients_fail_and_the_desk_is_told_once_in_a_summary(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox_url}/sandbox/faults", json={"blocked_user_ids": [9801]})
    await publish(bus, request([people["awa@ocha.example"], people["noone@ocha.example"]]))
    await eventually(lambda: _state(notify, "failed"), what="failed for the blocked one")
    (failed,) = await notifications(notify, state="failed")
    (kept,) = await notifications(notify, state="unlinked")  # never tried: kept for when she links
    assert (failed.person_name, failed.failed_reason) == ("Awa Traoré", "blocked")
    assert (kept.person_name, kept.failed_reason) == ("Nadia Unlinked", "no Telegram link")
    await publish(bus, request([people["awa@ocha.example"], people["noone@ocha.example"]], about="subject-2"))
    await eventually(lambda: _state(notify, "failed", 2), what="the second message failed too")
    clock.advance(timedelta(minutes=11))  # the failures have gathered
    notify.parts.due.wake()
    (desk,) = await eventually(lambda: count_texts(9803, sandbox_url, 1), what="one summary to the desk")
    assert desk.startswith("Could not reach on Telegram (2)")
    assert "• Awa Traoré (blocked), 2 messages" in desk and "• Nadia Unlinked (no Telegram link), 2 messages" in desk
    # the same people failing again, a day later: counted, not told again
    clock.advance(timedelta(days=1))
    await publish(bus, request([people["noone@ocha.example"]], about="subject-3"))
    await eventually(lambda: _state(notify, "unlinked", 3), what="the third message kept")
    clock.advance(timedelta(minutes=11))
    notify.parts.due.wake()
    await notify.parts.due.run_pass()
    assert len(await texts(9803, sandbox_url)) == 1


async def test_two_notify_processes_send_each_message_once(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, bus: Bus,
    sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    apps = [notify_bootstrap.build(notify_settings(tmp_path, nats_server.url), clock=clock) for _ in range(2)]
    for app in apps:
        app.settings = app.settings.model_copy(update={"health_port": free_port()})
        await app.start()
    try:
        everyone = [people[e] for e in ("awa@ocha.example", "jean@ocha.example", "maria@ocha.example")]
        for i in range(5):
            await publish(bus, request(everyone, about=f"s{i}", text=f"Notice {i}"))
        for user_id in (9801, 9802, 9803):
            await eventually(lambda u=user_id: count_texts(u, sandbox_url, 5), what=f"five messages for {user_id}",
                             timeout=40)
        clock.advance(timedelta(hours=24, minutes=1))  # both processes see the re-notify steps fall due
        for app in apps:
            app.parts.due.wake()
        for user_id in (9801, 9802, 9803):
            got = await eventually(lambda u=user_id: count_texts(u, sandbox_url, 10), what="the re-notifications",
                                   timeout=60)
            assert sorted(got) == sorted([f"Notice {i}" for i in range(5)] * 2)
        # the first sends went out with the notifications; each re-send was done by one process
        assert sum(app.parts.due.done for app in apps) == 15
        await eventually(lambda: _bot_delivered(bot, 30), what="the bot's deliveries recorded")
        assert len(await texts(9801, sandbox_url)) == 10
    finally:
        for app in apps:
            await app.stop()


async def _bot_delivered(bot: BotApp, n: int) -> bool:
    from services.bot.models import Delivery

    async with bot.db.read() as session:
        return len((await session.exec(select(Delivery))).all()) >= n


async def test_gapped_alerts_until_filled(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str,
) -> None:
    post = uuid.uuid4()
    for alert in (1, 2):
        await publish(bus, events.PostGapped(post_id=post, country="ML", region="ROWCA", title="CMCoord Officer",
                                             duty_station="Mopti", gapped_since=date(2026, 2, 20), alert_number=alert),
                      source="roster")
    adviser = await eventually(lambda: count_texts(9802, sandbox_url, 2), what="two alerts to the adviser")
    assert adviser[0].startswith("Post gapped: CMCoord Officer, Mopti (Mali, West and Central Africa)") and "Alert 2" in adviser[1]
    assert len(await eventually(lambda: count_texts(9803, sandbox_url, 2), what="and to the desk")) == 2
    await publish(bus, events.PostFilled(post_id=post, country="ML", region="ROWCA", deployment_id=uuid.uuid4(),
                                         person_id=uuid.uuid4(), filled_on=date(2026, 3, 2),
                                         gapped_since=date(2026, 2, 20)), source="roster")
    await eventually(lambda: _state(notify, "expired", 4), what="open alerts closed when the post is filled")


async def _deployment_of(roster_settings: Settings, person_id: uuid.UUID) -> Any:
    from services.roster.models import Deployment, Post

    db = Database(roster_settings.db_url)
    async with db.read() as session:
        dep, post = (await session.exec(select(Deployment, Post).join(Post).where(
            Deployment.person_id == person_id))).one()
    await db.dispose()
    return dep, post


def ending_soon(dep: Any, post: Any, planned_end: date) -> events.DeploymentEndingSoon:
    return events.DeploymentEndingSoon(
        deployment_id=dep.id, person_id=dep.person_id, post_id=post.id, country=post.country, region=post.region,
        role=dep.role, start=dep.start, planned_end=planned_end, days_left=21)


async def campaign_started(bus: Bus, sandbox_url: str, roster_settings: Settings, clock: ManualClock,
                           person_id: uuid.UUID, chat: int) -> tuple[Any, Any, date, User]:
    """The roster announces the person's deployment ends in 21 days; the prompt has arrived."""
    dep, post = await _deployment_of(roster_settings, person_id)
    end = clock.now().date() + timedelta(days=21)
    await publish(bus, ending_soon(dep, post, end), source="roster")
    user = User(sandbox_url, chat)
    await eventually(lambda: _last_with(user, "handover note for your successor"), what="the prompt")
    return dep, post, end, user


async def _last_with(user: User, needle: str) -> dict[str, Any] | None:
    found = [m for m in await user.messages() if needle in (m["text"] or "")]
    return found[-1] if found else None


async def test_the_handover_story_prompt_note_over_a_bot_restart_then_reminders_stop(
    tmp_path: Path, notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: Settings, people: dict[str, uuid.UUID], nats_server: NatsServer,
) -> None:
    dep, post = await _deployment_of(roster_settings, people["awa@ocha.example"])
    end = clock.now().date() + timedelta(days=21)
    await publish(bus, ending_soon(dep, post, end), source="roster")
    awa = User(sandbox_url, 9801)
    prompt = await eventually(lambda: _last_with(awa, "handover note for your successor"), what="the prompt")
    assert "• where files live" in prompt["text"]
    button = prompt["reply_markup"]["inline_keyboard"][0][0]
    assert button["text"] == "Write it now"
    await awa.press(prompt["message_id"], button["callback_data"])
    await eventually(lambda: _last_with(awa, "1/5 Key counterparts"), what="the first question")
    assert "2/5" in (await awa.reply_to("Liaison officer at the force HQ, via the G-CMCoord cell"))["text"]
    assert "3/5" in (await awa.reply_to("-"))["text"]

    await bot.stop()  # the bot goes down in the middle of the note
    restarted = await started_bot(tmp_path / "bot", nats_server.url, sandbox_url, clock=clock)  # the same day
    try:
        resumed = await awa.reply_to("/handover")
        assert "We were at question 3" in resumed["text"]
        assert "4/5" in (await awa.reply_to("Access working group, Mondays 10:00"))["text"]
        assert "5/5" in (await awa.reply_to("OCHA Mali SharePoint > CMCoord"))["text"]
        assert "Thank you" in (await awa.reply_to("Meet the liaison officer in your first week."))["text"]
    finally:
        await restarted.stop()

    # the roster stored it (roster.handover.recorded): the reminders are closed, nothing more goes out
    async def reminders_closed() -> list[Notification] | None:
        found = await notifications(notify, kind="handover.reminder")
        return found if len(found) == 2 and all(n.state == "expired" for n in found) else None

    await eventually(reminders_closed, what="reminders closed by the note")
    (prompt_row,) = await notifications(notify, kind="handover.prompt")
    assert prompt_row.state == "acknowledged" and prompt_row.reply == "handover"
    recorded = await stream_events(bus.js, "ROSTER", type_prefix="roster.handover.recorded")
    assert [e.data["deployment_id"] for e in recorded] == [str(dep.id)]
    sent_before = len(await awa.messages())
    clock.set(datetime.combine(end - timedelta(days=7), datetime.min.time(), tzinfo=UTC) + timedelta(hours=12))
    notify.parts.due.wake()
    await eventually(lambda: _no_due(notify), what="nothing due")
    assert len(await awa.messages()) == sent_before


async def _no_due(app: notify_bootstrap.NotifyApp) -> bool:
    return all(n.due_at is None or n.due_at.replace(tzinfo=UTC) > app.clock.now() for n in await notifications(app))


async def test_without_a_note_reminders_come_then_the_desk_hears_when_the_officer_left(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    dep, post, end, somchai = await campaign_started(bus, sandbox_url, roster_settings, clock,
                                                     people["somchai@ocha.example"], 9804)
    (fourteen,) = [n for n in await notifications(notify, kind="handover.reminder") if n.occurrence.endswith("-14d")]
    # due at 09:00 in Bangkok, 14 days before the end
    assert fourteen.due_at is not None
    assert fourteen.due_at.replace(tzinfo=UTC) == datetime.combine(end - timedelta(days=14), datetime.min.time(),
                                                                   tzinfo=UTC) + timedelta(hours=2)
    clock.set(fourteen.due_at.replace(tzinfo=UTC) + timedelta(minutes=1))
    notify.parts.due.wake()
    reminder = await eventually(lambda: _last_with(somchai, "Reminder: your deployment"), what="the 14-day reminder")
    assert "(14 days)" in reminder["text"]
    await publish(bus, events.DeploymentEnded(
        deployment_id=dep.id, person_id=dep.person_id, post_id=post.id, country=post.country, region=post.region,
        role=dep.role, start=dep.start, planned_end=end, ended_on=end), source="roster")
    # nobody advises ROAP in this roster: the CMCS desk hears instead, once its night in Geneva is over
    async def held() -> list[Notification] | None:
        found = await notifications(notify, kind="handover.missing")
        return found if found and found[0].due_at and found[0].due_at.replace(tzinfo=UTC) > clock.now() else None

    (missing,) = await eventually(held, what="the alert held for the night")
    assert missing.due_at is not None
    clock.set(missing.due_at.replace(tzinfo=UTC))
    notify.parts.due.wake()
    desk = await eventually(lambda: _last_with(User(sandbox_url, 9803), "No handover note"), what="the desk told")
    assert desk["text"].startswith("No handover note: Somchai Wong left")
    (seven,) = [n for n in await notifications(notify, kind="handover.reminder") if n.occurrence.endswith("-7d")]
    assert seven.state == "expired"


async def test_pending_lists_what_waits_and_answers_from_the_list(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    awa = User(sandbox_url, 9801)
    assert "Nothing is waiting for your answer" in (await awa.reply_to("/pending"))["text"]
    await publish(bus, request([people["awa@ocha.example"]], text="Access: the Gao road reopens Monday.\nDetails..."))
    await eventually(lambda: _state(notify, "sent"), what="delivered")
    me = await awa.reply_to("/me")
    assert "<b>You still owe</b>" in me["text"] and "answers to 1 messages: /pending" in me["text"]
    listing = await awa.reply_to("/pending")
    assert "1. Access: the Gao road reopens Monday." in listing["text"] and "Details" not in listing["text"]
    button = listing["reply_markup"]["inline_keyboard"][0][0]
    assert button["text"] == "1. Acknowledge"
    await awa.press(listing["message_id"], button["callback_data"])
    await eventually(lambda: _state(notify, "acknowledged"), what="acknowledged from the list")
    assert "Nothing is waiting for your answer" in (await awa.reply_to("/pending"))["text"]


async def test_a_successor_assigned_gets_introduced_and_then_receives_the_note(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    dep, post = await _deployment_of(roster_settings, people["awa@ocha.example"])
    start = dep.planned_end + timedelta(days=1)
    await publish(bus, events.DeploymentAssigned(
        deployment_id=uuid.uuid4(), person_id=people["somchai@ocha.example"], post_id=post.id, country="ML",
        region="ROWCA", role="cmcoord_officer", start=start, planned_end=start + timedelta(days=180)), source="roster")
    awa, somchai = User(sandbox_url, 9801), User(sandbox_url, 9804)
    to_awa = await eventually(lambda: _last_with(awa, "Your successor on CMCoord Officer, Bamako"), what="intro")
    assert "Somchai Wong (OCHA)" in to_awa["text"] and "+66 1 · somchai@ocha.example" in to_awa["text"]
    to_somchai = await eventually(lambda: _last_with(somchai, "You take over CMCoord Officer, Bamako"), what="intro")
    assert "from Awa Traoré (OCHA)" in to_somchai["text"] and "+223 1 · awa@ocha.example" in to_somchai["text"]

    await awa.reply_to("/handover")
    for answer in ("The liaison officer at the force HQ", "-", "Access working group, Mondays", "SharePoint",
                   "Listen first."):
        await awa.reply_to(answer)
    note = await eventually(lambda: _last_with(somchai, "Handover note from Awa Traoré"), what="the note")
    assert "Key counterparts: The liaison officer at the force HQ" in note["text"]
    assert "Open access" not in note["text"] and "Advice: Listen first." in note["text"]


async def test_a_changed_departure_date_goes_to_the_roster_and_the_campaign_follows_it(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster: RosterApp, roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    _, _, end, awa = await campaign_started(bus, sandbox_url, roster_settings, clock, people["awa@ocha.example"], 9801)
    clock.set(datetime.combine(end - timedelta(days=2), datetime.min.time(), tzinfo=UTC) + timedelta(hours=9))
    notify.parts.due.wake()  # 09:00 in Bamako, two days before the end
    question = await eventually(lambda: _last_with(awa, "Please confirm your departure date"), what="the question")
    assert [b["text"] for b in question["reply_markup"]["inline_keyboard"][0]] == ["Confirm", "Change the date"]
    await awa.press(question["message_id"], question["reply_markup"]["inline_keyboard"][0][1]["callback_data"])
    await eventually(lambda: _last_with(awa, "Send your new departure date"), what="asked for the date")
    assert "could not read that date" in (await awa.reply_to("next month"))["text"]
    new_end = end + timedelta(days=12)
    assert f"your departure is now on {new_end}" in (await awa.reply_to(new_end.isoformat()))["text"]

    async def moved() -> bool:
        return (await _deployment_of(roster_settings, people["awa@ocha.example"]))[0].planned_end == new_end

    await eventually(moved, what="the roster's planned end moved")

    async def old_campaign_closed() -> bool:
        rows = [n for n in await notifications(notify) if n.kind.startswith("handover.")]
        return bool(rows) and all(n.state in ("expired", "acknowledged") for n in rows)

    await eventually(old_campaign_closed, what="the campaign of the old date closed")
    # the roster's next scan (the test moved its clock 19 days at once): the new end is 12 days ahead
    await roster.parts.scan.run_pass(confirm_jump=True)
    again = await eventually(lambda: _last_with(awa, f"ends on {new_end.day} {new_end:%B %Y}"), what="re-timed")
    assert f"({(new_end - clock.now().date()).days} days)" in again["text"]
    timed = sorted(n.occurrence for n in await notifications(notify, kind="handover.reminder")
                   if n.occurrence.startswith(str(new_end)))
    assert timed == [f"{new_end}-7d"]  # 14 days before is already past


# --- issue 22: what is owed is caught up on linking; an acknowledgement closes every copy --------------------


async def test_an_officer_registering_late_gets_his_prompt_and_successor_once_and_pending_shows_them(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    from services.notify.models import DeskNotice
    from tests.integration.telegram_users import invite

    nadia_id = people["noone@ocha.example"]  # imported, never registered: kept, not sent
    dep, post = await _deployment_of(roster_settings, nadia_id)
    end = clock.now().date() + timedelta(days=21)
    await publish(bus, ending_soon(dep, post, end), source="roster")
    start = end + timedelta(days=1)
    await publish(bus, events.DeploymentAssigned(
        deployment_id=uuid.uuid4(), person_id=people["somchai@ocha.example"], post_id=post.id, country="NE",
        region="ROWCA", role="focal_point", start=start, planned_end=start + timedelta(days=180)), source="roster")
    await eventually(lambda: _state(notify, "unlinked", 5), what="prompt, reminders, departure, introduction kept")
    clock.advance(timedelta(days=18, hours=1))  # three days before the end she opens her invitation
    nadia = User(sandbox_url, 9901)
    assert "Nadia Unlinked" in (await nadia.reply_to(f"/start {await invite(roster_settings, clock, 'noone@ocha.example')}"))["text"]

    prompt = await eventually(lambda: _last_with(nadia, "handover note for your successor"), what="the prompt")
    await eventually(lambda: _last_with(nadia, "Your successor on Focal Point, Niamey"), what="the introduction")
    expected = {str(end): "sent", f"{end}-14d": "expired", f"{end}-7d": "expired", f"{end}-2d": "queued",
                "outgoing": "sent"}

    async def settled() -> dict[str, Notification] | None:
        found = {n.occurrence: n for n in await notifications(notify, person_id=nadia_id)}
        return found if {o: n.state for o, n in found.items()} == expected else None

    kept = await eventually(settled, what="sent once Telegram accepted them, the superseded reminders expired")
    assert prompt["reply_markup"]["inline_keyboard"][0][0]["text"] == "Write it now"
    assert f"ends on {end.day} {end:%B %Y} (3 days)." in prompt["text"]  # as of today, not of the import
    assert kept[f"{end}-2d"].due_action == "send"  # the departure question goes at its own time
    assert sum("handover note for your successor" in (m["text"] or "") for m in await nadia.messages()) == 1
    listing = await nadia.reply_to("/pending")
    assert "⟲ Your deployment in Niger ends on" in listing["text"] and "⟲ Your successor on" in listing["text"]
    async with notify.db.read() as session:
        assert await session.get(DeskNotice, f"unreached:{nadia_id}") is None  # the desk no longer counts her


async def test_an_acknowledgement_at_0624_stops_the_escalation_quiet_hours_held_for_0700(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    clock.set(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))  # urgent: sent at night, escalated at night
    await publish(bus, request([people["awa@ocha.example"]], urgent=True))
    await eventually(lambda: _state(notify, "sent"), what="the urgent message sent")
    clock.set(datetime(2026, 3, 4, 2, 0, 30, tzinfo=UTC))  # 48 h: re-sent at 24 h, then the adviser's turn
    for _ in range(2):
        notify.parts.due.wake()
        await notify.parts.due.run_pass()
    (held,) = await eventually(lambda: notifications(notify, kind="escalation"), what="the escalation")
    assert held.state == "queued" and held.due_at is not None
    assert held.due_at.replace(tzinfo=UTC) == datetime(2026, 3, 4, 7, 0, tzinfo=UTC)  # 07:00 in Dakar
    clock.set(datetime(2026, 3, 4, 6, 24, tzinfo=UTC))
    last = (await User(sandbox_url, 9801).messages())[-1]
    await User(sandbox_url, 9801).press(last["message_id"], last["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    await eventually(lambda: _state(notify, "acknowledged"), what="acknowledged at 06:24")
    (closed,) = await notifications(notify, kind="escalation")
    assert (closed.state, closed.due_at) == ("expired", None)
    async with notify.db.read() as session:
        reason = (await session.exec(select(Transition.reason).where(Transition.notification_id == closed.id)
                                     .order_by(col(Transition.id).desc()))).first()
    assert reason == "acknowledged by Awa Traoré at 04 Mar 06:24 UTC"
    clock.set(datetime(2026, 3, 4, 7, 0, 5, tzinfo=UTC))
    notify.parts.due.wake()
    await notify.parts.due.run_pass()
    assert await texts(9802, sandbox_url) == []  # the adviser is not woken for a matter settled


async def test_one_desk_member_acknowledges_a_role_alert_and_the_others_copy_says_who(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    await import_people(roster_settings, clock, sandbox_url, {  # a second desk officer, linked
        "lena@ocha.example": (9805, "Lena Vogt,lena@ocha.example,+41 2,OCHA,CH,Geneva,CMCS Desk Officer,cmcs_desk")},
        {})
    await publish(bus, events.NotificationRequested(kind="test.alert", about="convoy-7", occurrence="1",
                                                    role="cmcs_desk", text="Convoy 7 stopped at the Mopti checkpoint.",
                                                    buttons=[ReplyButton(label="Acknowledge", reply="ack")]),
                  source="lessons")
    maria, lena_chat = User(sandbox_url, 9803), User(sandbox_url, 9805)
    to_maria = await eventually(lambda: _last_with(maria, "Convoy 7"), what="Maria's copy")
    await eventually(lambda: _last_with(lena_chat, "Convoy 7"), what="Lena's copy")
    copies = await notifications(notify, kind="test.alert")
    assert len(copies) == 2 and copies[0].group_id is not None and copies[0].group_id == copies[1].group_id
    clock.set(datetime(2026, 3, 2, 9, 41, tzinfo=UTC))
    await maria.press(to_maria["message_id"], to_maria["reply_markup"]["inline_keyboard"][0][0]["callback_data"])

    async def edited() -> dict[str, Any] | None:
        found = await _last_with(lena_chat, "Convoy 7")
        return found if found and "Acknowledged by Maria Keller, 09:41 UTC" in found["text"] else None

    shown = await eventually(edited, what="Lena's copy rewritten")
    assert not (shown.get("reply_markup") or {}).get("inline_keyboard")  # no button left to press
    (lenas,) = await notifications(notify, kind="test.alert", chat_id=9805)
    assert (lenas.state, lenas.due_at) == ("expired", None)
    clock.advance(timedelta(hours=25))  # past the re-send time of an alert
    notify.parts.due.wake()
    await notify.parts.due.run_pass()
    assert len([m for m in await lena_chat.messages() if "Convoy 7" in (m["text"] or "")]) == 1


async def test_a_matter_settled_without_an_answer_takes_the_buttons_off_the_copies_on_screen(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    """A party answered, a post was filled: the open copies expire, and one on a phone must not keep
    a button whose press answers nothing (notify ignores it; the presser would be thanked)."""
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    await publish(bus, request([people["maria@ocha.example"], people["somchai@ocha.example"]], kind="hns4d.notice",
                               about="movement-12", text="Movement 12: no answer from the party yet."),
                  source="hns4d")
    maria, somchai = User(sandbox_url, 9803), User(sandbox_url, 9804)
    shown = await eventually(lambda: _last_with(maria, "Movement 12"), what="Maria's copy")
    assert shown["reply_markup"]["inline_keyboard"]
    await eventually(lambda: _last_with(somchai, "Movement 12"), what="Somchai's copy")
    clock.set(datetime(2026, 3, 2, 10, 15, tzinfo=UTC))
    await publish(bus, events.NotificationsSettled(kinds=["hns4d.notice"], about="movement-12",
                                                   reason="the party acknowledged"), source="hns4d")
    note = "<i>No answer is needed any more (closed at 10:15 UTC)</i>"

    async def rewritten(user: User) -> dict[str, Any] | None:
        found = await _last_with(user, "Movement 12")
        return found if found and found["text"].endswith(note) else None

    for user in (maria, somchai):
        message = await eventually(lambda: rewritten(user), what="the copy rewritten, settled")
        assert message["text"] == f"Movement 12: no answer from the party yet.\n\n{note}"
        assert not (message.get("reply_markup") or {}).get("inline_keyboard")  # nothing left to press
        assert len([m for m in await user.messages() if "Movement 12" in (m["text"] or "")]) == 1  # edited, not sent
    copies = await notifications(notify, kind="hns4d.notice")
    assert sorted(c.state for c in copies) == ["expired", "expired"]

    # a request that comes after its matter was settled (nak'ed while the roster was away, then retried)
    # asks nobody: the party answered meanwhile
    await publish(bus, events.NotificationsSettled(kinds=["hns4d.notice"], about="movement-13",
                                                   reason="the party acknowledged"), source="hns4d")
    await eventually(lambda: _settled(notify, "hns4d.notice", "movement-13"), what="the settle kept")
    await publish(bus, request([people["maria@ocha.example"]], kind="hns4d.notice", about="movement-13",
                               text="Movement 13: no answer from the party yet."), source="hns4d")
    await eventually(lambda: _consumed(bus, "notify--on_requests"), what="the late request handled")
    assert await stream_messages(bus.js, "DEADLETTER") == []  # handled: not set aside as an error
    assert await notifications(notify, subject="movement-13") == []
    assert await _last_with(maria, "Movement 13") is None


async def test_a_message_nobody_answered_in_time_loses_its_buttons_on_screen(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    await publish(bus, request([people["maria@ocha.example"]], kind="telegram.link_confirmed", about="link-1",
                               text="Your Telegram account is now linked."))  # closed a day later, unanswered
    await publish(bus, request([people["somchai@ocha.example"]], kind="telegram.link_confirmed", about="link-2",
                               text="Read me.", buttons=[], urgent=True))  # nothing to press
    maria, somchai = User(sandbox_url, 9803), User(sandbox_url, 9804)
    await eventually(lambda: _last_with(somchai, "Read me."), what="Somchai's copy")
    shown = await eventually(lambda: _last_with(maria, "now linked"), what="Maria's copy")
    assert shown["reply_markup"]["inline_keyboard"]
    clock.set(datetime(2026, 3, 3, 9, 1, tzinfo=UTC))
    notify.parts.due.wake()  # type: ignore[union-attr]

    async def unbuttoned() -> dict[str, Any] | None:
        found = await _last_with(maria, "now linked")
        return found if found and not (found.get("reply_markup") or {}).get("inline_keyboard") else None

    message = await eventually(unbuttoned, what="the copy without its button")
    assert message["text"].endswith("<i>No answer is needed any more (closed at 09:01 UTC)</i>"), message["text"]
    copies = await eventually(lambda: _state(notify, "expired", 2), what="both closed")  # a step each, in turn
    # one rewrite, for the copy with a button, whichever came first, the close or the report of the send;
    # none for the copy with nothing to press: it stays as it was read
    await eventually(lambda: _consumed(bus, "notify--on_bot_reports", stream="BOT"), what="the sends reported")
    asked = await _outbox(notify, "notify.notification.expired")
    assert [a["notification_id"] for a in asked] == [str(next(c for c in copies if c.subject == "link-1").id)]
    assert (await _last_with(somchai, "Read me."))["text"] == "Read me."  # type: ignore[index]


async def test_a_copy_telegram_accepted_after_its_close_is_unbuttoned_then(
    notify: notify_bootstrap.NotifyApp, bus: Bus, clock: ManualClock, people: dict[str, uuid.UUID],
) -> None:
    """The send waited for its turn (a fan-out, a retry) and the matter was settled meanwhile: at the close
    nothing was on screen to change; when the bot reports the send, notify asks it to take the buttons off."""
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    somchai = people["somchai@ocha.example"]
    await publish(bus, request([somchai], kind="hns4d.notice", about="movement-20", text="Movement 20."),
                  source="hns4d")  # no bot here: the command to deliver it waits
    (deliver,) = await published(bus.js, "NOTIFY", "notify.deliver.telegram", 1)  # the bot is to send it
    clock.set(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    await publish(bus, events.NotificationsSettled(kinds=["hns4d.notice"], about="movement-20",
                                                   reason="the party acknowledged"), source="hns4d")
    await eventually(lambda: _state(notify, "expired"), what="closed")
    assert await _outbox(notify, "notify.notification.expired") == []  # nothing on screen yet: nothing to rewrite
    clock.set(datetime(2026, 3, 2, 9, 45, tzinfo=UTC))
    await publish(bus, events.DeliverySent(notification_id=uuid.UUID(deliver.data["notification_id"]), attempt=1,
                                           person_id=somchai, message_id=77), source="bot")
    (late,) = await published(bus.js, "NOTIFY", "notify.notification.expired", 1)
    assert (late.data["notification_id"], late.data["chat_id"], late.data["text"]) == (
        deliver.data["notification_id"], 9804, "Movement 20.")
    assert late.data["closed_at"] == "2026-03-02T09:30:00Z"  # when it was closed, not when it was sent
    await publish(bus, events.DeliverySent(notification_id=uuid.UUID(deliver.data["notification_id"]), attempt=1,
                                           person_id=somchai, message_id=77), source="bot")  # reported again
    await eventually(lambda: _consumed(bus, "notify--on_bot_reports", stream="BOT"), what="handled, not stuck")
    assert len(await _outbox(notify, "notify.notification.expired")) == 2  # each report asks once


async def test_a_late_copy_of_an_alert_another_holder_answered_says_who_did(
    notify: notify_bootstrap.NotifyApp, bus: Bus, clock: ManualClock, people: dict[str, uuid.UUID],
) -> None:
    """An alert to a role's holders: Awa answers while Somchai's send still waits. When Telegram takes it,
    his message is rewritten as the copies on screen were at her answer: acknowledged by Awa."""
    clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    await publish(bus, events.NotificationRequested(
        kind="test.alert", about="alert-1", occurrence="1", role="cmcoord_officer", text="Checkpoint closed.",
        buttons=[ReplyButton(label="Acknowledge", reply="ack")], urgent=True))  # no bot here: the sends wait
    copies = await eventually(lambda: _n_of(notify, "alert-1", 2), what="a copy for each officer")
    awa = next(c for c in copies if c.person_id == people["awa@ocha.example"])
    somchai = next(c for c in copies if c.person_id == people["somchai@ocha.example"])
    await published(bus.js, "NOTIFY", "notify.deliver.telegram", 2)
    clock.set(datetime(2026, 3, 2, 9, 20, tzinfo=UTC))
    await publish(bus, events.NotificationReplied(notification_id=awa.id, person_id=awa.person_id, reply="ack",
                                                  replied_at=clock.now()), source="bot")
    await eventually(lambda: _state(notify, "expired"), what="Somchai's copy closed")
    assert await _outbox(notify, "notify.notification.closed") == []  # his message is not on screen yet
    await publish(bus, events.DeliverySent(notification_id=somchai.id, attempt=1, person_id=somchai.person_id,
                                           message_id=78), source="bot")
    (late,) = await published(bus.js, "NOTIFY", "notify.notification.closed", 1)
    assert late.data["notification_id"] == str(somchai.id)
    assert (late.data["acknowledged_by"], late.data["acknowledged_at"]) == ("Awa Traoré", "2026-03-02T09:20:00Z")


async def _outbox(app: notify_bootstrap.NotifyApp, subject: str) -> list[dict[str, Any]]:
    """The data of what notify wrote to publish on `subject` (written in the transaction that caused it)."""
    async with app.db.read() as session:
        rows = (await session.exec(select(OutboxMessage).where(OutboxMessage.subject == f"cmcoord.{subject}.v1"))).all()
    return [json.loads(m.payload)["data"] for m in rows]


async def _n_of(app: notify_bootstrap.NotifyApp, about: str, n: int) -> list[Notification] | None:
    found = await notifications(app, subject=about)
    return found if len(found) >= n else None


async def _settled(app: notify_bootstrap.NotifyApp, kind: str, about: str) -> bool:
    async with app.db.read() as session:
        return await session.get(Settled, (kind, about)) is not None


async def _consumed(bus: Bus, durable: str, *, stream: str = "NOTIFY") -> bool:
    info = await bus.js.consumer_info(stream, durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_relinking_after_a_revoke_catches_up_and_open_messages_follow_the_new_account(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    from tests.helpers import roster_env
    from tests.integration.telegram_users import invite

    awa_id = people["awa@ocha.example"]
    await publish(bus, request([awa_id], about="before"))
    await eventually(lambda: _state(notify, "sent"), what="sent to her first account")
    code, _, err = await cli("roster", "revoke", "awa@ocha.example", env=roster_env(roster_settings))
    assert code == 0, err
    await publish(bus, request([awa_id], about="meanwhile", text="Checkpoint moved to the bridge."))
    await eventually(lambda: _state(notify, "unlinked"), what="kept while she has no link")
    phone = User(sandbox_url, 9906)
    await phone.reply_to(f"/start {await invite(roster_settings, clock, 'awa@ocha.example')}")
    await eventually(lambda: _last_with(phone, "Checkpoint moved"), what="caught up on the new account")
    (before,) = await notifications(notify, subject="before")
    assert before.chat_id == 9906  # a re-send goes to the account she uses now


async def test_closing_a_copy_twice_or_one_gone_neither_fails_nor_loops(
    bot: BotApp, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    from services.bot.handlers import on_closed
    from services.bot.i18n import Languages
    from services.bot.models import Delivery

    assert bot.parts.bot is not None
    sent = await bot.parts.bot.send_message(9803, "Gap in Mopti")
    nid = uuid.uuid4()
    async with bot.db.write() as session:
        for attempt, message_id in ((1, sent.message_id), (2, 999_999)):  # the second no longer exists
            session.add(Delivery(notification_id=nid, attempt=attempt, person_id=people["maria@ocha.example"],
                                 chat_id=9803, message_id=message_id, at=datetime.now(UTC), replies="ack"))
    closed = events.NotificationClosed(notification_id=nid, person_id=people["maria@ocha.example"], chat_id=9803,
                                       text="Gap in Mopti", acknowledged_by="Jean Ndiaye",
                                       acknowledged_at=datetime(2026, 3, 2, 6, 24, tzinfo=UTC))
    envelope = Envelope.wrap(closed, source="notify", occurred_at=datetime.now(UTC))
    languages = Languages(bot.db)
    for _ in range(2):  # the command delivered again: Telegram says "not modified", nothing more happens
        await on_closed(envelope, closed, bot=bot.parts.bot, db=bot.db, languages=languages)
    (message,) = await User(sandbox_url, 9803).messages()
    assert message["text"] == "Gap in Mopti\n\n✓ <i>Acknowledged by Jean Ndiaye, 06:24 UTC</i>"
    assert not message["reply_markup"]

    # a copy sent as a file: its buttons go and the note follows, once however often the close comes
    filed = await bot.parts.bot.send_document(9804, BufferedInputFile(b"%PDF", filename="sitrep.pdf"), caption="Sitrep",
                                        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
                                            text="Acknowledge", callback_data="x")]]))
    nid = uuid.uuid4()
    async with bot.db.write() as session:
        session.add(Delivery(notification_id=nid, attempt=1, person_id=people["somchai@ocha.example"], chat_id=9804,
                             message_id=filed.message_id, at=datetime.now(UTC), replies="ack"))
    closed = closed.model_copy(update={"notification_id": nid, "person_id": people["somchai@ocha.example"],
                                      "chat_id": 9804, "document": True})
    for _ in range(2):
        await on_closed(envelope, closed, bot=bot.parts.bot, db=bot.db, languages=languages)
    document, note = await User(sandbox_url, 9804).messages()
    assert document["text"] == "Sitrep" and not document["reply_markup"]  # the caption as it was
    assert note["text"] == "✓ <i>Acknowledged by Jean Ndiaye, 06:24 UTC</i>"
