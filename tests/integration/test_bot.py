"""The bot end to end: aiogram's real client over HTTP to the sandbox, the roster over NATS."""

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from services.bot import bootstrap as bot_bootstrap
from services.bot.config import Settings as BotSettings
from services.roster.bootstrap import RosterApp
from services.roster.config import Settings
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port
from shared.notices import long_date
from tests.helpers import eventually, published, stream_events
from tests.integration.telegram_users import User, invite


async def test_unregistered_users_see_nothing_of_the_roster(bot_app: Any, sandbox_url: str) -> None:
    stranger = User(sandbox_url, 9001)
    for text in ("/contacts Mali", "/me", "Diallo", "/start", "/help"):
        reply = await stranger.reply_to(text)
        assert "ask the CMCS desk or your regional adviser for an invitation" in reply["text"]
        assert "Diallo" not in reply["text"] and "+223" not in reply["text"]


async def test_registration_then_contacts_with_pages(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock
) -> None:
    officer = User(sandbox_url, 9002)
    token = await invite(roster_settings, clock, "o1@ocha.example")
    welcome = await officer.reply_to(f"/start {token}")
    assert welcome["text"].startswith("Welcome, <b>Officer 01 Diallo</b>")

    first = await officer.reply_to("/contacts Mali")
    assert "1–5 of 7" in first["text"] and "+223 70 00 00 01" in first["text"]
    buttons = first["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["Next ▶"]
    await officer.press(first["message_id"], buttons[0]["callback_data"])

    async def turned() -> dict[str, Any] | None:
        page = next(m for m in await officer.messages() if m["message_id"] == first["message_id"])
        return page if "6–7 of 7" in page["text"] else None

    second = await eventually(turned, what="page two")
    assert [b["text"] for b in second["reply_markup"]["inline_keyboard"][0]] == ["◀ Previous"]

    # names with markup characters arrive as text (the sandbox refuses bad HTML like Telegram)
    niger = await officer.reply_to("/contacts Niger")
    assert "Ana &lt;Test&gt; &amp; Co" in niger["text"] and "more than two hats" in niger["text"]
    region = await officer.reply_to("/contacts ROWCA")  # Mali and Niger are both in West and Central Africa
    assert "1–5 of 8" in region["text"]
    by_name = await officer.reply_to("/contacts Officer 03 Diallo")
    assert "<b>Officer 03 Diallo</b> · OCHA" in by_name["text"] and "+223 70 00 00 03" in by_name["text"]
    me = await officer.reply_to("/me")
    assert "Officer 01 Diallo" in me["text"] and "Bamako" in me["text"]
    assert "did not understand" in (await officer.reply_to("what is the weather"))["text"]


async def test_bad_tokens_get_clear_answers_and_brute_force_is_throttled(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock
) -> None:
    token = await invite(roster_settings, clock, "o2@ocha.example")
    assert "Welcome" in (await User(sandbox_url, 9003).reply_to(f"/start {token}"))["text"]
    guesser = User(sandbox_url, 9004)
    assert "already used" in (await guesser.reply_to(f"/start {token}"))["text"]
    late = await invite(roster_settings, clock, "o3@ocha.example")
    clock.advance(timedelta(days=8))
    assert "expired" in (await guesser.reply_to(f"/start {late}"))["text"]
    for attempt in range(3):
        assert "not valid" in (await guesser.reply_to(f"/start wrong{attempt}"))["text"]
    assert "Too many wrong invitation links" in (await guesser.reply_to("/start yet-another-guess"))["text"]
    valid = await invite(roster_settings, clock, "o4@ocha.example")
    assert "Too many" in (await guesser.reply_to(f"/start {valid}"))["text"]  # even a good one waits


@pytest.mark.field  # Telegram's flood control and server errors: `make test-field` (CI runs it)
async def test_the_bot_rides_out_flood_control_and_server_errors(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock
) -> None:
    officer = User(sandbox_url, 9005)
    token = await invite(roster_settings, clock, "o5@ocha.example")
    await officer.reply_to(f"/start {token}")
    bot_app.parts.gate.chat_interval = 0  # the bot's own pacing off: Telegram's 429s reach it
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox_url}/sandbox/faults", json={"fail_next": 3, "error_status": 502})
    replies = []
    for query in ("Mali", "Niger", "Bamako", "WFP"):  # back to back: 1 msg/s per chat, and three 502s first
        replies.append(await officer.reply_to(f"/contacts {query}"))
    async with aiohttp.ClientSession() as http, http.get(f"{sandbox_url}/sandbox/stats") as resp:
        stats = await resp.json()
    assert stats["errors"] == 3 and stats["rate_limited"] >= 1
    texts = [m["text"] for m in await officer.messages()]
    assert len(texts) == 5 and len(set(texts)) == 5  # the welcome and one answer per query: none lost, none twice
    assert "Mali" in replies[0]["text"] and "Niger" in replies[1]["text"]


async def test_a_conversation_survives_a_bot_restart(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock
) -> None:
    officer = User(sandbox_url, 9006)
    await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o6@ocha.example')}")
    assert "Who are you looking for?" in (await officer.reply_to("/contacts"))["text"]
    await bot_app.stop()  # the bot goes down between the question and the answer
    restarted = bot_bootstrap.build(bot_app.settings)
    await restarted.start()
    try:
        answer = await officer.reply_to("Niger")
        assert "Ana &lt;Test&gt; &amp; Co" in answer["text"]
        assert "did not understand" in (await officer.reply_to("Niger"))["text"]  # the conversation is over
    finally:
        await restarted.stop()


async def test_a_flooding_user_is_throttled_without_slowing_others(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock
) -> None:
    flooder, other = User(sandbox_url, 9007), User(sandbox_url, 9008)
    await flooder.reply_to(f"/start {await invite(roster_settings, clock, 'o7@ocha.example')}")
    await other.reply_to(f"/start {await invite(roster_settings, clock, 'o4@ocha.example')}")
    await asyncio.gather(*(flooder.send(f"/contacts Mali {i}") for i in range(15)))
    # the other officer is answered while the flooder's replies crawl at 1 message/s
    assert "Niger" in (await other.reply_to("/contacts Niger", timeout=5))["text"]
    await eventually(lambda: _bot_idle(bot_app), timeout=30, what="all updates handled (answered or dropped)")
    texts = [m["text"] for m in await flooder.messages()][1:]  # after the welcome
    answers = [t for t in texts if "Mali" in t]
    assert sum("faster than I can help" in t for t in texts) == 1
    assert 1 <= len(answers) <= 5 and len(texts) == len(answers) + 1  # at most a burst answered; the rest dropped


async def _bot_idle(app: Any) -> bool:
    """Nothing in hand and nothing unhandled in the bot's inbox."""
    from services.bot.polling import unhandled

    return not app.parts.poller.in_flight and not await unhandled(app.db, app.parts.bot)


async def test_webhook_mode_needs_a_secret_and_checks_it(
    tmp_path: Any, nats_server: NatsServer, sandbox_url: str, roster: RosterApp, roster_people: None,
    roster_settings: Settings, clock: ManualClock,
) -> None:
    from services.bot.webhook import SECRET_HEADER, WebhookSecretMissing
    from tests.helpers import mark_started

    base = dict(home=tmp_path / "bot", nats_url=nats_server.url, sandbox_url=sandbox_url, health_port=free_port(),
                mode="webhook", webhook_host="127.0.0.1")
    with pytest.raises(WebhookSecretMissing):
        await bot_bootstrap.build(BotSettings(**base, webhook_port=free_port())).start()

    port, secret = free_port(), "s3cret-for-the-webhook-test"
    app = bot_bootstrap.build(BotSettings(**base, webhook_port=port, webhook_secret=secret))
    await app.start()
    try:
        token = await invite(roster_settings, clock, "o1@ocha.example")
        update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": f"/start {token}",
                  "chat": {"id": 9301, "type": "private"}, "from": {"id": 9301, "is_bot": False, "first_name": "A"},
                  "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}
        url = f"http://127.0.0.1:{port}/telegram/webhook"
        await mark_started(sandbox_url, [9301])  # the update posted below is the user writing to the bot
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {SECRET_HEADER: "wrong"}):
                async with http.post(url, json=update, headers=headers) as resp:
                    assert resp.status == 401
            assert await User(sandbox_url, 9301).messages() == []  # nothing handled
            async with http.post(url, json=update, headers={SECRET_HEADER: secret}) as resp:
                assert resp.status == 200  # answered after handling
            async with http.post(url, json=update, headers={SECRET_HEADER: secret}) as resp:
                assert resp.status == 200  # Telegram's redelivery: handled once
        texts = [m["text"] for m in await User(sandbox_url, 9301).messages()]
        assert len(texts) == 1 and texts[0].startswith("Welcome, <b>Officer 01 Diallo</b>")

        # a flooding user is throttled in webhook mode too: a burst answered, told once, the rest dropped
        flood = [{"update_id": 100 + i, "message": {**update["message"], "message_id": 100 + i, "text": "/help",
                  "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}} for i in range(8)]
        async with aiohttp.ClientSession() as http:

            async def post(body: dict[str, Any]) -> int:
                async with http.post(url, json=body, headers={SECRET_HEADER: secret}) as resp:
                    return resp.status

            assert await asyncio.gather(*(post(body) for body in flood)) == [200] * 8  # Telegram's parallel connections
        texts = [m["text"] for m in await User(sandbox_url, 9301).messages()][1:]
        assert sum("faster than I can help" in t for t in texts) == 1
        assert 1 <= sum("CMCoord Hub" in t for t in texts) <= 5 and len(texts) <= 6
    finally:
        await app.stop()


async def test_deliver_commands_become_messages_and_a_press_the_acknowledgement(
    bot_app: Any, sandbox_url: str, bus: Any
) -> None:
    import uuid
    from datetime import UTC, datetime

    from shared.events import DeliverTelegram, Envelope, ReplyButton
    from tests.helpers import mark_started

    def command(chat_id: int, **kw: Any) -> Envelope:
        event = DeliverTelegram(notification_id=uuid.uuid4(), person_id=uuid.uuid4(), chat_id=chat_id, kind="post.gapped",
                                text="The CMCoord Officer post in Mopti is gapped <since 5 July> & unfilled.",
                                buttons=[ReplyButton(label="Acknowledge", reply="ack")], **kw)
        return Envelope.wrap(event, source="notify", occurred_at=datetime.now(UTC))

    await eventually(lambda: bot_app.parts.deliveries.bound, what="deliveries consumer bound")
    await mark_started(sandbox_url, [9401, 9402])  # they pressed Start earlier
    mine, theirs = command(9401), command(9402)
    for env in (mine, theirs):
        await bus.publish(env)
    officer, other = User(sandbox_url, 9401), User(sandbox_url, 9402)
    shown = (await eventually(officer.messages, what="the notification"))[0]
    assert shown["text"] == "The CMCoord Officer post in Mopti is gapped &lt;since 5 July&gt; &amp; unfilled."
    await eventually(other.messages, what="the other notification")
    # the same command again (a redelivery past the duplicate window): not sent twice
    await bus.publish_raw(mine.subject, mine.to_bytes(), msg_id=f"{mine.id}-again")
    await eventually(lambda: bot_app.parts.deliveries.stats.handled == 3, what="redelivery handled")
    assert len(await officer.messages()) == 1
    sent = await published(bus.js, "BOT", "bot.delivery.sent", 2)
    assert {e.data["notification_id"] for e in sent} == {str(mine.decode().notification_id),
                                                          str(theirs.decode().notification_id)}

    # a modified client sends the other officer's notification id: nothing happens
    their_data = f"nr:{theirs.decode().notification_id.hex}:ack"
    await officer.press(shown["message_id"], their_data, tampered=True)
    button = shown["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    await officer.press(shown["message_id"], button)
    replied = await published(bus.js, "BOT", "bot.notification.replied", 1)
    assert replied[0].data["notification_id"] == str(mine.decode().notification_id) and replied[0].data["reply"] == "ack"
    await eventually(lambda: _no_buttons(officer), what="buttons removed after the answer")
    assert len(await stream_events(bus.js, "BOT", type_prefix="bot.notification.replied")) == 1  # the tampered press produced nothing

    # a user who blocked the bot: failed, not sent
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox_url}/sandbox/faults", json={"blocked_user_ids": [9403]})
    await bus.publish(command(9403))
    failed = await published(bus.js, "BOT", "bot.delivery.failed", 1)
    assert failed[0].data["reason"] == "blocked"


async def _no_buttons(user: User) -> bool:
    return (await user.messages())[0]["reply_markup"] is None


async def test_counterparts_are_shown_to_officers_of_the_region_only(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock, tmp_path: Any
) -> None:
    from tests.helpers import cli, roster_env

    csv = tmp_path / "counterparts.csv"
    csv.write_text("country,unit,function,channel\nML,Operation Liaison Cell,Deconfliction,+223 20 99 99 99\n")
    code, _, err = await cli("roster", "counterparts", str(csv), env=roster_env(roster_settings))
    assert code == 0, err
    officer, focal = User(sandbox_url, 9501), User(sandbox_url, 9502)
    await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o1@ocha.example')}")  # CMCoord officer, Mali
    await focal.reply_to(f"/start {await invite(roster_settings, clock, 'ana@wfp.example')}")  # WFP focal point
    await officer.send("/contacts Mali")
    shown = await eventually(lambda: _texts_with(officer, "Counterparts in Mali"), what="counterparts")
    assert "Operation Liaison Cell: Deconfliction, +223 20 99 99 99" in shown[-1]
    await focal.reply_to("/contacts Mali")
    await eventually(lambda: _bot_idle(bot_app), what="all handled")
    assert not any("Counterparts" in m["text"] or "Liaison Cell" in m["text"] for m in await focal.messages())
    assert "not valid" in (await User(sandbox_url, 9503).reply_to("/start " + "x" * 300))["text"]


async def _texts_with(user: User, needle: str) -> list[str] | None:
    found = [m["text"] for m in await user.messages() if needle in (m["text"] or "")]
    return found or None


async def test_contacts_in_the_readers_language_by_hat_and_language_with_gaps_and_classified_counterparts(
    bot_app: Any, sandbox_url: str, roster_settings: Settings, clock: ManualClock, tmp_path: Any
) -> None:
    from services.roster.admin import import_text
    from tests.helpers import cli, roster_env

    t = clock.now().date()
    s, e = t - timedelta(days=30), t + timedelta(days=150)
    header = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,languages\n"
    rows = [f"Idriss Mahamat,idriss@ocha.example,+235 1,OCHA,TD,N'Djamena,CMCoord Officer,cmcoord_officer,{s},{e},ar;fr",
            f"Paul Mbarga,paul@unicef.example,+237 1,UNICEF,CM,Maroua,Focal Point,focal_point,{s},{e},fr;en",
            f"Karim Haddad,karim@ocha.example,+221 77 000 00 01,OCHA,SN,Dakar,Regional CMCoord Adviser,regional_adviser,"
            f"{s},{e},fr;en",
            f"Maria Keller,maria@ocha.example,+41 1,OCHA,CH,Geneva,CMCS Desk Officer,cmcs_desk,{s},{e},de;en",
            # left Bangui ten days ago, nobody took over: a gapped post
            f"Jean Gbaya,jean@ocha.example,+236 1,OCHA,CF,Bangui,CMCoord Officer,cmcoord_officer,{t - timedelta(days=200)},"
            f"{t - timedelta(days=10)},fr;sg"]
    _, errors, _ = await import_text(header + "\n".join(rows) + "\n", settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    counterparts = tmp_path / "counterparts.csv"
    counterparts.write_text("country,unit,function,channel,classification\n"
                            "Mali,Governor's office,Humanitarian desk,+223 20 11 11 11,public\n"
                            "Mali,Operation Liaison Cell,Deconfliction,+223 20 99 99 99,restricted\n")
    code, _, err = await cli("roster", "counterparts", str(counterparts), env=roster_env(roster_settings))
    assert code == 0, err

    officer, desk, focal = User(sandbox_url, 9511), User(sandbox_url, 9512), User(sandbox_url, 9513)
    await officer.reply_to(f"/start {await invite(roster_settings, clock, 'o1@ocha.example')}")  # CMCoord officer, Mali
    await desk.reply_to(f"/start {await invite(roster_settings, clock, 'maria@ocha.example')}")
    await focal.reply_to(f"/start {await invite(roster_settings, clock, 'ana@wfp.example')}")  # WFP focal point, Niger

    chad = await officer.reply_to("/contacts Tchad")
    assert "(country: Chad)" in chad["text"] and "Idriss Mahamat" in chad["text"]
    assert "Paul Mbarga" in (await officer.reply_to("/contacts Cameroun"))["text"]
    mali = await officer.reply_to("/contacts مالي")
    assert "1–5 of 7" in mali["text"] and mali["reply_markup"] is not None  # page buttons, the query fits in them
    await eventually(lambda: _texts_with(officer, "Counterparts in Mali"), what="counterparts after the people")
    bangui = await officer.reply_to("/contacts Bangui")
    assert "Nobody is in post for <b>Bangui</b> at the moment." in bangui["text"]
    assert (f"Gapped post: CMCoord Officer, Bangui (Central African Republic), nobody in post since "
            f"{long_date(t - timedelta(days=9))}.") in bangui["text"]  # "21 February 2026", as dates are shown
    assert "Covered meanwhile by the regional adviser(s) for ROWCA:\n<b>Karim Haddad</b> · +221 77 000 00 01" in (
        bangui["text"])
    hns4d = await officer.reply_to("/contacts HNS4D")
    assert "(hat: HNS4D)" in hns4d["text"] and "Ana &lt;Test&gt; &amp; Co" in hns4d["text"]
    for query in ("Arabic", "arabe", "العربية"):
        arabic = await officer.reply_to(f"/contacts {query}")
        assert "(language: Arabic)" in arabic["text"] and "Idriss Mahamat" in arabic["text"], query
        assert "1–1 of 1" in arabic["text"]

    # counterparts: each under its classification; restricted ones to the officer and the desk only
    sent = {}
    for user in (officer, desk, focal):
        sent[user.id] = len(await user.messages())
        await user.send("/contacts Mali")

    async def counterparts_for(user: User) -> str | None:
        found = [m["text"] for m in (await user.messages())[sent[user.id]:] if "Counterparts in Mali" in m["text"]]
        return found[0] if found else None

    for user in (officer, desk):
        shown = await eventually(lambda u=user: counterparts_for(u), what="counterparts")
        assert shown.index("Public:\nGovernor&#x27;s office") < shown.index(
            "Restricted, do not forward:\nOperation Liaison Cell: Deconfliction, +223 20 99 99 99")
    shown = await eventually(lambda: counterparts_for(focal), what="counterparts")
    assert "Governor&#x27;s office: Humanitarian desk" in shown
    assert "Liaison Cell" not in shown and "Restricted" not in shown
    french = await officer.reply_to("/contacts Bangui", language_code="fr")
    assert "Poste vacant : CMCoord Officer, Bangui (République centrafricaine)" in french["text"]
    assert "(pays : Tchad)" in (await officer.reply_to("/contacts Tchad", language_code="fr"))["text"]
