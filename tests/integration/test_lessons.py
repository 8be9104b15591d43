"""Lessons end to end: real nats-server, SQLite, the roster, notify and the bot on the sandbox;
a clock the test sets. AARs from a deployment's end with reminders and escalations, stopped
by submission; field reports through the conversation (a restart mid-way) and in one message;
a report, an AAR or a handover note left with /cancel or another command offered back (resume
or start again), #tags alone refused;
/lessons as each role may read it, the rights coming from the roster (never from the asker's
claim), kept a minute, and the public's when the roster does not answer; the digest sent to
every member as a document."""

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram.filters.callback_data import CallbackData
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from services.bot import bootstrap as bot_bootstrap
from services.bot.bootstrap import BotApp
from services.bot.callbacks import DraftChoice, LessonStep
from services.bot.config import Settings as BotSettings
from services.bot.models import ConversationDraft
from services.lessons import bootstrap as lessons_bootstrap
from services.lessons.config import Settings as LessonsSettings
from services.lessons.models import Aar, Item
from services.notify import bootstrap as notify_bootstrap
from services.notify import calls
from services.notify.models import Notification
from services.notify.schedule import next_occurrence
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings as RosterSettings
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.documents import Documents
from shared.events import Envelope
from shared.natsserver import NatsServer, free_port
from tests.helpers import cli, eventually, reads_in, service_env, stream_events
from tests.integration.conftest import PEOPLE_HEADER, started_bot
from tests.integration.telegram_users import User
from tests.integration.test_notify import count_texts, notify_settings, texts

AWA, JEAN, MARIA, SOMCHAI = 9801, 9802, 9803, 9804  # officer ML, adviser ROWCA, CMCS desk, officer TH


@pytest.fixture
async def notify(tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp,
                 people: dict[str, uuid.UUID]) -> AsyncIterator[notify_bootstrap.NotifyApp]:
    app = notify_bootstrap.build(notify_settings(tmp_path, nats_server.url), clock=clock)
    await app.start()
    yield app
    await app.stop()


async def started_lessons(tmp_path: Path, nats_url: str, clock: ManualClock) -> lessons_bootstrap.LessonsApp:
    """Lessons built and started on the test's clock, its consumers bound."""
    settings = LessonsSettings(home=tmp_path / "lessons-home", nats_url=nats_url, health_port=free_port(),
                               tick_seconds=0.2, max_deliver=3)
    app = lessons_bootstrap.build(settings, clock=clock)
    await app.start()
    for consumer in app.consumers:
        await consumer.wait_bound()
    return app


@pytest.fixture
async def lessons(tmp_path: Path, nats_server: NatsServer, clock: ManualClock,
                  notify: notify_bootstrap.NotifyApp) -> AsyncIterator[lessons_bootstrap.LessonsApp]:
    app = await started_lessons(tmp_path, nats_server.url, clock)
    yield app
    await app.stop()


async def publish(bus: Bus, event: events.Event) -> None:
    await bus.publish(Envelope.wrap(event, source="roster", occurred_at=datetime.now(UTC)))


def ended(person_id: uuid.UUID, *, country: str, region: str, on: date) -> events.DeploymentEnded:
    return events.DeploymentEnded(deployment_id=uuid.uuid4(), person_id=person_id, post_id=uuid.uuid4(),
                                  country=country, region=region, role="cmcoord_officer", start=on - timedelta(days=180),
                                  planned_end=on, ended_on=on)


async def aar_of(app: lessons_bootstrap.LessonsApp, person_id: uuid.UUID) -> Aar | None:
    async with app.db.read() as session:
        return (await session.exec(select(Aar).where(Aar.person_id == person_id))).first()


async def at_step(clock: ManualClock, app: lessons_bootstrap.LessonsApp, day: date, hour: int = 8) -> None:
    clock.set(datetime(day.year, day.month, day.day, hour, 1, tzinfo=UTC))
    app.parts.duties.wake()  # type: ignore[union-attr]


async def aar_texts(user: int, sandbox_url: str) -> list[str]:
    """The AAR reminders and overdue notices in a chat (not the bot's own /aar conversation)."""
    return [t for t in await texts(user, sandbox_url)
            if "after action review" in (t or "") and ("is due" in t or "overdue" in t)]


async def test_an_aar_falls_due_after_a_deployment_ends_and_escalates_until_written(
    lessons: lessons_bootstrap.LessonsApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus,
    sandbox_url: str, clock: ManualClock, people: dict[str, uuid.UUID],
) -> None:
    today = clock.now().date()
    await publish(bus, ended(people["awa@ocha.example"], country="ML", region="ROWCA", on=today))
    aar = await eventually(lambda: aar_of(lessons, people["awa@ocha.example"]), what="the AAR owed")
    assert (aar.due_on, aar.country, aar.region, aar.state) == (today + timedelta(days=30), "ML", "ROWCA", "open")
    due = await eventually(lambda: stream_events(bus.js, "LESSONS", type_prefix="lessons.aar.due"))
    assert due[0].data["due_on"] == str(aar.due_on)

    await at_step(clock, lessons, aar.due_on - timedelta(days=7), hour=7)  # an hour early: nothing yet
    await at_step(clock, lessons, aar.due_on - timedelta(days=7))
    first = await eventually(lambda: count_texts(AWA, sandbox_url, 1), what="the reminder a week before")
    assert f"is due on {aar.due_on.day} {aar.due_on:%B %Y}" in first[0] and "/aar" in first[0]
    await at_step(clock, lessons, aar.due_on)
    second = await eventually(lambda: count_texts(AWA, sandbox_url, 2), what="the reminder on the due date")
    assert "is due today" in second[1]
    assert await aar_texts(JEAN, sandbox_url) == [] and await aar_texts(MARIA, sandbox_url) == []

    await at_step(clock, lessons, aar.due_on + timedelta(days=7))
    adviser = await eventually(lambda: aar_texts(JEAN, sandbox_url), what="the regional adviser told")
    assert "Awa Traoré" in adviser[0] and "7 days overdue" in adviser[0]
    async with notify.db.read() as session:  # and the region's next call has it on its agenda
        o = next_occurrence(await calls.schedule_of(session, "ROWCA"),
                                  await calls.changes_of(session, "ROWCA"), now=clock.now())
        assert o is not None
        assert "After action reviews overdue: 1" in [calls.shown(e, {}) for e in await calls.agenda_entries(session, o)]
    assert await aar_texts(MARIA, sandbox_url) == []
    await at_step(clock, lessons, aar.due_on + timedelta(days=14))
    desk = await eventually(lambda: aar_texts(MARIA, sandbox_url), what="the CMCS desk told")
    assert "14 days overdue" in desk[0]
    overdue = await eventually(lambda: stream_events(bus.js, "LESSONS", type_prefix="lessons.aar.overdue"))
    assert [e.data["escalated_to"] for e in overdue] == ["regional_adviser", "cmcs_desk"]
    assert len(await aar_texts(AWA, sandbox_url)) == 2  # each step once

    # what each service's /metrics says of it
    figures = await scrape(lessons.health.port)  # type: ignore[union-attr]
    assert figures[("cmcoord_aars_overdue", (("region", "ROWCA"),))] == 1
    assert figures[("cmcoord_events_handled_total", (("consumer", "lessons--on_roster"),))] >= 1
    assert figures[("cmcoord_consumer_pending", (("consumer", "lessons--on_roster"),))] == 0
    figures = await scrape(notify.health.port)  # type: ignore[union-attr]
    by_state = {labels[0][1]: v for (name, labels), v in figures.items() if name == "cmcoord_notifications"}
    assert set(by_state) == {"queued", "sent", "acknowledged", "escalated", "expired", "failed", "folded", "unlinked"}
    assert sum(by_state.values()) >= 4  # the AAR's four, besides the handover campaign's

    async def delivered() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        found = await scrape(bot.health.port)  # type: ignore[union-attr]
        return found if found[("cmcoord_delivery_seconds_count", ())] >= 4 else None  # recorded after the send

    figures = await eventually(delivered, what="the bot's deliveries counted")
    assert figures[("cmcoord_events_handled_total", (("consumer", "bot--on_deliver"),))] >= 4


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A service's /metrics as {(sample name, labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def press(user: User, message: dict[str, Any], data: CallbackData) -> None:
    await user.press(message["message_id"], data.pack())


async def last_with_button(user: User, data: CallbackData) -> dict[str, Any] | None:
    for m in reversed(await user.messages()):
        buttons = [b["callback_data"] for row in (m["reply_markup"] or {}).get("inline_keyboard", []) for b in row]
        if data.pack() in buttons:
            return m
    return None


ANSWERS = ("Notify every convoy 72 hours ahead.", "Two convoys were turned back at Mopti.",
           "The checkpoint had no copy of the notifications.", "-", "Share notifications with checkpoint commanders too.")


async def finish_aar(user: User, answers: tuple[str, ...]) -> str:
    """The remaining answers, a theme, community: the confirmation's text."""
    for answer in answers:
        await user.reply_to(answer)
    themes = await eventually(lambda: last_with_button(user, LessonStep(a="theme", v="hns4d")))
    await press(user, themes, LessonStep(a="theme", v="hns4d"))
    await press(user, themes, LessonStep(a="done"))
    classes = await eventually(lambda: last_with_button(user, LessonStep(a="class", v="community")))
    before = len(await user.messages())
    await press(user, classes, LessonStep(a="class", v="community"))
    return (await eventually(lambda: user._after(before), what="the confirmation"))["text"]


async def test_a_submitted_aar_ends_its_reminders(
    lessons: lessons_bootstrap.LessonsApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus,
    sandbox_url: str, clock: ManualClock, people: dict[str, uuid.UUID], tmp_path: Path, nats_server: NatsServer,
) -> None:
    somchai = people["somchai@ocha.example"]
    await publish(bus, ended(somchai, country="TH", region="ROAP", on=clock.now().date()))
    aar = await eventually(lambda: aar_of(lessons, somchai), what="the AAR owed")
    await at_step(clock, lessons, aar.due_on - timedelta(days=7))
    await eventually(lambda: count_texts(SOMCHAI, sandbox_url, 1), what="the first reminder")

    user = User(sandbox_url, SOMCHAI)
    reminder = (await user.messages())[0]
    before = len(await user.messages())
    await user.press(reminder["message_id"], reminder["reply_markup"]["inline_keyboard"][0][0]["callback_data"])
    opened = await eventually(lambda: user._after(before), what="'Write it now' opens the review")
    assert "1/5 What was planned?" in opened["text"]
    for answer in ANSWERS[:2]:
        await user.reply_to(answer)
    await bot.stop()  # the bot goes away half-way: the answers given are kept as a draft
    restarted = await started_bot(tmp_path / "bot", nats_server.url, sandbox_url, clock=clock)
    try:
        await at_step(clock, lessons, aar.due_on)  # the due date's reminder comes meanwhile
        await eventually(lambda: _count(aar_texts(SOMCHAI, sandbox_url), 2), what="the reminder on the due date")
        assert "We were at question 3" in (await user.reply_to("/aar"))["text"]
        assert "Paused" in (await user.reply_to("/cancel"))["text"]  # paused: /aar offers the draft back
        offer = await user.reply_to("/aar")
        assert "after action review you did not finish" in offer["text"] and "2 of 5 questions" in offer["text"]
        before = len(await user.messages())
        await press(user, offer, DraftChoice(k="aar", a="resume"))
        assert "3/5 Why was there a difference?" in await said_after(user, before, "We were at question 3")
        confirmation = await finish_aar(user, ANSWERS[2:])  # the same AAR: its reminders end
        await _recorded_and_reminders_ended(lessons, notify, bus, somchai, aar, confirmation, clock, sandbox_url)
    finally:
        await restarted.stop()


async def _recorded_and_reminders_ended(lessons: lessons_bootstrap.LessonsApp, notify: notify_bootstrap.NotifyApp,
                                        bus: Bus, somchai: uuid.UUID, aar: Aar, confirmation: str,
                                        clock: ManualClock, sandbox_url: str) -> None:
    assert "submitted" in confirmation
    done = await eventually(lambda: _submitted(lessons, somchai), what="the AAR recorded")
    assert done.item_id is not None
    async with lessons.db.read() as session:
        item = (await session.exec(select(Item).where(Item.id == done.item_id))).one()
    assert item.reference in confirmation and item.kind == "aar" and item.themes == "hns4d"
    assert "What was planned:\nNotify every convoy" in item.body and "What happened:\nTwo convoys" in item.body
    assert "Why the difference:\nThe checkpoint had no copy" in item.body and "What to sustain" not in item.body

    async def closed() -> dict[str, str] | None:
        async with notify.db.read() as session:
            rows = (await session.exec(select(Notification).where(Notification.subject == str(aar.id)))).all()
        states = {n.occurrence: n.state for n in rows}
        return states if states.get("due") == "expired" else None

    # the first reminder was answered by its button; the one still open is closed by the submission
    assert await eventually(closed, what="notify closed the open reminder") == {"due-7d": "acknowledged",
                                                                                 "due": "expired"}
    for day in (aar.due_on + timedelta(days=7), aar.due_on + timedelta(days=14)):
        clock.set(datetime(day.year, day.month, day.day, 8, 1, tzinfo=UTC))
        await lessons.parts.duties.run_pass()  # type: ignore[union-attr]  # a pass, as the service's loop runs it
    async with lessons.db.read() as session:
        assert (await session.get(Aar, aar.id)).next_at is None  # type: ignore[union-attr]
    requests = await stream_events(bus.js, "NOTIFY", type_prefix="notify.notification.requested")
    assert [e.data["occurrence"] for e in requests if e.data["about"] == str(aar.id)] == ["due-7d", "due"]
    assert len(await aar_texts(SOMCHAI, sandbox_url)) == 2
    assert await aar_texts(MARIA, sandbox_url) == []


async def _submitted(app: lessons_bootstrap.LessonsApp, person_id: uuid.UUID) -> Aar | None:
    found = await aar_of(app, person_id)
    return found if found is not None and found.state == "submitted" else None


async def _count(found: Any, n: int) -> bool:
    return len(await found) >= n


async def item_by_ref(app: lessons_bootstrap.LessonsApp, ref: str) -> Item | None:
    async with app.db.read() as session:
        return (await session.exec(select(Item).where(Item.reference == ref))).first()


async def test_a_report_through_the_conversation_survives_a_restart_and_one_message_does_it_all(
    lessons: lessons_bootstrap.LessonsApp, bot: BotApp, tmp_path: Path, nats_server: NatsServer, sandbox_url: str,
    clock: ManualClock, people: dict[str, uuid.UUID],
) -> None:
    awa = User(sandbox_url, AWA)
    assert "What happened?" in (await awa.reply_to("/report"))["text"]
    text = "The MCDA helicopters were used. I think the checkpoint commander at the Mopti bridge was incompetent."
    tips = (await awa.reply_to(text))["text"]
    assert "Tips" in tips and "MCDA" in tips and "I think" in tips  # advice, and the report goes on
    where = await eventually(lambda: last_with_button(awa, LessonStep(a="country", v="ML")))
    await press(awa, where, LessonStep(a="country", v="ML"))
    await eventually(lambda: last_with_button(awa, LessonStep(a="done")), what="the themes question")

    await bot.stop()  # the bot goes away half-way; the conversation is in its store
    restarted = await started_bot(tmp_path / "bot", nats_server.url, sandbox_url, clock=clock)
    try:
        resumed = (await awa.reply_to("/report"))["text"]
        assert "step 3 of 6" in resumed
        themes = await eventually(lambda: last_with_button(awa, LessonStep(a="theme", v="access")))
        await press(awa, themes, LessonStep(a="theme", v="access"))
        await press(awa, themes, LessonStep(a="done"))
        classes = await eventually(lambda: last_with_button(awa, LessonStep(a="class", v="restricted")))
        await press(awa, classes, LessonStep(a="class", v="restricted"))
        await eventually(lambda: last_with_button(awa, LessonStep(a="skip")), what="the attachment question")
        summary = await awa.reply_to("", document="mopti-checkpoint.pdf")
        assert "Attached: mopti-checkpoint.pdf" in summary["text"] and "Mali" in summary["text"]
        before = len(await awa.messages())
        await press(awa, summary, LessonStep(a="send"))
        sent = (await eventually(lambda: awa._after(before), what="the reference"))["text"]
        ref = sent.split("reference ")[1].split(".")[0]
        item = await eventually(lambda: item_by_ref(lessons, ref), what="the report in lessons")
        assert (item.author_id, item.country, item.region, item.themes, item.classification, item.kind) == (
            people["awa@ocha.example"], "ML", "ROWCA", "access", "restricted", "observation")
        assert item.body == text and item.attachment_name == "mopti-checkpoint.pdf"

        quick = (await awa.reply_to("/report #hns4d Notifications for the Gao road went unacknowledged for nine "
                                    "days; convoys waited at the river crossing meanwhile."))["text"]
        quick_ref = quick.split("reference ")[1].split(" ")[0]
        item = await eventually(lambda: item_by_ref(lessons, quick_ref), what="the one-message report")
        assert (item.country, item.themes, item.classification) == ("ML", "hns4d", "community")
        assert item.body.startswith("Notifications for the Gao road")
    finally:
        await restarted.stop()


async def test_a_report_is_written_in_the_reader_s_language_themes_and_country_included(
    lessons: lessons_bootstrap.LessonsApp, bot: BotApp, sandbox_url: str, people: dict[str, uuid.UUID],
) -> None:
    awa = User(sandbox_url, AWA)
    await awa.reply_to("/lang ar")
    await awa.reply_to("/report")
    await awa.reply_to("Convoys to Mopti waited three days at the bridge checkpoint.")
    where = await eventually(lambda: last_with_button(awa, LessonStep(a="country", v="ML")), what="the country")
    assert "مالي" in [b["text"] for row in where["reply_markup"]["inline_keyboard"] for b in row]
    await press(awa, where, LessonStep(a="country", v="ML"))
    themes = await eventually(lambda: last_with_button(awa, LessonStep(a="done")), what="the themes question")
    labels = [b["text"] for row in themes["reply_markup"]["inline_keyboard"] for b in row]
    assert "الوصول" in labels and "حماية المدنيين" in labels and "Access" not in labels
    await press(awa, themes, LessonStep(a="theme", v="access"))
    await press(awa, themes, LessonStep(a="done"))
    classes = await eventually(lambda: last_with_button(awa, LessonStep(a="class", v="community")))
    await press(awa, classes, LessonStep(a="class", v="community"))
    skip = await eventually(lambda: last_with_button(awa, LessonStep(a="skip")), what="the attachment question")
    await press(awa, skip, LessonStep(a="skip"))
    summary = await eventually(lambda: last_with_button(awa, LessonStep(a="send")), what="the summary")
    assert "مالي" in summary["text"] and "الوصول" in summary["text"] and "Mali" not in summary["text"]


async def said_after(user: User, before: int, needle: str) -> str:
    """The text of the first message after the first `before` that holds `needle`."""
    async def found() -> str | None:
        return next((m["text"] for m in (await user.messages())[before:] if needle in (m["text"] or "")), None)
    return await eventually(found, what=repr(needle))


async def test_a_cancelled_or_interrupted_conversation_is_offered_back_and_tags_alone_are_refused(
    lessons: lessons_bootstrap.LessonsApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    awa = User(sandbox_url, AWA)
    before = len(await awa.messages())
    refused = (await awa.reply_to("/report #foo"))["text"]  # no content: refused, and the conversation goes on
    assert "not only themes" in refused and "Not a theme I know: #foo" in refused
    assert "What happened?" in await said_after(awa, before, "What happened?")
    assert "not only themes" in (await awa.reply_to("#acces"))["text"]  # still none; the French tag is a theme
    text = "Convoys to Mopti waited three days at the bridge checkpoint: it had no copy of the notification."
    await awa.reply_to(text)
    await press(awa, await eventually(lambda: last_with_button(awa, LessonStep(a="country", v="ML"))),
                LessonStep(a="country", v="ML"))
    themes = await eventually(lambda: last_with_button(awa, LessonStep(a="done")), what="the themes question")
    assert "✓ Access" in [b["text"] for row in themes["reply_markup"]["inline_keyboard"] for b in row]
    assert "Stopped" in (await awa.reply_to("/cancel"))["text"]
    assert "did not understand" in (await awa.reply_to("-"))["text"]  # the conversation is over

    offer = await awa.reply_to("/report")  # the draft is offered back, at the first step not answered
    assert "You have a report you did not finish" in offer["text"] and "step 3 of 6" in offer["text"]
    before = len(await awa.messages())
    await press(awa, offer, DraftChoice(k="report", a="resume"))
    assert "step 3 of 6" in await said_after(awa, before, "We were at step")
    themes = await eventually(lambda: last_with_button(awa, LessonStep(a="done")), what="the themes again")
    assert "✓ Access" in [b["text"] for row in themes["reply_markup"]["inline_keyboard"] for b in row]
    await press(awa, themes, LessonStep(a="done"))
    await press(awa, await eventually(lambda: last_with_button(awa, LessonStep(a="class", v="restricted"))),
                LessonStep(a="class", v="restricted"))
    await press(awa, await eventually(lambda: last_with_button(awa, LessonStep(a="skip"))), LessonStep(a="skip"))
    summary = await eventually(lambda: last_with_button(awa, LessonStep(a="send")), what="the summary")
    assert "Convoys to Mopti waited three days" in summary["text"] and "Mali" in summary["text"]
    before = len(await awa.messages())
    await press(awa, summary, LessonStep(a="send"))
    ref = (await said_after(awa, before, "Report sent")).split("reference ")[1].split(".")[0]
    item = await eventually(lambda: item_by_ref(lessons, ref), what="the resumed report in lessons")
    assert (item.body, item.country, item.themes, item.classification) == (text, "ML", "access", "restricted")
    assert "What happened?" in (await awa.reply_to("/report"))["text"]  # sent: no draft left to offer

    # "Start again" deletes the draft; the next /report asks from the first question
    before = len(await awa.messages())
    await awa.send("A draft nobody will send: the Gao road is open again.")
    await said_after(awa, before, "Where?")
    before = len(await awa.messages())
    await awa.send("/cancel")
    await said_after(awa, before, "Stopped")
    offer = await awa.reply_to("/report")
    assert "You have a report you did not finish" in offer["text"] and "step 2 of 6" in offer["text"]
    before = len(await awa.messages())
    await press(awa, offer, DraftChoice(k="report", a="new"))
    await said_after(awa, before, "What happened?")
    assert not [m for m in (await awa.messages())[before:] if "We were at step" in m["text"]]
    await awa.reply_to("/cancel")
    assert "What happened?" in (await awa.reply_to("/report"))["text"]  # nothing left to offer
    async with bot.db.read() as session:
        assert (await session.exec(select(ConversationDraft))).all() == []  # sent or started again: none kept

    quick = (await awa.reply_to("/report #accès The ferry at Mopti has taken relief boats again since Tuesday."))
    item = await eventually(lambda: item_by_ref(lessons, quick["text"].split("reference ")[1].split(" ")[0]))
    assert item.themes == "access" and item.body.startswith("The ferry at Mopti")
    submitted = await stream_events(bus.js, "BOT", type_prefix="bot.report.submitted")
    assert sorted(e.data["text"] for e in submitted) == sorted([text, item.body])  # "#foo" published nothing

    # another command ending a conversation loses nothing either: a handover note interrupted by /report
    before = len(await awa.messages())
    await awa.send("/handover")
    await said_after(awa, before, "1/5 Key counterparts")
    before = len(await awa.messages())
    await awa.send("The liaison officer at the force HQ, through the G-CMCoord cell.")
    await said_after(awa, before, "2/5")
    before = len(await awa.messages())
    await awa.send("/report")
    await said_after(awa, before, "What happened?")  # a new report (the last one was sent)
    offer = await awa.reply_to("/handover")
    assert "You have a handover note you did not finish" in offer["text"] and "1 of 5 questions" in offer["text"]
    before = len(await awa.messages())
    await press(awa, offer, DraftChoice(k="handover", a="resume"))
    assert "2/5 Open access" in await said_after(awa, before, "We were at question 2")


async def ferry_reports(lessons: lessons_bootstrap.LessonsApp, bus: Bus, clock: ManualClock,
                        people: dict[str, uuid.UUID]) -> None:
    """Awa's three reports on the Mopti ferry (Mali, ROWCA): R-REST0001, R-COMM0001, R-PUBL0001."""
    for classification in ("restricted", "community", "public"):
        rid = uuid.uuid4()
        await bus.publish(Envelope.wrap(events.ReportSubmitted(
            report_id=rid, reference=f"R-{classification[:4].upper()}0001", person_id=people["awa@ocha.example"],
            text=f"Ferry crossing at Mopti closed to relief boats ({classification} note).", country="ML",
            themes=["access"], classification=classification, submitted_at=clock.now()),  # type: ignore[arg-type]
            source="bot", occurred_at=clock.now()))
    for ref in ("R-REST0001", "R-COMM0001", "R-PUBL0001"):
        await eventually(lambda r=ref: item_by_ref(lessons, r), what=f"{ref} recorded")


async def search_directly(bus: Bus, **asked: Any) -> dict[str, Any]:
    """lessons' search over NATS, as any NATS user may send it."""
    return dict(await bus.request("cmcoord.lessons.svc.search", {"query": "ferry", "theme": "access", **asked},
                                  timeout=5))


def refs(found: dict[str, Any]) -> set[str]:
    return {i["reference"] for i in found["items"]}


async def test_lessons_search_in_the_bot_shows_each_role_what_it_may_read(
    lessons: lessons_bootstrap.LessonsApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID],
) -> None:
    await ferry_reports(lessons, bus, clock, people)
    for email in ("awa@ocha.example", "jean@ocha.example", "maria@ocha.example", "somchai@ocha.example"):
        # lessons has the roster's answer on each (a loaded machine may miss a first one: it is asked again)
        await eventually(lambda: _known_rights(bus, str(people[email])), what=f"lessons knows what {email} may read")
    seen = {}
    for name, user_id in (("author", AWA), ("adviser", JEAN), ("desk", MARIA), ("other region", SOMCHAI),
                          ("unregistered", 9999)):
        seen[name] = (await User(sandbox_url, user_id).reply_to("/lessons ferry #access"))["text"]
    assert all("R-REST0001" in seen[n] and "3 found" in seen[n] for n in ("author", "adviser", "desk"))
    assert "R-REST0001" not in seen["other region"] and "2 found" in seen["other region"]
    assert "R-PUBL0001" in seen["other region"] and "R-COMM0001" in seen["other region"]
    assert "R-" not in seen["unregistered"] and "Ferry" not in seen["unregistered"]
    assert all("only public lessons" not in t for t in seen.values())  # the roster answered for each


async def test_a_search_claiming_rights_gets_only_what_the_roster_grants(
    lessons: lessons_bootstrap.LessonsApp, bus: Bus, clock: ManualClock, people: dict[str, uuid.UUID],
) -> None:
    await ferry_reports(lessons, bus, clock, people)
    somchai, nadia = str(people["somchai@ocha.example"]), str(people["noone@ocha.example"])
    claim = {"member": True, "desk": True, "adviser_regions": ["ROWCA"]}  # what bots before this contract sent
    # a member (officer in Thailand) claiming to be the desk and Mali's adviser: a member's reading
    as_member = await search_directly(bus, person_id=somchai, viewer={"person_id": somchai, **claim})
    assert refs(as_member) == {"R-COMM0001", "R-PUBL0001"} and as_member["rights_unknown"] is False
    # the same claim naming the author, the desk or nobody, or made by someone the roster does not know
    assert refs(await search_directly(bus, viewer={"person_id": str(people["awa@ocha.example"]), **claim})) == {
        "R-PUBL0001"}
    assert refs(await search_directly(bus, viewer=claim)) == {"R-PUBL0001"}
    assert refs(await search_directly(bus, person_id=str(uuid.uuid4()), viewer=claim)) == {"R-PUBL0001"}
    # on the roster but never registered with the bot: not a verified member
    assert refs(await search_directly(bus, person_id=nadia, viewer={"person_id": nadia, **claim})) == {"R-PUBL0001"}
    # the desk and the author, named without any claim, read it: the roster says who they are
    for who in ("maria@ocha.example", "awa@ocha.example"):
        assert "R-REST0001" in refs(await search_directly(bus, person_id=str(people[who])))


async def test_someone_who_leaves_the_desk_loses_restricted_reports_once_lessons_asks_the_roster_again(
    lessons: lessons_bootstrap.LessonsApp, bot: BotApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID], roster_settings: RosterSettings,
) -> None:
    await ferry_reports(lessons, bus, clock, people)
    maria = User(sandbox_url, MARIA)
    assert "R-REST0001" in (await maria.reply_to("/lessons ferry #access"))["text"]

    t = clock.now().date()  # her desk deployment ended yesterday
    row = (f"Maria Keller,maria@ocha.example,+41 1,OCHA,CH,Geneva,CMCS Desk Officer,cmcs_desk,"
           f"{t - timedelta(days=100)},{t + timedelta(days=150)},,{t - timedelta(days=1)}")
    _, errors, _ = await import_text(PEOPLE_HEADER.replace("\n", ",actual_end\n") + row + "\n",
                                     settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    rights = await bus.request("cmcoord.roster.svc.rights", {"person_id": str(people["maria@ocha.example"])})
    assert (rights["member"], rights["desk"], rights["adviser_regions"]) == (True, False, [])

    # lessons keeps the roster's answer for RIGHTS_CACHE_SECONDS (a search costs no roster round trip) ...
    assert "R-REST0001" in (await maria.reply_to("/lessons ferry #access"))["text"]
    # ... and asks again once it is older: a member now, she reads what members read
    clock.advance(timedelta(seconds=lessons.settings.rights_cache_seconds + 1))
    text = (await maria.reply_to("/lessons ferry #access"))["text"]
    assert "R-REST0001" not in text and "R-COMM0001" in text and "2 found" in text


async def _known_rights(bus: Bus, person_id: str) -> dict[str, Any] | None:
    found = await search_directly(bus, person_id=person_id)
    return None if found["rights_unknown"] else found


async def test_when_the_roster_does_not_answer_a_search_shows_the_public_lessons_and_says_so(
    lessons: lessons_bootstrap.LessonsApp, roster: RosterApp, bus: Bus, sandbox_url: str, clock: ManualClock,
    people: dict[str, uuid.UUID], tmp_path: Path, nats_server: NatsServer,
) -> None:
    await ferry_reports(lessons, bus, clock, people)
    # a bot that remembers who its users are for a while, as during a conversation
    app = bot_bootstrap.build(BotSettings(home=tmp_path / "bot", nats_url=nats_server.url, sandbox_url=sandbox_url,
                                          health_port=free_port(), poll_timeout_seconds=1, person_cache_seconds=600),
                              clock=clock)
    await app.start()
    try:
        maria, maria_id = User(sandbox_url, MARIA), str(people["maria@ocha.example"])
        # lessons has the roster's answer on her rights (a loaded machine may miss the first: it is asked again)
        await eventually(lambda: _known_rights(bus, maria_id), what="lessons knows what she may read")
        assert "3 found" in (await maria.reply_to("/lessons ferry #access"))["text"]
        await roster.query_service.stop()  # type: ignore[union-attr]  # the roster answers nothing now ...
        hung = await bus.nc.subscribe("cmcoord.roster.svc.rights")  # ... and a hung replica takes the questions
        clock.advance(timedelta(seconds=lessons.settings.rights_cache_seconds + 1))  # lessons' answer is old

        text = (await maria.reply_to("/lessons ferry #access"))["text"]
        assert "R-PUBL0001" in text and "R-COMM0001" not in text and "R-REST0001" not in text
        assert "only public lessons are shown" in text
        # answered within the bot's patience: the roster is waited for RIGHTS_TIMEOUT_SECONDS only
        found = await search_directly(bus, person_id=maria_id)
        assert found["rights_unknown"] is True and refs(found) == {"R-PUBL0001"}
        assert (await search_directly(bus))["rights_unknown"] is False  # the public's search needs no roster

        await hung.unsubscribe()  # the roster answers again
        roster.query_service = await roster.parts.queries.serve(roster.bus.nc, version="0.1.0")  # type: ignore[union-attr]
        await bus.nc.flush()  # the server has both: the hung replica gone, the roster's service subscribed
        await roster.bus.nc.flush()  # type: ignore[union-attr]
        # a missed answer is not kept: a later search asks the roster again (one more may still time out on a
        # loaded machine: lessons waits RIGHTS_TIMEOUT_SECONDS only)
        found = await eventually(lambda: _known_rights(bus, maria_id), what="the roster's answer asked for again")
        assert "R-REST0001" in refs(found)
    finally:
        await app.stop()


async def test_the_digest_goes_to_every_member_as_a_document_in_their_language(
    lessons: lessons_bootstrap.LessonsApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus,
    sandbox_url: str, clock: ManualClock, people: dict[str, uuid.UUID], tmp_path: Path,
) -> None:
    await bus.publish(Envelope.wrap(events.ReportSubmitted(
        report_id=uuid.uuid4(), reference="R-DIGEST01", person_id=people["awa@ocha.example"],
        text="Liaison officers rotated without a handover of the deconfliction contacts.", country="ML",
        themes=["info_sharing"], classification="community", submitted_at=clock.now()),
        source="bot", occurred_at=clock.now()))
    await eventually(lambda: item_by_ref(lessons, "R-DIGEST01"), what="the report recorded")
    readers = {JEAN: ("jean@ocha.example", "fr"), AWA: ("awa@ocha.example", "ar")}
    for user_id, (email, locale) in readers.items():
        await User(sandbox_url, user_id).reply_to(f"/lang {locale}")
        await eventually(lambda e=email, lc=locale: reads_in(bus, people[e], lc), what=f"{email} reads {locale}")
    env = service_env(lessons.settings.home, lessons.settings.nats_url)
    code, out, err = await cli("lessons", "digest", "--quarter", "2026Q1", "--out", str(tmp_path / "digest"),
                               "--send", env=env)
    assert code == 0, err
    markdown = (tmp_path / "digest" / "cmcoord-digest-2026Q1.md").read_text()
    assert "R-DIGEST01" in markdown and "Information sharing (1)" in markdown
    got = {}
    for user_id in (AWA, JEAN, MARIA, SOMCHAI):  # every member with Telegram
        got[user_id] = (await eventually(lambda u=user_id: _documents(u, sandbox_url),
                                         what=f"the digest for {user_id}"))[0]
        assert got[user_id]["document"].startswith("cmcoord-digest-2026Q1-") and got[user_id]["document"].endswith(".html")
    # each in their language: the file and its caption
    assert got[MARIA]["document"] == got[SOMCHAI]["document"]
    assert re.fullmatch(r"cmcoord-digest-2026Q1-[0-9a-f]{8}\.html", got[MARIA]["document"])  # English
    assert got[MARIA]["text"].startswith("The CMCoord lessons digest for 2026 Q1:")
    assert got[JEAN]["document"].startswith("cmcoord-digest-2026Q1-fr-")
    assert got[JEAN]["text"].startswith("La synthèse des enseignements CMCoord (1er trimestre 2026) :")
    assert got[AWA]["document"].startswith("cmcoord-digest-2026Q1-ar-")
    assert got[AWA]["text"].startswith("موجز دروس CMCoord عن الربع الأول 2026:")
    french = (await Documents(bus.js).get(got[JEAN]["document"])).decode()
    assert "<h1>Synthèse des enseignements CMCoord, 1er trimestre 2026</h1>" in french and "R-DIGEST01" in french
    arabic = (await Documents(bus.js).get(got[AWA]["document"])).decode()
    assert '<html lang="ar" dir="rtl">' in arabic and "<h3>تبادل المعلومات (1)</h3>" in arabic


async def _documents(user_id: int, sandbox_url: str) -> list[dict[str, Any]]:
    return [m for m in await User(sandbox_url, user_id).messages() if m.get("document")]


async def test_every_services_metrics_pass_promtool_and_hold_what_the_alerts_and_dashboard_read(
    lessons: lessons_bootstrap.LessonsApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, roster: RosterApp,
) -> None:
    import asyncio
    import json

    import yaml

    from tests.unit.test_alert_rules import BUILTIN, RULES, metric_names, promtool
    from tests.unit.test_deploy import GRAFANA, panel_exprs

    tool = promtool()
    served: set[str] = set()
    for name, app in (("roster", roster), ("notify", notify), ("lessons", lessons), ("bot", bot)):
        assert app.health is not None
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{app.health.port}/metrics") as resp:
            assert resp.status == 200
            body = await resp.read()
        check = await asyncio.create_subprocess_exec(tool, "check", "metrics", stdin=asyncio.subprocess.PIPE,
                                                     stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        said, _ = await check.communicate(body)
        assert check.returncode == 0 and not said.strip(), f"{name}: {said.decode()}"
        families = list(text_string_to_metric_families(body.decode()))
        samples = {s.name: s for f in families for s in f.samples}
        assert samples["cmcoord_build_info"].labels["service"] == name
        assert samples["process_open_fds"].value > 0 and samples["process_resident_memory_bytes"].value > 0
        for family in families:  # a family without samples yet (labels never used) is still served
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
            served.update({family.name + suffix for suffix in suffixes} | set(samples))
    read = {name for rule in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
            for name in metric_names(rule["expr"])}
    read |= {name for _, expr in panel_exprs(json.loads((GRAFANA / "dashboards" / "cmcoord.json").read_text()))
             for name in metric_names(expr)}
    assert read - BUILTIN <= served, f"read by alerts or panels, served by no service: {sorted(read - BUILTIN - served)}"
