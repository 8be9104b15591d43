"""The bot against what Telegram really does (the sandbox answering as Telegram does): a
button pressed days later (an inaccessible message), an edit to identical content, HTML
502s from Telegram's edge, a 30 s flood wait, a recipient who never started the bot, a
forged button, and roster or AAR data holding < and &. aiogram's real client over HTTP."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import col, select

from services.bot.bootstrap import BotApp
from services.bot.models import Delivery
from services.lessons import bootstrap as lessons_bootstrap
from services.lessons import handlers as lessons_handlers
from services.lessons.config import Settings as LessonsSettings
from services.notify import bootstrap as notify_bootstrap
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.models import TelegramLink
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import DeliverTelegram, Envelope, ReplyButton
from shared.natsserver import NatsServer, free_port
from shared.store import Database, OutboxMessage
from tests.helpers import eventually, published, stream_events
from tests.integration.telegram_users import User, invite
from tests.integration.test_notify import count_texts, notifications, publish, request, texts
from tests.integration.test_notify import notify  # noqa: F401 - the fixture, shared with notify's tests

AWA, JEAN, MARIA, SOMCHAI = 9801, 9802, 9803, 9804  # officer ML, adviser ROWCA, CMCS desk, officer TH
NEVER_STARTED = 9811


# --- the sandbox's control API -------------------------------------------------------------------

async def control(url: str, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/sandbox/{path}", json=body) as resp:
        assert resp.status == 200, (path, resp.status, await resp.text())
        return await resp.json()


async def started(url: str, *user_ids: int) -> None:
    """These users pressed Start once: the bot may write to them."""
    await control(url, "users", {"started": list(user_ids)})


async def press(url: str, user_id: int, message_id: int, data: str, **extra: Any) -> None:
    await control(url, "press", {"user_id": user_id, "message_id": message_id, "data": data, **extra})


async def sandbox_stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/sandbox/stats") as resp:
        return dict(await resp.json())


async def accepted(url: str, contains: str) -> dict[str, Any]:
    """The bot's messages per chat with that text, and when the first and last were accepted."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/sandbox/counts",
                                                         params={"contains": contains}) as resp:
        return dict(await resp.json())


async def per_chat(url: str, contains: str) -> dict[str, int]:
    return dict((await accepted(url, contains))["per_chat"])


async def replied_events(bus: Bus) -> list[Envelope]:
    return await stream_events(bus.js, "BOT", type_prefix="bot.notification.replied")


async def replies_written(bot: BotApp) -> int:
    """The answers the bot has recorded to send (its outbox, written with the press it answers:
    final once the press is answered, unlike the stream, which the relay reaches later)."""
    async with bot.db.read() as session:
        return len((await session.exec(select(OutboxMessage).where(
            col(OutboxMessage.subject).contains("notification.replied")))).all())


async def last_with(user: User, needle: str) -> dict[str, Any] | None:
    found = [m for m in await user.messages() if needle in (m["text"] or "")]
    return found[-1] if found else None


async def no_error_shown(user: User) -> None:
    assert not any("Something went wrong" in (m["text"] or "") for m in await user.messages())


def deliver(chat_id: int, text: str, *, kind: str = "test.notice", buttons: list[ReplyButton] | None = None,
            notification_id: uuid.UUID | None = None) -> Envelope:
    event = DeliverTelegram(notification_id=notification_id or uuid.uuid4(), person_id=uuid.uuid4(), chat_id=chat_id,
                            kind=kind, text=text, buttons=buttons or [])
    return Envelope.wrap(event, source="notify", occurred_at=datetime.now(UTC))


async def deliveries(bot: BotApp) -> list[Delivery]:
    async with bot.db.read() as session:
        return list((await session.exec(select(Delivery))).all())


async def all_sent(bot: BotApp, n: int) -> list[Delivery] | None:
    rows = [d for d in await deliveries(bot) if d.message_id is not None]
    return rows if len(rows) >= n else None


# --- notifications answered late, and refused recipients -----------------------------------------

async def test_a_notification_acknowledged_three_days_later_is_acknowledged_once_and_confirmed(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    await started(sandbox_url, AWA, JEAN, MARIA, SOMCHAI)
    await publish(bus, request([people["awa@ocha.example"]]))
    awa = User(sandbox_url, AWA)
    first = (await eventually(awa.messages, what="the notification"))[0]
    await eventually(lambda: notifications(notify, state="sent"), what="Telegram's acceptance recorded")
    clock.advance(timedelta(days=3))  # re-notified after a day, the adviser told after two
    notify.parts.due.wake()
    await eventually(lambda: count_texts(JEAN, sandbox_url, 1), what="the adviser told")

    # the first message is three days old: Telegram sends its press with an InaccessibleMessage
    data = first["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await press(sandbox_url, AWA, first["message_id"], data, inaccessible=True)
    await eventually(lambda: last_with(awa, "your answer is recorded"), what="a confirmation the officer sees")
    await eventually(lambda: notifications(notify, state="acknowledged"), what="acknowledged")
    before = len(await awa.messages())
    await press(sandbox_url, AWA, first["message_id"], data, inaccessible=True)  # pressed again
    await eventually(lambda: count_texts(AWA, sandbox_url, before + 1), what="the second press answered")
    assert await replies_written(bot) == 1
    assert len(await published(bus.js, "BOT", "bot.notification.replied", 1)) == 1
    (acknowledged,) = await notifications(notify, kind="test.notice")
    assert acknowledged.state == "acknowledged" and acknowledged.reply == "ack"
    await no_error_shown(awa)


async def test_a_re_notification_that_crosses_the_answer_is_not_answered_a_second_time(
    bot: BotApp, bus: Bus, sandbox_url: str,
) -> None:
    """Notify re-sends a day later while the officer answers the first copy: the copy that lands
    after the answer is one more button to press, and pressing it records nothing new."""
    await started(sandbox_url, AWA)
    await eventually(lambda: bot.parts.deliveries is not None and bot.parts.deliveries.bound, what="deliveries bound")
    notice, person = uuid.uuid4(), uuid.uuid4()
    ack = [ReplyButton(label="Acknowledge", reply="ack")]

    def copy(text: str, attempt: int) -> Envelope:
        return Envelope.wrap(DeliverTelegram(notification_id=notice, attempt=attempt, person_id=person, chat_id=AWA,
                                             kind="test.notice", text=text, buttons=ack),
                             source="notify", occurred_at=datetime.now(UTC))

    awa = User(sandbox_url, AWA)
    await bus.publish(copy("Road closed at Gao.", 1))
    first = (await eventually(awa.messages, what="the first copy"))[0]
    await awa.press(first["message_id"], first["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    await eventually(lambda: replied_events(bus), what="the answer recorded")
    await bus.publish(copy("Reminder: Road closed at Gao.", 2))  # the re-notification, sent before notify heard
    second = await eventually(lambda: last_with(awa, "Reminder:"), what="the second copy")
    await awa.press(second["message_id"], second["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    await eventually(lambda: _buttons_gone(awa, second["message_id"]), what="the second press answered")
    assert await replies_written(bot) == 1
    (replied,) = await published(bus.js, "BOT", "bot.notification.replied", 1)
    assert replied.data["notification_id"] == str(notice)
    await no_error_shown(awa)


async def _buttons_gone(user: User, message_id: int) -> bool:
    return any(m["message_id"] == message_id and not m.get("reply_markup") for m in await user.messages())


async def test_a_recipient_who_never_started_the_bot_fails_as_chat_not_found_and_the_desk_hears_once(
    notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    roster_settings: Settings, people: dict[str, uuid.UUID],
) -> None:
    nadia = people["noone@ocha.example"]  # her account is linked (by the desk), but she never pressed Start
    db = Database(roster_settings.db_url)
    async with db.write() as session:
        session.add(TelegramLink(person_id=nadia, telegram_user_id=NEVER_STARTED, linked_at=clock.now()))
    await db.dispose()
    await publish(bus, request([nadia]))
    await publish(bus, request([nadia], about="subject-2"))
    both = await eventually(lambda: _failed(notify, 2), what="both messages failed")
    assert {n.failed_reason for n in both} == {"chat not found"}
    bot_failed = await stream_events(bus.js, "BOT", type_prefix="bot.delivery.failed")
    assert [e.data["reason"] for e in bot_failed] == ["chat not found", "chat not found"]
    clock.advance(timedelta(minutes=11))  # the failures have gathered
    notify.parts.due.wake()
    (desk,) = await eventually(lambda: count_texts(MARIA, sandbox_url, 1), what="one summary to the desk")
    assert "• Nadia Unlinked (chat not found), 2 messages" in desk
    await notify.parts.due.run_pass()
    assert len(await texts(MARIA, sandbox_url)) == 1
    assert await texts(NEVER_STARTED, sandbox_url) == []


async def _failed(app: notify_bootstrap.NotifyApp, n: int) -> list[Any] | None:
    found = await notifications(app, state="failed")
    return found if len(found) >= n else None


# --- buttons: a forged reply, a page turned to the page shown -------------------------------------

async def test_a_forged_reply_opens_nothing_and_is_not_recorded(
    bot: BotApp, bus: Bus, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    await started(sandbox_url, AWA)
    await eventually(lambda: bot.parts.deliveries is not None and bot.parts.deliveries.bound, what="deliveries bound")
    reminder = uuid.uuid4()
    await bus.publish(deliver(AWA, "ROWCA call tomorrow 10:00. Will you join?", kind="call.reminder",
                              notification_id=reminder,
                              buttons=[ReplyButton(label="I will join", reply="join"),
                                       ReplyButton(label="I cannot", reply="decline")]))
    awa = User(sandbox_url, AWA)
    shown = (await eventually(awa.messages, what="the call reminder"))[0]
    # a modified client sends "change the date" on the officer's own call reminder
    await press(sandbox_url, AWA, shown["message_id"], f"nr:{reminder.hex}:change_date", tampered=True)
    # the chat's updates are handled in order: the answer to this message comes after the forged press
    answer = await awa.reply_to((datetime.now(UTC).date() + timedelta(days=40)).isoformat())
    assert "did not understand" in answer["text"]  # no departure question was open
    assert await last_with(awa, "new departure date") is None
    assert await replied_events(bus) == []
    (row,) = await deliveries(bot)
    assert row.replied is None and row.replies == "join decline"

    join = shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await awa.press(shown["message_id"], join)
    (replied,) = await eventually(lambda: replied_events(bus), what="the real answer recorded")
    assert replied.data["reply"] == "join" and replied.data["notification_id"] == str(reminder)
    await no_error_shown(awa)


async def test_contacts_paged_back_to_the_page_shown_is_no_error(
    bot: BotApp, sandbox_url: str, roster_settings: Settings, clock: ManualClock, roster_people: None,
) -> None:
    officer = User(sandbox_url, 9601)
    await started(sandbox_url, officer.id)
    await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o1@ocha.example')}")
    first = await officer.reply_to("/contacts Mali")
    (next_page,) = first["reply_markup"]["inline_keyboard"][0]
    # a double tap: both presses reach Telegram before the first edit; the second finds page two shown
    await officer.press(first["message_id"], next_page["callback_data"])
    await officer.press(first["message_id"], next_page["callback_data"], tampered=True)
    # and the page the message shows asked for again
    await officer.press(first["message_id"], next_page["callback_data"], tampered=True)
    # a chat's updates are handled in order: once /help is answered, the presses were handled
    assert "CMCoord Hub" in (await officer.reply_to("/help"))["text"]
    page = next(m for m in await officer.messages() if m["message_id"] == first["message_id"])
    assert "6–7 of 7" in page["text"]
    assert len(await officer.messages()) == 3  # the welcome, the page, the help: no error, no page sent anew
    await no_error_shown(officer)


# --- Telegram unwell: HTML 502s from its edge, a long flood wait ---------------------------------

async def test_html_502s_from_telegrams_edge_during_a_fan_out_lose_and_double_nothing(
    bot: BotApp, bus: Bus, sandbox_url: str,
) -> None:
    chats = list(range(7100, 7200))
    await started(sandbox_url, *chats)
    await eventually(lambda: bot.parts.deliveries is not None and bot.parts.deliveries.bound, what="deliveries bound")
    await control(sandbox_url, "faults", {"error_rate": 0.1, "error_status": 502, "error_body": "html"})
    text = "Fan-out under 502s: the Mopti convoy leaves at 06:00."
    for chat in chats:
        await bus.publish(deliver(chat, text))
    await eventually(lambda: all_sent(bot, len(chats)), timeout=60, what="every message accepted")
    counts = await per_chat(sandbox_url, "Fan-out under 502s")
    assert counts == {str(c): 1 for c in chats}  # each arrived, once
    stats = await sandbox_stats(sandbox_url)
    assert stats["errors"] >= 1  # the edge's HTML pages were met, and ridden out
    assert all(d.failed is None and d.sends == 1 for d in await deliveries(bot))
    sent = await published(bus.js, "BOT", "bot.delivery.sent", len(chats))
    assert len(sent) == len(chats) and len({e.data["notification_id"] for e in sent}) == len(chats)


@pytest.mark.field  # Telegram's flood wait for half a minute: `make test-field` (CI runs it)
async def test_a_thirty_second_flood_wait_during_a_fan_out_loses_and_doubles_nothing(
    bot: BotApp, bus: Bus, sandbox_url: str,
) -> None:
    chats = list(range(7300, 7600))  # 300 at 28 a second: about 11 s, plus the 30 s wait
    await started(sandbox_url, *chats)
    await eventually(lambda: bot.parts.deliveries is not None and bot.parts.deliveries.bound, what="deliveries bound")
    text = "Fan-out under a flood wait: the Gao route is closed."
    for chat in chats:
        await bus.publish(deliver(chat, text))
    await eventually(lambda: _at_least(sandbox_url, "flood wait", 30), timeout=30, what="the fan-out under way")
    await control(sandbox_url, "faults", {"fail_next": 1, "error_status": 429, "retry_after": 30})
    await eventually(lambda: all_sent(bot, len(chats)), timeout=85, what="every message accepted")
    stats = await sandbox_stats(sandbox_url)
    assert stats["rate_limited"] + stats["errors"] == 1  # the one 429
    found = await accepted(sandbox_url, "flood wait")
    assert found["per_chat"] == {str(c): 1 for c in chats}
    assert found["last_at"] - found["first_at"] >= 30  # the wait was kept (at 28 a second: 11 s without it)
    assert all(d.failed is None and d.sends == 1 for d in await deliveries(bot))
    sent = await published(bus.js, "BOT", "bot.delivery.sent", len(chats))
    assert len({e.data["notification_id"] for e in sent}) == len(sent) == len(chats)


async def _at_least(url: str, contains: str, n: int) -> bool:
    return len(await per_chat(url, contains)) >= n


# --- markup characters in roster and AAR data ----------------------------------------------------

HEADER = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,hats\n"


async def test_markup_characters_in_a_post_title_and_an_operation_name_arrive_as_text(
    tmp_path: Path, nats_server: NatsServer, bot: BotApp, sandbox_url: str, roster_settings: Settings,
    clock: ManualClock,
) -> None:
    today = clock.now().date()
    row = (f"Lina Haddad,lina@ocha.example,+223 2,OCHA,ML,Gao & <Kidal>,CMCoord <Officer> & Liaison,cmcoord_officer,"
           f"{today - timedelta(days=60)},{today + timedelta(days=20)},\n")
    _, errors, _ = await import_text(HEADER + row, settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    lina = User(sandbox_url, 9701)
    await started(sandbox_url, lina.id)
    await lina.reply_to(f"/start {await invite(roster_settings, clock, 'lina@ocha.example')}")

    handover = await lina.reply_to("/handover")
    assert "CMCoord &lt;Officer&gt; &amp; Liaison, Gao &amp; &lt;Kidal&gt;" in handover["text"]
    assert "1/5 Key counterparts" in handover["text"]
    await lina.reply_to("/cancel")

    settings = LessonsSettings(home=tmp_path / "lessons-home", nats_url=nats_server.url, health_port=free_port(),
                               tick_seconds=0.2, max_deliver=3)
    lessons = lessons_bootstrap.build(settings, clock=clock)
    await lessons.start()
    try:
        person_id = await _person_of(roster_settings, lina.id)
        async with lessons.db.unit_of_work(source="test", clock=clock) as uow:
            await lessons_handlers.expect_aar(uow, aar_id=uuid.uuid4(), person_id=person_id, country="ML",
                                           due_on=today + timedelta(days=30),
                                           policy=lessons_bootstrap.duty_policy(settings),
                                           operation="Floods <Mopti> & Gao response")
        aar = await lina.reply_to("/aar")
        assert "Your after action review of Floods &lt;Mopti&gt; &amp; Gao response" in aar["text"]
        assert "1/5 What was planned?" in aar["text"]

        too_long = await lina.reply_to("/lessons " + "convoy " * 50)
        assert "That search is too long: at most 300 characters" in too_long["text"]
    finally:
        await lessons.stop()
    await no_error_shown(lina)


async def _person_of(roster_settings: Settings, telegram_user_id: int) -> uuid.UUID:
    db = Database(roster_settings.db_url)
    async with db.read() as session:
        link = (await session.exec(select(TelegramLink).where(
            TelegramLink.telegram_user_id == telegram_user_id))).one()
    await db.dispose()
    return link.person_id
