"""Regional call schedules as the CMCS desk and a chair manage them (`cmcoord calls`), and the
calendar feed officers subscribe to (notify's own listener, a URL per region)."""

import asyncio
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import icalendar
import recurring_ical_events
from sqlmodel import select

from services.bot.bootstrap import BotApp
from services.notify import bootstrap as notify_bootstrap
from services.notify import calls
from services.notify.calendar_feed import SECRET_FILE, etag_of, feed_path, feed_secret, feed_url
from services.notify.config import Settings as NotifySettings
from services.notify.models import CallAgendaItem, CallSummary, Notification
from services.notify.schedule import Change, Occurrence, default_schedules, next_occurrence, occurrences
from services.roster import bootstrap as roster_bootstrap
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings as RosterSettings
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.natsserver import NatsServer, free_port
from tests.helpers import cli, eventually, service_env, stream_events
from tests.integration.conftest import PEOPLE_HEADER
from tests.integration.telegram_users import User
from tests.integration.test_notify import (
    count_texts,
    notifications,
    notify_settings,
    publish,
    request,
    texts,
)


def _expanded(ics: bytes, after: datetime, before: datetime) -> list[datetime]:
    calendar = icalendar.Calendar.from_ical(ics)
    return sorted(e["DTSTART"].dt.astimezone(UTC) for e in recurring_ical_events.of(calendar).between(after, before))


async def test_a_region_s_call_set_cancelled_moved_and_exported(tmp_path: Path) -> None:
    env = service_env(tmp_path / "home", "nats://127.0.0.1:1")  # no NATS needed: notify's store only
    code, out, err = await cli("calls", "set", "roap", "--time", "14:30", "--link", "https://meet.example/roap",
                               "--chair", "Jean@OCHA.example", env=env)
    assert code == 0, err
    assert "14:30 Asia/Bangkok" in out and "chair jean@ocha.example" in out

    now = datetime.now(UTC)
    (roap,) = [s for s in default_schedules() if s.region == "ROAP"]
    roap = replace(roap, local_time=time(14, 30))
    first, second, third, *_ = occurrences(roap, [], after=now + timedelta(days=1), before=now + timedelta(days=90))

    def day(o: Occurrence) -> str:
        return str(o.start.astimezone(roap.zone).date())

    new_start = (third.start + timedelta(days=1)).astimezone(roap.zone).replace(hour=9, minute=0)

    code, out, err = await cli("calls", "cancel", "ROAP", day(second), env=env)
    assert code == 0 and out.startswith("cancelled: ROAP call of"), err
    code, _, err = await cli("calls", "cancel", "ROAP", day(second), env=env)
    assert code == 1 and "already cancelled" in err
    code, _, err = await cli("calls", "cancel", "ROAP", str(first.start.date() + timedelta(days=1)), env=env)
    assert code == 1 and "no ROAP call on" in err
    code, out, err = await cli("calls", "move", "ROAP", day(third), new_start.strftime("%Y-%m-%dT%H:%M"), env=env)
    assert code == 0 and out.startswith("moved:"), err

    feed = tmp_path / "roap.ics"
    code, _, err = await cli("calls", "ics", "ROAP", "--out", str(feed), env=env)
    assert code == 0, err
    expected = occurrences(roap, [Change(second.original), Change(third.original, moved_to=new_start.astimezone(UTC))],
                           after=now, before=now + timedelta(days=90))
    assert _expanded(feed.read_bytes(), now, now + timedelta(days=90)) == [o.start for o in expected]
    assert second.start not in [o.start for o in expected] and new_start in [o.start for o in expected]

    code, _, err = await cli("calls", "set", "ROAP", "--tz", "Mars/Olympus_Mons", env=env)
    assert code == 1 and "unknown time zone" in err
    code, out, _ = await cli("calls", "list", env=env)
    assert code == 0 and len(out.splitlines()) == 6 and "14:30 Asia/Bangkok" in out


async def test_notify_serves_each_region_s_calendar_on_its_own_port_at_a_url_nobody_guesses(
    tmp_path: Path, nats_server: NatsServer,
) -> None:
    settings = NotifySettings(home=tmp_path / "notify", nats_url=nats_server.url, health_port=free_port(),
                              calendar_port=free_port())
    app = notify_bootstrap.build(settings)
    await app.start()
    try:
        assert app.health is not None and app.parts.calendar is not None
        secret = feed_secret(settings)
        base, health = f"http://127.0.0.1:{app.parts.calendar.port}", f"http://127.0.0.1:{app.health.port}"
        url = feed_url(base, secret, "ROWCA")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 200 and resp.content_type == "text/calendar"
                assert resp.headers["Cache-Control"] == "private, max-age=300"
                etag = resp.headers["ETag"]
                body = await resp.read()
            assert etag == etag_of(body) and not etag.startswith("W/")  # strong: the bytes' own hash
            async with http.get(url, headers={"If-None-Match": etag}) as resp:  # a calendar app's next poll
                assert resp.status == 304 and await resp.read() == b""
                assert resp.headers["ETag"] == etag and resp.headers["Cache-Control"] == "private, max-age=300"
            async with http.get(url, headers={"If-None-Match": '"an-old-one"'}) as resp:
                assert resp.status == 200 and await resp.read() == body  # the same bytes poll after poll

            # no oracle: a wrong, missing or other region's token, an unknown region, any other path: one 404
            rowca = feed_path(secret, "ROWCA")
            wrong = [feed_path(secret, "ROAP").replace("/roap/", "/rowca/"), feed_path(b"x" * 32, "ROWCA"),
                     rowca.replace("/rowca/", "/narnia/"), rowca[:-4].upper().replace("/CALENDAR/ROWCA/",
                                                                                     "/calendar/rowca/") + ".ics",
                     rowca.upper(), "/calendar/rowca/.ics",
                     "/calendar/rowca.ics", "/calls/rowca.ics", "/healthz", "/metrics"]
            answers = set()
            for path in wrong:
                async with http.get(base + path) as resp:
                    answers.add((resp.status, await resp.text()))
            assert answers == {(404, "404: Not Found")}
            # the health port stays internal: health and metrics, and no feed
            for path in (rowca, "/calls/rowca.ics"):
                async with http.get(health + path) as resp:
                    assert resp.status == 404
            async with http.get(health + "/healthz") as resp:
                assert resp.status == 200
            async with http.get(health + "/metrics") as resp:
                figures = await resp.text()
            assert 'cmcoord_calendar_feed_requests_total{outcome="not_found"} 4.0' in figures  # the feed's 4 paths
            assert 'cmcoord_calendar_feed_requests_total{outcome="not_modified"} 1.0' in figures

            async with app.db.write() as session:  # a call cancelled: the feed changes, and its ETag
                schedule = await calls.schedule_of(session, "ROWCA")
                first = calls.upcoming(schedule, [], now=datetime.now(UTC))[0]
                await calls.change(session, schedule, first, moved_to=None, now=datetime.now(UTC))
            async with http.get(url, headers={"If-None-Match": etag}) as resp:
                assert resp.status == 200 and resp.headers["ETag"] != etag
                cancelled = await resp.read()

        now = datetime.now(UTC)
        (rowca_call,) = [s for s in default_schedules() if s.region == "ROWCA"]
        starts = _expanded(body, now, now + timedelta(days=365))  # as calendar apps expand it
        assert starts == [o.start for o in occurrences(rowca_call, [], after=now, before=now + timedelta(days=365))]
        assert len(starts) in (26, 27)
        assert _expanded(cancelled, now, now + timedelta(days=365)) == [s for s in starts if s != first.start]

        await app.stop()  # a restart keeps the URLs (the key kept under the service's home)
        app = notify_bootstrap.build(settings)
        await app.start()
        assert app.parts.calendar is not None
        async with aiohttp.ClientSession() as http, \
                http.get(feed_url(f"http://127.0.0.1:{app.parts.calendar.port}", secret, "ROWCA")) as resp:
            assert resp.status == 200
    finally:
        await app.stop()


async def test_the_feed_is_off_unless_given_a_port_and_the_operator_prints_its_urls(
    tmp_path: Path, nats_server: NatsServer,
) -> None:
    settings = NotifySettings(home=tmp_path / "notify", nats_url=nats_server.url, health_port=free_port())
    app = notify_bootstrap.build(settings)
    await app.start()
    try:
        assert app.parts.calendar is None and not (settings.home / SECRET_FILE).exists()
    finally:
        await app.stop()

    env = service_env(settings.home, nats_server.url)
    code, _, err = await cli("calls", "feed-url", "ROWCA", env=env)
    assert code == 1 and "the calendar feed is off" in err
    code, out, err = await cli("calls", "feed-url", "rowca", "--base-url", "https://calls.example/", env=env)
    assert code == 0, err
    key = settings.home / SECRET_FILE  # made by the first who needed it, for the service to find
    assert key.stat().st_mode & 0o777 == 0o600
    assert out.strip() == feed_url("https://calls.example", feed_secret(settings), "ROWCA")
    assert out.startswith("https://calls.example/calendar/rowca/") and out.strip().endswith(".ics")
    code, every, err = await cli("calls", "feed-url", "all", env={**env, "CMCOORD_NOTIFY_CALENDAR_PORT": "8443",
                                                                   "CMCOORD_NOTIFY_CALENDAR_HOST": "calls.internal"})
    assert code == 0, err
    lines = every.splitlines()
    rowca = feed_url("http://calls.internal:8443", feed_secret(settings), "ROWCA")
    assert len(lines) == 6 and f"ROWCA   {rowca}" in lines
    assert len({line.split()[1].split("/")[-1] for line in lines}) == 6  # a token per region


# --- reminders, end to end: roster, notify and the bot on the sandbox, a clock the test sets ---------------
# The fixtures' roster: Somchai Wong (chat 9804, Asia/Bangkok) is deployed in Thailand (ROAP); Jean Ndiaye
# (9802) chairs. The test clock starts on Monday 2 March 2026, 09:00 UTC; ROAP's call is every second
# Tuesday at 13:00 Bangkok time: Tuesday 3 March, 06:00 UTC.
ROAP_CALL = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)


async def _calls_notify(tmp_path: Path, nats_url: str, clock: ManualClock) -> notify_bootstrap.NotifyApp:
    settings = notify_settings(tmp_path, nats_url).model_copy(update={"call_reminders": True,
                                                                      "call_tick_seconds": 3600})
    app = notify_bootstrap.build(settings, clock=clock)
    await app.start()
    return app


async def _roap(app: notify_bootstrap.NotifyApp, clock: ManualClock, **fields: object) -> None:
    async with app.db.write() as session:
        schedule = calls.updated(await calls.schedule_of(session, "ROAP"), **fields)
        await calls.save_schedule(session, schedule, now=clock.now())


async def _plan(app: notify_bootstrap.NotifyApp) -> None:
    assert app.parts.planner is not None
    await app.parts.planner.run_pass()


async def test_reminders_a_day_and_an_hour_before_once_each_and_the_answer_recorded(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, sandbox_url: str,
    people: dict[str, uuid.UUID],
) -> None:
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _roap(app, clock, link="https://meet.example/roap", chair_email="jean@ocha.example")
        await _plan(app)
        (day_before,) = await eventually(lambda: count_texts(9804, sandbox_url, 1), what="the 24 h reminder")
        assert day_before.startswith("Asia and the Pacific regional CMCoord call: Tuesday 03 March, 13:00 "
                                     "(Asia/Bangkok), 60 minutes.")
        (chair,) = await eventually(lambda: count_texts(9802, sandbox_url, 1), what="the chair's message")
        assert "You chair the Asia and the Pacific regional CMCoord call: Tuesday 03 March, 06:00 (Africa/Dakar)" in chair
        assert "Participants: 1 (1 on Telegram)" in chair

        officer = User(sandbox_url, 9804)
        message = (await officer.messages())[-1]
        buttons = message["reply_markup"]["inline_keyboard"][0]
        assert [b["text"] for b in buttons] == ["I'll join", "Can't join"]
        await officer.press(message["message_id"], buttons[0]["callback_data"])
        (rsvp,) = await eventually(lambda: _notes(app, kind="call.reminder", state="acknowledged"), what="the RSVP")
        assert rsvp.reply == "join" and rsvp.person_id == people["somchai@ocha.example"]

        await app.stop()  # a restart between the two reminders
        app = await _calls_notify(tmp_path, nats_server.url, clock)
        await _plan(app)
        clock.set(ROAP_CALL - timedelta(minutes=50))
        await _plan(app)
        got = await eventually(lambda: count_texts(9804, sandbox_url, 2), what="the 1 h reminder")
        assert got[1] == ("Asia and the Pacific regional CMCoord call starts in one hour: Tuesday 03 March, 13:00 "
                          "(Asia/Bangkok).\nLink: https://meet.example/roap")
        await _plan(app)
        clock.set(ROAP_CALL + timedelta(minutes=5))  # during the call: nothing new, nothing twice
        await _plan(app)
        assert len(await texts(9804, sandbox_url)) == 2 and len(await texts(9802, sandbox_url)) == 1
        (chair_note,) = await _notes(app, kind="call.chair") or []
        assert chair_note.state == "expired"  # closed when the call started
    finally:
        await app.stop()


async def test_two_processes_remind_once_and_a_cancellation_is_told(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, sandbox_url: str,
    people: dict[str, uuid.UUID],
) -> None:
    apps = [await _calls_notify(tmp_path, nats_server.url, clock) for _ in range(2)]
    try:
        await asyncio.gather(*(_plan(app) for app in apps), *(_plan(app) for app in apps))
        await eventually(lambda: count_texts(9804, sandbox_url, 1), what="the 24 h reminder")
        async with apps[0].db.write() as session:
            schedule = await calls.schedule_of(session, "ROAP")
            occurrence = calls.occurrence_on(schedule, [], ROAP_CALL.date())
            await calls.change(session, schedule, occurrence, moved_to=None, now=clock.now())
        await asyncio.gather(*(_plan(app) for app in apps))
        got = await eventually(lambda: count_texts(9804, sandbox_url, 2), what="told of the cancellation")
        assert got[1] == "Asia and the Pacific regional CMCoord call of Tuesday 03 March, 13:00 (Asia/Bangkok) is cancelled."
        clock.set(ROAP_CALL - timedelta(minutes=50))
        await asyncio.gather(*(_plan(app) for app in apps))
        assert len(await texts(9804, sandbox_url)) == 2  # no link for a cancelled call, no reminder twice
        (reminder,) = await _notes(apps[0], kind="call.reminder") or []
        assert reminder.state == "expired"
    finally:
        for app in apps:
            await app.stop()


async def _notes(app: notify_bootstrap.NotifyApp, **where: object) -> list[Notification] | None:
    found = await notifications(app, **where)
    return found or None


async def test_from_the_bot_an_agenda_item_reaches_the_chair_and_calls_shows_the_answers(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, bus: Bus,
    sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    clock.set(ROAP_CALL - timedelta(days=2))  # before the reminders: the subscriber is asked with the others
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _roap(app, clock, chair_email="jean@ocha.example", link="https://meet.example/roap")
        somchai, awa = User(sandbox_url, 9804), User(sandbox_url, 9801)
        added = await somchai.reply_to("/agenda Convoy notifications to the Myanmar border")
        assert added["text"] == "Added to the agenda of the next ROAP call."
        told = await awa.reply_to("/calls subscribe roap")  # Awa serves in Mali (ROWCA) and follows ROAP too
        assert told["text"] == "You will get the ROAP call's reminders."
        refused = await awa.reply_to("/agenda")
        assert refused["text"].startswith("Write the item after the command")

        async def agenda_in_notify() -> bool:
            async with app.db.read() as session:
                return bool(await calls.subscribers(session, "ROAP")) and bool(
                    await calls.agenda_items(session, next_occurrence(await calls.schedule_of(session, "ROAP"),
                                                                            [], now=clock.now())))
        await eventually(agenda_in_notify, what="the bot's events applied by notify")
        early = await _ask_calls(bus, people["awa@ocha.example"])  # notify has written nothing to Somchai yet:
        assert "Somchai Wong: Convoy notifications to the Myanmar border" in early["agenda"]  # the roster names him

        clock.set(ROAP_CALL - timedelta(hours=20))
        await _plan(app)
        (chair,) = await eventually(lambda: count_texts(9802, sandbox_url, 1), what="the chair's message")
        assert "Agenda:\n• Somchai Wong: Convoy notifications to the Myanmar border" in chair  # who added it
        assert "Participants: 2 (2 on Telegram)" in chair
        got = await eventually(lambda: count_texts(9801, sandbox_url, 3), what="the subscriber reminded")
        assert got[-1].startswith("Asia and the Pacific regional CMCoord call: Tuesday 03 March, 06:00 (Africa/Dakar)")
        assert "• Somchai Wong: Convoy notifications to the Myanmar border" in got[-1]

        reminder = (await somchai.messages())[-1]
        await somchai.press(reminder["message_id"], reminder["reply_markup"]["inline_keyboard"][0][1]["callback_data"])
        await eventually(lambda: _notes(app, kind="call.reminder", state="acknowledged"), what="the answer recorded")
        shown = await somchai.reply_to("/calls")
        assert shown["text"].startswith("<b>Asia and the Pacific</b>\nTuesday 03 March, 13:00 (Asia/Bangkok)")
        assert "Your answer: you cannot join" in shown["text"]
        assert "Chair: Jean Ndiaye" in shown["text"] and "jean@ocha.example" not in shown["text"]  # by name
        assert "Answers: 0 will join, 1 cannot, 1 not yet" in shown["text"]
        assert "• Somchai Wong: Convoy notifications to the Myanmar border" in shown["text"]
        listed = await somchai.reply_to("/agenda")  # the agenda so far, under how to add to it
        assert listed["text"].startswith("Write the item after the command")
        assert ("<b>Agenda of the next ROAP call</b>\n• Somchai Wong: Convoy notifications to the Myanmar border"
                in listed["text"])
        every = await somchai.reply_to("/calls all")
        assert every["text"].count("\n") == 6 and "ROWCA · West and Central Africa" in every["text"]
        jean = User(sandbox_url, 9802)  # the chair sees who answered what
        chair_view = await jean.reply_to("/calls ROAP")
        assert "  Awa Traoré: no answer yet\n  Somchai Wong: cannot join" in chair_view["text"]
        await jean.reply_to("/lang fr")  # the region and the time in the reader's language
        french = await jean.reply_to("/calls ROAP")
        assert french["text"].startswith("<b>Asie et Pacifique</b>\nmardi 3 mars à 06:00 (Africa/Dakar)")
        await jean.reply_to("/lang en")
        assert "cannot join" not in shown["text"].split("Answers:")[1]  # the agenda names its authors, not answers
        # notify decides, whoever asks: the same query straight over NATS gives names for the chair's id only
        # (not to an officer, nor to the CMCS desk, nor to an id the roster does not know)
        as_chair = await _ask_calls(bus, people["jean@ocha.example"])
        assert as_chair["you_chair"] is True
        assert as_chair["answers_by_name"] == [["Awa Traoré", None], ["Somchai Wong", "decline"]]
        for other in (people["somchai@ocha.example"], people["maria@ocha.example"], uuid.uuid4()):
            answer = await _ask_calls(bus, other)
            assert answer["you_chair"] is False and "answers_by_name" not in answer
            assert answer["answers"] == as_chair["answers"] and answer["chair_email"] == "jean@ocha.example"
            assert answer["chair_name"] == "Jean Ndiaye"

        clock.set(ROAP_CALL + timedelta(hours=2))  # after the call: the chair's summary
        refused = await _summary(somchai, "/summary ROAP: we agreed on nothing")
        assert refused["text"] == "Only the chair of the ROAP call sends its summary."
        sent = await _summary(jean, "/summary ROAP: Convoys to the border: notify 72 h ahead. Next: Mae Sot access.")
        assert sent["text"] == "Sent to those invited to the ROAP call of Tuesday 03 March, 06:00 (Africa/Dakar), and kept."
        got = await eventually(lambda: count_texts(9804, sandbox_url, 7), what="the summary")
        assert got[-1] == ("Summary of the Asia and the Pacific regional CMCoord call of Tuesday 03 March, 13:00 (Asia/Bangkok):\n"
                           "Convoys to the border: notify 72 h ahead. Next: Mae Sot access.")
        await eventually(lambda: count_texts(9801, sandbox_url, 4), what="the subscriber's summary too")
    finally:
        await app.stop()


async def _summary(user: User, command: str) -> dict[str, Any]:
    """The bot's answer to a /summary, asked again while it says the roster did not tell in time who
    chairs (a loaded machine: notify waits CHAIR_CHECK_SECONDS only, and says so; nothing is sent then)."""
    async def answered() -> dict[str, Any] | None:
        reply = await user.reply_to(command)
        return None if "cannot check who chairs" in reply["text"] else reply
    return await eventually(answered, what="an answer with the chair checked")


async def _ask_calls(bus: Bus, person_id: uuid.UUID, region: str = "ROAP") -> dict[str, Any]:
    return dict(await bus.request("cmcoord.notify.svc.calls", {"person_id": str(person_id), "region": region}))


async def test_with_the_roster_away_the_chair_gets_the_call_without_names(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster_settings: RosterSettings, bus: Bus,
    people: dict[str, uuid.UUID],
) -> None:
    """Who chairs is the roster's to say: when it does not answer, the call is still shown, without names."""
    roster: RosterApp | None = roster_bootstrap.build(roster_settings, clock=clock)
    assert roster is not None
    await roster.start()
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _roap(app, clock, chair_email="jean@ocha.example")
        jean = people["jean@ocha.example"]
        known = await _ask_calls(bus, jean)
        assert known["you_chair"] is True and known["chair_unknown"] is False
        await roster.stop()
        roster = None
        answer = await _ask_calls(bus, jean)
        assert answer["you_chair"] is False and "answers_by_name" not in answer
        assert answer["chair_unknown"] is True  # said, so that the bot asks the chair to try again
        assert answer["chair_email"] == "jean@ocha.example" and answer["region"] == "ROAP"
    finally:
        await app.stop()
        if roster is not None:
            await roster.stop()


async def test_participants_are_those_deployed_in_the_region_on_the_call_s_day(
    roster: RosterApp, roster_settings: RosterSettings, clock: ManualClock, bus: Bus,
) -> None:
    t = clock.now().date()
    officer = "OCHA,{country},{station},CMCoord Officer,cmcoord_officer,{start},{end},"
    rows = ["Arriving Officer,arriving@ocha.example,," + officer.format(
                country="ML", station="Bamako", start=t + timedelta(days=10), end=t + timedelta(days=100)),
            "Leaving Officer,leaving@ocha.example,," + officer.format(
                country="NE", station="Niamey", start=t - timedelta(days=100), end=t + timedelta(days=5)),
            "Elsewhere Officer,elsewhere@ocha.example,," + officer.format(
                country="TH", station="Bangkok", start=t - timedelta(days=100), end=t + timedelta(days=100))]
    _, errors, _ = await import_text(PEOPLE_HEADER + "\n".join(rows) + "\n", settings=roster_settings, clock=clock,
                                     publish=False)
    assert errors == []
    on = {day: [r["name"] for r in await bus.request("cmcoord.roster.svc.recipients",
                                                     {"region": "ROWCA", "on": str(t + timedelta(days=day))})]
          for day in (0, 20)}
    assert on == {0: ["Leaving Officer"], 20: ["Arriving Officer"]}


async def test_notify_down_until_the_call_started_sends_the_link_but_no_day_before_reminder(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, sandbox_url: str,
    people: dict[str, uuid.UUID],
) -> None:
    clock.set(ROAP_CALL + timedelta(minutes=10))
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _plan(app)
        (link,) = await eventually(lambda: count_texts(9804, sandbox_url, 1), what="the link, late")
        assert link.startswith("Asia and the Pacific regional CMCoord call has started: Tuesday 03 March, 13:00")
        await _plan(app)
        assert len(await texts(9804, sandbox_url)) == 1
        assert await notifications(app, kind="call.reminder") == []
    finally:
        await app.stop()


async def test_a_moved_call_is_told_and_reminded_again_at_its_new_time(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, sandbox_url: str,
    people: dict[str, uuid.UUID],
) -> None:
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _plan(app)
        await eventually(lambda: count_texts(9804, sandbox_url, 1), what="the 24 h reminder")
        moved_to = ROAP_CALL + timedelta(days=1, hours=1)  # Wednesday 14:00 in Bangkok
        async with app.db.write() as session:
            schedule = await calls.schedule_of(session, "ROAP")
            await calls.change(session, schedule, calls.occurrence_on(schedule, [], ROAP_CALL.date()),
                               moved_to=moved_to, now=clock.now())
        await _plan(app)
        got = await eventually(lambda: count_texts(9804, sandbox_url, 2), what="told of the move")
        assert got[1] == ("Asia and the Pacific regional CMCoord call of Tuesday 03 March, 13:00 (Asia/Bangkok) is "
                          "moved to Wednesday 04 March, 14:00 (Asia/Bangkok).")
        clock.set(moved_to - timedelta(hours=23))
        await _plan(app)
        got = await eventually(lambda: count_texts(9804, sandbox_url, 3), what="reminded of the new time")
        assert got[2].startswith("Asia and the Pacific regional CMCoord call: Wednesday 04 March, 14:00 (Asia/Bangkok)")
        async def states() -> list[str] | None:
            found = sorted(n.state for n in await notifications(app, kind="call.reminder"))
            return found if found == ["expired", "sent"] else None

        # the old time's reminder closed, the new one out (sent once the bot reported Telegram's acceptance)
        await eventually(states, what="the old reminder expired, the new one sent")
    finally:
        await app.stop()


async def test_an_agenda_flood_is_bounded_and_the_reminder_still_fits_and_goes(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, bus: Bus,
    sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    clock.set(ROAP_CALL - timedelta(days=2))
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _roap(app, clock, chair_email="jean@ocha.example")
        somchai = User(sandbox_url, 9804)
        for i in range(calls.AGENDA_PER_PERSON):
            added = await somchai.reply_to(f"/agenda Item {i} " + "x" * 480)
            assert added["text"] == "Added to the agenda of the next ROAP call."
        await eventually(lambda: _agenda_count(app, calls.AGENDA_PER_PERSON), what="the items applied by notify")
        refused = await somchai.reply_to("/agenda One more")
        assert refused["text"].startswith("You already have the most items one person can add to the next ROAP call")
        # a flood that outran the bot (events straight on the bus, from many officers): notify holds the bounds
        somchai_id = people["somchai@ocha.example"]
        for i in range(40):
            person = somchai_id if i < 10 else uuid.uuid4()
            await publish(bus, events.CallAgendaAdded(person_id=person, region="ROAP", text=f"Flood {i} " + "y" * 490,
                                                      added_at=clock.now()), source="bot")
        await eventually(lambda: _agenda_count(app, calls.AGENDA_PER_CALL), what="the call's agenda full")
        async with app.db.read() as session:
            items = (await session.exec(select(CallAgendaItem))).all()
        assert len(items) == calls.AGENDA_PER_CALL
        assert sum(item.person_id == somchai_id for item in items) == calls.AGENDA_PER_PERSON

        clock.set(ROAP_CALL - timedelta(hours=20))
        await _plan(app)
        reminder = (await eventually(lambda: count_texts(9804, sandbox_url, 5), what="the 24 h reminder"))[-1]
        (chair,) = await eventually(lambda: count_texts(9802, sandbox_url, 1), what="the chair's agenda")
        for text in (reminder, chair):
            assert len(text) <= 4096 and re.search(r"… \(\+\d+\)", text)
        assert app.parts.planner is not None and app.parts.planner.failures == 0
    finally:
        await app.stop()


async def _agenda_count(app: notify_bootstrap.NotifyApp, n: int) -> bool:
    async with app.db.read() as session:
        return len((await session.exec(select(CallAgendaItem))).all()) >= n


async def _change(app: notify_bootstrap.NotifyApp, clock: ManualClock, *, moved_to: datetime | None) -> None:
    """ROAP's call of 3 March moved (or cancelled, `moved_to` None), as `cmcoord calls move/cancel` does it."""
    async with app.db.write() as session:
        schedule = await calls.schedule_of(session, "ROAP")
        occurrence = calls.occurrence_on(schedule, await calls.changes_of(session, "ROAP"), ROAP_CALL.date())
        await calls.change(session, schedule, occurrence, moved_to=moved_to, now=clock.now())


async def test_a_move_after_a_move_and_a_cancellation_after_them_are_each_told_once(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, sandbox_url: str,
    people: dict[str, uuid.UUID],
) -> None:
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _roap(app, clock, chair_email="jean@ocha.example")
        await _plan(app)
        await eventually(lambda: count_texts(9804, sandbox_url, 1), what="the 24 h reminder")
        await eventually(lambda: count_texts(9802, sandbox_url, 1), what="the chair's message")
        first = ROAP_CALL + timedelta(days=1, hours=1)  # Wednesday 14:00 in Bangkok
        await _change(app, clock, moved_to=first)
        await _plan(app)
        got = await eventually(lambda: count_texts(9804, sandbox_url, 2), what="told of the move")
        assert got[1] == ("Asia and the Pacific regional CMCoord call of Tuesday 03 March, 13:00 (Asia/Bangkok) is "
                          "moved to Wednesday 04 March, 14:00 (Asia/Bangkok).")

        clock.advance(timedelta(minutes=5))
        second = first + timedelta(hours=2)  # moved again: told from the time they last heard
        await _change(app, clock, moved_to=second)
        await _plan(app)
        got = await eventually(lambda: count_texts(9804, sandbox_url, 3), what="told of the second move")
        assert got[2] == ("Asia and the Pacific regional CMCoord call of Wednesday 04 March, 14:00 (Asia/Bangkok) is "
                          "moved to Wednesday 04 March, 16:00 (Asia/Bangkok).")

        clock.advance(timedelta(minutes=5))
        await _change(app, clock, moved_to=None)  # then cancelled
        await _plan(app)
        got = await eventually(lambda: count_texts(9804, sandbox_url, 4), what="told of the cancellation")
        assert got[3] == ("Asia and the Pacific regional CMCoord call of Wednesday 04 March, 16:00 (Asia/Bangkok) is "
                          "cancelled.")
        chair = await eventually(lambda: count_texts(9802, sandbox_url, 4), what="the chair told each change too")
        assert chair[3] == ("Asia and the Pacific regional CMCoord call of Wednesday 04 March, 09:00 (Africa/Dakar) is "
                            "cancelled.")

        await _plan(app)  # once each: nothing more, not even at the times the call had
        clock.set(second - timedelta(hours=23))
        await _plan(app)
        assert len(await texts(9804, sandbox_url)) == 4 and len(await texts(9802, sandbox_url)) == 4
        told = await notifications(app, kind="call.changed")
        assert sorted(n.person_id for n in told) == sorted([people["somchai@ocha.example"]] * 3
                                                           + [people["jean@ocha.example"]] * 3)
        assert {n.state for n in await notifications(app, kind="call.reminder")} == {"expired"}
    finally:
        await app.stop()


async def test_a_summary_with_no_call_taken_place_or_nobody_invited_says_so_and_sends_nothing(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, bus: Bus,
    sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    try:
        await _roap(app, clock, chair_email="jean@ocha.example")
        jean = User(sandbox_url, 9802)
        # ROAP's call of 17 February took place, but nobody was reminded of it (notify was not running)
        answer = await _summary(jean, "/summary ROAP: Nothing agreed, no follow-up.")
        assert answer["text"] == ("Nobody was invited to the ROAP call of Tuesday 17 February, 06:00 (Africa/Dakar), so there is "
                                  "nobody to send the summary to: nothing was sent or kept.")
        await _roap(app, clock, first_day=ROAP_CALL.date())  # a series whose first call is tomorrow
        answer = await _summary(jean, "/summary ROAP: Nothing agreed, no follow-up.")
        assert answer["text"] == ("No ROAP call has taken place yet, so there is nobody to send a summary to: nothing "
                                  "was sent or kept. Send it after the call.")

        # the bot's events reach notify in order: once a later agenda item is applied, a summary would have been
        added = await jean.reply_to("/agenda ROAP: Access to the border crossings")
        assert added["text"] == "Added to the agenda of the next ROAP call."
        await eventually(lambda: _agenda_count(app, 1), what="the later agenda item applied by notify")
        summaries = await stream_events(bus.js, "BOT", type_prefix="bot.call.summary_sent")
        assert [e for e in summaries if e.data["text"] == "Nothing agreed, no follow-up."] == []
        async with app.db.read() as session:
            assert (await session.exec(select(CallSummary))).all() == []
        assert await notifications(app, kind="call.summary") == []
    finally:
        await app.stop()


async def test_the_escalation_item_leaves_the_agenda_once_the_message_is_acknowledged(
    tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp, bot: BotApp, bus: Bus,
    sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    app = await _calls_notify(tmp_path, nats_server.url, clock)
    item = "Messages escalated and still unanswered: 1"
    try:
        await publish(bus, request([people["somchai@ocha.example"]], region="ROAP"))
        await eventually(lambda: _notes(app, kind="test.notice", state="sent"), what="the message sent")
        clock.advance(timedelta(hours=24, minutes=1))
        app.parts.due.wake()
        await eventually(lambda: _attempts(app, 2), what="re-sent after 24 h")
        clock.advance(timedelta(hours=24))
        app.parts.due.wake()
        await eventually(lambda: _notes(app, kind="escalation"), what="escalated after 48 h")
        somchai = people["somchai@ocha.example"]
        assert item in (await _ask_calls(bus, somchai))["agenda"]

        officer = User(sandbox_url, 9804)
        message = [m for m in await officer.messages() if m["text"].startswith("Mopti route closed")][-1]
        await officer.press(message["message_id"], message["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
        await eventually(lambda: _notes(app, kind="test.notice", state="acknowledged"), what="acknowledged")
        agenda = (await _ask_calls(bus, somchai))["agenda"]
        assert not any(line.startswith("Messages escalated") for line in agenda), agenda
    finally:
        await app.stop()


async def _attempts(app: notify_bootstrap.NotifyApp, n: int) -> bool:
    return any(note.attempts >= n for note in await notifications(app, kind="test.notice"))
