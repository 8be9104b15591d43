"""Humanitarian notifications to parties, end to end: a real nats-server, SQLite, the roster, notify with
a real SMTP server on loopback, the bot on the sandbox and the HNS4D service; a clock the test sets.

A focal point submits a movement 50 hours ahead; the officer sends it to three parties: one whose liaison
is on Telegram, one reached by e-mail, one whose answer the officer records after a phone call. Receipt
acknowledged on Telegram and by phone; the e-mail party's silence told to the officer, then the adviser,
each once; the submitter reads each party's answer (never "approved" or "cleared"); a change of route asks
every party again, and the e-mail liaison acknowledges it from the mail; an incident counts in the figures.
A movement 20 hours ahead is refused unless flagged as an emergency."""

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from services.bot.bootstrap import BotApp
from services.hns4d import bootstrap as hns4d_bootstrap
from services.hns4d import records, store
from services.hns4d.config import Settings as Hns4dSettings
from services.hns4d.models import AuditEntry, Forwarding, Party, Record
from services.lessons import bootstrap as lessons_bootstrap
from services.lessons.models import Item
from services.hns4d.records import Refused
from shared.contracts.hns4d import Submission
from services.notify import bootstrap as notify_bootstrap
from services.notify.models import Notification
from services.roster.bootstrap import RosterApp
from services.roster.config import Settings
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from services.roster.admin import NotALiaison, add_liaison
from services.roster.models import Person, TelegramLink
from shared.natsserver import NatsServer, free_port
from shared.store import Database
from shared.store import OutboxRelay
from tests.helpers import cli, eventually, mark_started, service_env, stream_events
from services.roster.admin import import_text
from tests.integration.conftest import PEOPLE, PEOPLE_HEADER, ZONES, import_people, started_bot
from tests.integration.telegram_users import User
from tests.integration.test_email import Inbox, mailing_settings, smtp  # noqa: F401  (the SMTP server fixture)
from tests.integration.test_lessons import lessons  # noqa: F401  (the lessons service, with this module's notify)
from tests.integration.test_notify import started_notify

AWA, JEAN, MARIA, FAMA, ANA = 9801, 9802, 9803, 9811, 9812
MINUSMA_MAIL = "liaison@minusma.example"  # the peacekeeping mission's liaison: e-mail only
ROUTE = [(12.6392, -8.0029), (13.4317, -6.2157), (14.4843, -4.1827)]  # Bamako, Ségou, Mopti
NEW_ROUTE = [(12.6392, -8.0029), (13.9, -5.0), (14.4843, -4.1827)]
NEVER = re.compile(r"\b(approved|cleared|clearance)\b", re.IGNORECASE)


@pytest.fixture
async def hns4d_people(roster_settings: Settings, clock: ManualClock, sandbox_url: str) -> dict[str, uuid.UUID]:
    """The notify tests' people, a WFP focal point in Mali, and two parties' liaisons: on the roster to be
    told, never members (`cmcoord roster liaison`); FAMa's linked to Telegram."""
    more = {"ana@wfp.example": (ANA, "Ana Sow,ana@wfp.example,+223 2,WFP,ML,Bamako,Logistics Focal Point,focal_point")}
    ids = await import_people(roster_settings, clock, sandbox_url, {**PEOPLE, **more}, ZONES)
    for email, name, party, telegram in (("fama@defense.example", "Cdt Keita", "FAMa", FAMA),
                                         (MINUSMA_MAIL, "Maj. Berg", "MINUSMA", None)):
        ids[email], _ = await add_liaison(email=email, name=name, organisation=party, phone="", timezone="UTC",
                                          settings=roster_settings, clock=clock)
        if telegram is not None:
            db = Database(roster_settings.db_url)
            async with db.write() as session:
                session.add(TelegramLink(person_id=ids[email], telegram_user_id=telegram, linked_at=clock.now()))
            await db.dispose()
            await mark_started(sandbox_url, [telegram])
    return ids


@pytest.fixture
async def notify(tmp_path: Path, nats_server: NatsServer, clock: ManualClock, roster: RosterApp,
                 hns4d_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int]  # noqa: F811
                 ) -> AsyncIterator[notify_bootstrap.NotifyApp]:
    app = await started_notify(mailing_settings(tmp_path, nats_server.url, smtp[1]), clock)
    yield app
    await app.stop()


@pytest.fixture
async def hns4d(tmp_path: Path, nats_server: NatsServer, clock: ManualClock) -> AsyncIterator[hns4d_bootstrap.Hns4dApp]:
    settings = Hns4dSettings(home=tmp_path / "hns4d-home", nats_url=nats_server.url, health_port=free_port(),
                             tick_seconds=0.2, max_deliver=3)
    app = hns4d_bootstrap.build(settings, clock=clock)
    await app.start()
    for consumer in app.consumers:
        await consumer.wait_bound()
    yield app
    await app.stop()


def movement(clock: ManualClock, *, hours_ahead: float, emergency: bool = False,
             route: list[tuple[float, float]] = ROUTE) -> Submission:
    start = clock.now() + timedelta(hours=hours_ahead)
    return Submission(kind="movement", country="ML", organisation="WFP", name="Bamako–Mopti food convoy",
                      points=route, starts_at=start, ends_at=start + timedelta(hours=30),
                      contact="Ana Sow +223 2", vehicles="6 trucks, 1 escort car", markings="WFP flags, blue roofs",
                      emergency=emergency)


async def tap(user: User, message: dict[str, Any], label: str) -> None:
    """Press the button labelled `label` of `message`."""
    (button,) = [b for row in message["reply_markup"]["inline_keyboard"] for b in row if b["text"] == label]
    await user.press(message["message_id"], button["callback_data"])


async def press(user: User, message: dict[str, Any], label: str) -> dict[str, Any]:
    """Press the button labelled `label` of `message`; the bot's next message."""
    before = len(await user.messages())
    await tap(user, message, label)
    return await eventually(lambda: user._after(before), what=f"the answer to {label}")


async def by_bot(user: User, clock: ManualClock, name: str, *, hours_ahead: float) -> dict[str, Any]:
    """/movement through the conversation, the route as location messages; the answer to Submit."""
    start = clock.now() + timedelta(hours=hours_ahead)
    assert "1/7" in (await user.reply_to("/movement"))["text"]
    assert "2/7" in (await user.reply_to(name))["text"]
    for n, (lat, lon) in enumerate(ROUTE, 1):
        point = await user.reply_to("", location={"latitude": lat, "longitude": lon})
        assert point["text"].startswith(f"Point {n}: {lat:.5f}, {lon:.5f}"), point["text"]
    assert "3/7" in (await user.reply_to("/done"))["text"]
    assert "4/7" in (await user.reply_to(f"{start:%Y-%m-%d %H:%M}"))["text"]
    assert "5/7" in (await user.reply_to(f"{start + timedelta(hours=30):%Y-%m-%d %H:%M}"))["text"]
    assert "6/7" in (await user.reply_to("6 trucks, 1 escort car"))["text"]
    assert "7/7" in (await user.reply_to("WFP flags, blue roofs"))["text"]
    summary = await user.reply_to("Ana Sow +223 2")
    assert "it is not an approval" in summary["text"] and not NEVER.search(summary["text"])
    return await press(user, summary, "Submit")


async def latest(user: int, sandbox_url: str, needle: str, n: int = 1) -> list[dict[str, Any]] | None:
    found = [m for m in await User(sandbox_url, user).messages() if needle in (m.get("text") or "")]
    return found if len(found) >= n else None


async def forwardings(app: hns4d_bootstrap.Hns4dApp, record: Record) -> dict[tuple[str, int], Forwarding]:
    async with app.db.read() as session:
        rows = await store.forwardings_of(session, record.id)
        parties = await store.parties_by_id(session, [f.party_id for f in rows])
    return {(parties[f.party_id].name, f.revision): f for f in rows}


async def mails(inbox: Inbox, to: str, needle: str) -> list[EmailMessage] | None:
    found = [m for m in inbox.mails if m["To"] == to and needle in _plain(m)]
    return found or None


def _plain(mail: EmailMessage) -> str:
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None
    return str(plain.get_content()).replace("\r\n", "\n")


def _link(mail: EmailMessage) -> str:
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None
    (link,) = re.findall(r"^Acknowledge receipt: (http://\S+/answer/\S+)$",
                         plain.get_content().replace("\r\n", "\n"), re.MULTILINE)
    return str(link)


async def test_a_movement_is_sent_to_three_parties_each_answer_tracked_silence_escalated_once(
    hns4d: hns4d_bootstrap.Hns4dApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str,
    clock: ManualClock, hns4d_people: dict[str, uuid.UUID], smtp: tuple[Inbox, int],  # noqa: F811
    lessons: lessons_bootstrap.LessonsApp,  # noqa: F811
) -> None:
    inbox, _ = smtp
    people, db = hns4d_people, hns4d.db
    async with db.unit_of_work() as uow:
        for name, kind, channel, liaison in (
                ("FAMa", "state_forces", "telegram", people["fama@defense.example"]),
                ("MINUSMA", "peacekeeping", "email", people[MINUSMA_MAIL]),
                ("Groupe armé du Nord", "armed_group", "recorded", None)):
            await records.add_party(uow, country="ML", name=name, kind=kind, channel=channel, liaison_id=liaison,
                                    who="person:desk")

    # the focal point notifies a movement from the bot, its route shared as three Telegram locations, 50 hours
    # ahead; a second time: the same one, refused
    ana = User(sandbox_url, ANA)
    done = await by_bot(ana, clock, "Bamako–Mopti food convoy", hours_ahead=50)
    reference = re.search(r"<b>(HN-ML-\d{4}-\d{4})</b> submitted", done["text"])
    assert reference is not None, done["text"]
    async with db.read() as session:
        record = await store.record_by_reference(session, reference.group(1))  # type: ignore[assignment]
    assert record is not None and (record.organisation, record.country, record.submitted_by) == (
        "WFP", "ML", people["ana@wfp.example"])
    assert json.loads(record.points) == [list(p) for p in ROUTE] and record.vehicles == "6 trucks, 1 escort car"
    again = await by_bot(ana, clock, "Bamako–Mopti food convoy", hours_ahead=50)
    assert "Not submitted:" in again["text"] and f"{record.reference} is the same movement" in again["text"]

    # 20 hours ahead: refused, unless flagged as an emergency (then it says what is short)
    late = await by_bot(ana, clock, "Medical evacuation", hours_ahead=20)
    assert "movements are notified at least 48 hours ahead" in late["text"]
    urgent = await press(ana, late, "Submit as an emergency")
    assert "submitted" in urgent["text"] and "less than the 24 hours an emergency movement" in urgent["text"]

    # the region's officer is asked to review it, and presses Send: it goes to every party of Mali
    (review,) = await eventually(lambda: latest(AWA, sandbox_url, f"{record.reference} from WFP to review"),
                                 what="the officer asked to review it")
    assert "Bamako–Mopti food convoy (Mali)" in review["text"] and not NEVER.search(review["text"])
    sent_at = clock.now()
    await tap(User(sandbox_url, AWA), review, "Send to the parties")

    async def sent() -> dict[tuple[str, int], Forwarding] | None:
        table = await forwardings(hns4d, record)
        return table if len(table) == 3 else None

    asked = await eventually(sent, what="sent to the three parties")
    assert sorted(name for name, _ in asked) == ["FAMa", "Groupe armé du Nord", "MINUSMA"]
    due = sent_at + timedelta(hours=26)  # 24 hours before the start
    assert {store.utc(f.due_at) for f in asked.values()} == {due}
    async with db.read() as session:
        assert (await session.get(Record, record.id)).sent_by == people["awa@ocha.example"]  # type: ignore[union-attr]

    # Telegram: the liaison reads it, receipt not approval, and presses "Acknowledge receipt"
    (message,) = await eventually(lambda: latest(FAMA, sandbox_url, record.reference), what="the FAMa liaison told")
    assert "Route: 12.6392, -8.0029 → 13.4317, -6.2157 → 14.4843, -4.1827" in message["text"]
    assert "it is not an approval" in message["text"] and not NEVER.search(message["text"])
    button = message["reply_markup"]["inline_keyboard"][0][0]
    assert button["text"] == "Acknowledge receipt"
    clock.advance(timedelta(hours=2))
    await User(sandbox_url, FAMA).press(message["message_id"], button["callback_data"])

    async def acknowledged(name: str, revision: int = 1) -> Forwarding | None:
        f = (await forwardings(hns4d, record)).get((name, revision))
        return f if f is not None and f.acknowledged_at is not None else None

    fama = await eventually(lambda: acknowledged("FAMa"), what="FAMa's acknowledgement recorded")
    found = (await User(sandbox_url, AWA).reply_to("/contacts FAMa"))["text"]  # nor do members find liaisons
    assert "Keita" not in found and "defense.example" not in found
    liaison = User(sandbox_url, FAMA)  # the party's liaison sees nothing of the roster, nor of others' records
    for command in ("/contacts Mali", "/movement", "/lessons convoy", "/calls", "/me", "/help"):
        answer = (await liaison.reply_to(command))["text"]
        assert "Humanitarian notifications addressed to your organisation come here" in answer, (command, answer)
        assert "Awa" not in answer and "HN-ML" not in answer
    seen = (await liaison.reply_to("/hns4d"))["text"]  # what was sent to FAMa, with FAMa's answer only
    assert f"<b>{record.reference}</b> Bamako–Mopti food convoy (WFP)" in seen, seen
    assert f"FAMa: acknowledged receipt at {sent_at + timedelta(hours=2):%Y-%m-%d %H:%M} UTC" in seen
    assert "MINUSMA" not in seen and "Groupe" not in seen and "Medical evacuation" not in seen  # nor unsent ones
    assert (fama.acknowledged_via, store.utc(fama.acknowledged_at)) == ("telegram", sent_at + timedelta(hours=2))  # type: ignore[arg-type]

    # the armed group is called; the officer records its answer
    async with db.unit_of_work() as uow:
        group = (await forwardings(hns4d, record))[("Groupe armé du Nord", 1)]
        assert await records.acknowledge(uow, await uow.session.get(Forwarding, group.id),  # type: ignore[arg-type]
                                         via="recorded", by_name="Cdt Ag Moussa", how="by phone", at=clock.now(),
                                         recorded_by=people["awa@ocha.example"], who="person:awa")

    # MINUSMA's liaison has the mail, and stays silent: at the deadline the officer is told, 6 hours later the
    # adviser; each once
    (mail,) = await eventually(lambda: inbox.to(MINUSMA_MAIL), what="the MINUSMA liaison e-mailed")
    assert record.reference in _plain(mail) and not NEVER.search(_plain(mail))
    assert await latest(AWA, sandbox_url, "has not acknowledged receipt") is None
    clock.set(due + timedelta(minutes=1))
    hns4d.parts.silences.wake()  # type: ignore[union-attr]
    (officer,) = await eventually(lambda: latest(AWA, sandbox_url, "has not acknowledged receipt"),
                                  what="the officer told of MINUSMA's silence")
    assert "MINUSMA has not acknowledged receipt of humanitarian notification " + record.reference in officer["text"]
    assert await latest(JEAN, sandbox_url, "has not acknowledged receipt") is None
    clock.set(due + timedelta(hours=6, minutes=1))
    hns4d.parts.silences.wake()  # type: ignore[union-attr]
    await eventually(lambda: latest(JEAN, sandbox_url, "has not acknowledged receipt"), what="the adviser told")
    silent = await eventually(lambda: _events(bus, "hns4d.party.silent", 2), what="two silence steps")
    assert [e.data["escalated_to"] for e in silent] == ["cmcoord_officer", "regional_adviser"]
    await passes_after(hns4d, 2)  # two passes more, and all they wrote published: nothing taken again
    assert len(await stream_events(bus.js, "HNS4D", type_prefix="hns4d.party.silent")) == 2
    async with db.read() as session:
        assert await store.silences_due(session, clock.now()) == []
    assert len(await latest(AWA, sandbox_url, "has not acknowledged receipt") or []) == 1
    assert len(await latest(JEAN, sandbox_url, "has not acknowledged receipt") or []) == 1

    # what the submitter reads: receipt per party, or silence; never approval
    async with db.read() as session:
        lines = records.status_lines(record, await records.party_statuses(session, record, now=clock.now()),
                                     now=clock.now())
    shown = "\n".join(lines)
    assert f"FAMa: acknowledged receipt at {sent_at + timedelta(hours=2):%d %b %Y %H:%M} UTC" in shown
    assert "Groupe armé du Nord: acknowledged receipt at" in shown and "by phone (Cdt Ag Moussa)" in shown
    assert f"MINUSMA: silent since {sent_at:%d %b %Y %H:%M} UTC" in shown
    assert not NEVER.search(shown)
    mine = (await ana.reply_to("/hns4d"))["text"]  # the focal point reads the same in the bot
    assert f"<b>{record.reference}</b> Bamako–Mopti food convoy" in mine and not NEVER.search(mine)
    assert f"FAMa: acknowledged receipt at {sent_at + timedelta(hours=2):%Y-%m-%d %H:%M} UTC" in mine
    assert f"MINUSMA: silent since {sent_at:%Y-%m-%d %H:%M} UTC" in mine
    assert "(by phone, Cdt Ag Moussa; recorded by the CMCoord officer)" in mine
    await ana.reply_to("/lang fr")  # and in her language
    mine = (await ana.reply_to("/hns4d"))["text"]
    assert f"FAMa : réception accusée le {sent_at + timedelta(hours=2):%Y-%m-%d %H:%M} UTC" in mine, mine
    assert f"MINUSMA : silence depuis le {sent_at:%Y-%m-%d %H:%M} UTC" in mine
    await ana.reply_to("/lang en")

    # a change of route asks every party again; what was asked before waits no more
    async with db.unit_of_work() as uow:
        changed = await records.change(uow, await uow.session.get(Record, record.id),  # type: ignore[arg-type]
                                       movement(clock, hours_ahead=0).model_copy(update={
                                           "points": NEW_ROUTE, "starts_at": record.starts_at,
                                           "ends_at": record.ends_at}),
                                       by=people["awa@ocha.example"], who="person:awa")
    assert (changed.revision, changed.state) == (2, "sent")
    table = await forwardings(hns4d, record)
    assert {name for name, revision in table if revision == 2} == {"FAMa", "MINUSMA", "Groupe armé du Nord"}
    assert table[("MINUSMA", 1)].superseded and table[("MINUSMA", 1)].next_step_at is None
    await eventually(lambda: latest(FAMA, sandbox_url, "Changed humanitarian notification " + record.reference),
                     what="FAMa asked again")
    (again,) = await eventually(lambda: mails(inbox, MINUSMA_MAIL, "Changed humanitarian notification"),
                                what="MINUSMA asked again")
    async with aiohttp.ClientSession() as http, http.post(_link(again)) as pressed:
        assert pressed.status == 200 and "your answer is recorded" in await pressed.text()
    minusma = await eventually(lambda: acknowledged("MINUSMA", 2), what="MINUSMA's acknowledgement from the mail")
    assert minusma.acknowledged_via == "email"
    assert (await forwardings(hns4d, record))[("FAMa", 2)].acknowledged_at is None  # a new revision, a new answer

    # an incident, attributed to a party, counts in the figures
    async with db.unit_of_work() as uow:
        party = await store.party_by_name(uow.session, "ML", "Groupe armé du Nord")
        await records.record_incident(uow, await uow.session.get(Record, record.id),  # type: ignore[arg-type]
                                      what="The convoy was held four hours at a checkpoint near Konna.",
                                      occurred_at=clock.now() - timedelta(hours=1), party=party,
                                      by=people["awa@ocha.example"], who="person:awa")
    (incident,) = await eventually(lambda: _events(bus, "hns4d.incident.recorded", 1), what="the incident event")
    assert incident.data["reference"] == record.reference

    async def observation() -> Item | None:  # and a restricted observation in lessons, found by the reference
        async with lessons.db.read() as session:
            return (await session.exec(select(Item).where(Item.tags == record.reference))).first()

    item = await eventually(observation, what="the incident as an observation in lessons")
    assert (item.kind, item.classification, item.country, item.author_id) == (
        "observation", "restricted", "ML", people["awa@ocha.example"])
    assert record.reference in item.title and "Konna" in item.body
    async with db.read() as session:
        rows = await records.figures(session, start=sent_at - timedelta(days=1), end=clock.now() + timedelta(days=1),
                                     country="ML", now=clock.now())
    by_party = {r["party"]: r for r in rows}
    assert by_party["MINUSMA"]["sent"] == 2 and by_party["MINUSMA"]["acknowledged"] == 1
    assert by_party["MINUSMA"]["silent"] == 0  # revision 1 was replaced before it was answered: not silence
    assert by_party["FAMa"]["acknowledged_on_time"] == 1 and by_party["FAMa"]["median_hours_to_acknowledge"] == 2.0
    assert by_party["Groupe armé du Nord"]["incidents"] == 1
    async with db.unit_of_work() as uow:  # the quarter's figures go to the CMCS desk, and to nobody else
        for request in records.figures_requests(rows, period="2026 Q3"):
            uow.emit(request)
    (digest,) = await eventually(lambda: latest(MARIA, sandbox_url, "for the CMCS desk only"), what="the desk told")
    assert "Humanitarian notifications in Mali, 2026 Q3" in digest["text"] and "\nMINUSMA: 2 / 1 / 1 / " in (
        digest["text"]) and not NEVER.search(digest["text"])
    async with notify.db.read() as session:  # nobody else has a copy, sent or still to send
        told = set((await session.exec(select(Notification.person_id).where(
            Notification.kind == records.FIGURES_KIND))).all())
    assert told == {people["maria@ocha.example"]}

    # the emergency, sent too late: its start has passed, so it is not sent, and the officer is told why
    reviews = await eventually(lambda: latest(AWA, sandbox_url, "Medical evacuation"), what="the emergency to review")
    await tap(User(sandbox_url, AWA), reviews[-1], "Send to the parties")  # reminded meanwhile: the newest copy
    (refused,) = await eventually(lambda: latest(AWA, sandbox_url, "was not sent"), what="the officer told why")
    assert "the movement has already started" in refused["text"]

    # the audit log has every change, and refuses to be rewritten
    async with db.read() as session:
        actions = [a for (a,) in (await session.exec(text(  # type: ignore[call-overload]
            "SELECT action FROM hns4d_audit ORDER BY id"))).all()]
    assert actions.count("sent") == 2 and "changed" in actions and "incident" in actions  # sent, then changed
    with pytest.raises(DBAPIError, match="append-only"):
        async with db.write() as session:
            await session.exec(text("UPDATE hns4d_audit SET who = 'someone else'"))  # type: ignore[call-overload]


async def passes_after(app: hns4d_bootstrap.Hns4dApp, n: int) -> None:
    """`n` passes of the silence steps begun after this call have ended, and the outbox is published."""
    silences = app.parts.silences
    assert silences is not None and silences.job is not None
    job = silences.job
    target = job.passes + n + 1  # the pass under way may have read before the call; the job ticks on its own
    silences.wake()
    await eventually(lambda: job.passes >= target, what="the silence passes")
    await eventually(lambda: _published(app.db), what="the outbox published")


async def _published(db: Any) -> bool:
    return (await OutboxRelay.backlog(db))["pending"] == 0


async def _events(bus: Bus, type_prefix: str, n: int) -> list[Any] | None:
    found = await stream_events(bus.js, "HNS4D", type_prefix=type_prefix)
    return found if len(found) >= n else None


async def test_parties_are_listed_with_a_liaison_where_notify_reaches_them(tmp_path: Path) -> None:
    db = store.open_store(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}", clock=ManualClock(datetime.now().astimezone()))
    await store.prepare(db)
    try:
        for kwargs, problem in (
                ({"kind": "army", "channel": "recorded"}, "a party is one of"),
                ({"kind": "state_forces", "channel": "fax"}, "a party is reached by"),
                ({"kind": "state_forces", "channel": "telegram"}, "has a liaison on the roster"),
                ({"kind": "state_forces", "channel": "recorded", "country": "XX"}, "not a country code")):
            with pytest.raises(Refused, match=problem):
                async with db.unit_of_work() as uow:
                    await records.add_party(uow, **{"country": "ML", "name": "FAMa", "liaison_id": None,
                                                    "who": "t", **kwargs})
        async with db.unit_of_work() as uow:
            await records.add_party(uow, country="ml", name="FAMa", kind="state_forces", channel="recorded",
                                    liaison_id=None, who="t")
        async with db.unit_of_work() as uow:  # the same party again: how it is reached changes, no second party
            await records.add_party(uow, country="ML", name="fama", kind="state_forces", channel="telegram",
                                    liaison_id=uuid.uuid4(), who="t")
        async with db.read() as session:
            (party,) = await store.parties_of(session, "ML")
        assert isinstance(party, Party) and (party.name, party.channel) == ("FAMa", "telegram")
    finally:
        await db.dispose()


async def test_the_movement_conversation_answers_mistakes_and_keeps_nothing_cancelled(
    hns4d: hns4d_bootstrap.Hns4dApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, sandbox_url: str,
    clock: ManualClock, hns4d_people: dict[str, uuid.UUID],
) -> None:
    ana = User(sandbox_url, ANA)
    await ana.reply_to("/movement")
    await ana.reply_to("Mopti–Konna staff movement")
    assert "I did not understand that point" in (await ana.reply_to("north of Mopti"))["text"]
    assert "latitude goes from -90 to 90" in (await ana.reply_to("95.1, -4.2"))["text"]
    assert (await ana.reply_to("14.4843, -4.1827"))["text"].startswith("Point 1: 14.48430, -4.18270")
    assert "at least two points" in (await ana.reply_to("/done"))["text"]
    await ana.reply_to("14.7, -3.9")
    await ana.reply_to("/done")
    assert "I did not understand that time" in (await ana.reply_to("tomorrow morning"))["text"]
    start = clock.now() + timedelta(hours=60)
    await ana.reply_to(f"{start:%Y-%m-%d %H:%M}")
    assert "It ends before it starts" in (await ana.reply_to(f"{start - timedelta(hours=1):%Y-%m-%d %H:%M}"))["text"]
    assert (await ana.reply_to("/cancel"))["text"] == "Nothing was submitted."
    assert "Point" not in (await ana.reply_to("14.4, -4.1"))["text"]  # the conversation is over
    async with hns4d.db.read() as session:
        assert (await session.exec(select(Record))).first() is None
    assert "You have not notified any site or movement" in (await ana.reply_to("/hns4d"))["text"]


async def test_a_site_is_notified_from_the_bot_its_position_a_location_its_mistakes_answered(
    hns4d: hns4d_bootstrap.Hns4dApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, sandbox_url: str,
    clock: ManualClock, hns4d_people: dict[str, uuid.UUID],
) -> None:
    ana = User(sandbox_url, ANA)
    start = clock.now() + timedelta(hours=2)  # a site has no lead time: it is there already
    assert "1/6" in (await ana.reply_to("/site"))["text"]
    assert "2/6" in (await ana.reply_to("WFP warehouse, Sévaré"))["text"]
    assert "3/6" in (await ana.reply_to("Food warehouse"))["text"]
    assert "I did not understand that point" in (await ana.reply_to("next to the airport"))["text"]
    assert "latitude goes from -90 to 90" in (await ana.reply_to("95.1, -4.2"))["text"]
    assert "4/6" in (await ana.reply_to("", location={"latitude": 14.4843, "longitude": -4.1827}))["text"]
    assert "not a number of people" in (await ana.reply_to("forty"))["text"]
    assert "5/6" in (await ana.reply_to("40"))["text"]
    assert "6/6" in (await ana.reply_to(f"{start:%Y-%m-%d %H:%M}"))["text"]
    assert "It ends before it starts" in (await ana.reply_to(f"{start - timedelta(days=1):%Y-%m-%d %H:%M}"))["text"]
    summary = await ana.reply_to(f"{start + timedelta(days=180):%Y-%m-%d %H:%M}")
    assert "<b>Site to notify</b>\nWFP warehouse, Sévaré\nOrganisation: WFP\nFunction: Food warehouse\n" \
           "Position: 14.48430, -4.18270\nPeople usually there: 40\n" in summary["text"]
    assert "it is not an approval" in summary["text"] and not NEVER.search(summary["text"])
    assert [b["text"] for row in summary["reply_markup"]["inline_keyboard"] for b in row] == ["Submit", "Cancel"]
    done = await press(ana, summary, "Submit")
    reference = re.search(r"<b>(HN-ML-\d{4}-\d{4})</b> submitted", done["text"])
    assert reference is not None, done["text"]
    async with hns4d.db.read() as session:
        record = await store.record_by_reference(session, reference.group(1))
    assert record is not None
    assert (record.kind, record.name, record.function, record.occupancy, record.organisation, record.submitted_by) == (
        "site", "WFP warehouse, Sévaré", "Food warehouse", 40, "WFP", hns4d_people["ana@wfp.example"])
    assert json.loads(record.points) == [[14.4843, -4.1827]]
    assert "WFP warehouse, Sévaré" in (await ana.reply_to("/hns4d"))["text"]

    # a position outside the country: each problem named, and nothing kept
    await ana.reply_to("/site")
    await ana.reply_to("Office in Dakar")
    await ana.reply_to("Staff office")
    await ana.reply_to("14.6928, -17.4467")  # Dakar, in Senegal
    await ana.reply_to("-")
    await ana.reply_to(f"{start:%Y-%m-%d %H:%M}")
    summary = await ana.reply_to(f"{start + timedelta(days=30):%Y-%m-%d %H:%M}")
    assert "People usually there: -" in summary["text"]
    refused = await press(ana, summary, "Submit")
    assert refused["text"].startswith("Not submitted:\n• point:") and "Send /site to start again." in refused["text"]
    over = (await ana.reply_to("14.4, -4.1")).get("text") or ""
    assert "4/6" not in over and "not a position" not in over  # the conversation is over: a point is no answer
    async with hns4d.db.read() as session:
        assert len((await session.exec(select(Record))).all()) == 1


async def test_a_movement_half_told_survives_a_bot_restart(
    tmp_path: Path, hns4d: hns4d_bootstrap.Hns4dApp, notify: notify_bootstrap.NotifyApp, bot: BotApp,
    sandbox_url: str, nats_server: NatsServer, clock: ManualClock, hns4d_people: dict[str, uuid.UUID],
) -> None:
    """A phone in the field: the focal point is at the route's second point when the bot restarts (a
    deployment, a crash). The points already shared are kept; the conversation goes on where it was."""
    ana = User(sandbox_url, ANA)
    start = clock.now() + timedelta(hours=50)
    await ana.reply_to("/movement")
    await ana.reply_to("Ségou–Mopti staff movement")
    for lat, lon in ROUTE[:2]:
        await ana.reply_to("", location={"latitude": lat, "longitude": lon})

    await bot.stop()
    restarted = await started_bot(tmp_path / "bot", nats_server.url, sandbox_url, clock=clock)
    try:
        lat, lon = ROUTE[2]
        third = await ana.reply_to("", location={"latitude": lat, "longitude": lon})
        assert third["text"].startswith(f"Point 3: {lat:.5f}, {lon:.5f}"), third["text"]
        assert "3/7" in (await ana.reply_to("/done"))["text"]
        await ana.reply_to(f"{start:%Y-%m-%d %H:%M}")
        await ana.reply_to(f"{start + timedelta(hours=8):%Y-%m-%d %H:%M}")
        await ana.reply_to("2 cars")
        await ana.reply_to("WFP flags")
        summary = await ana.reply_to("Ana Sow +223 2")
        assert "Ségou–Mopti staff movement" in summary["text"]
        done = await press(ana, summary, "Submit")
        assert " submitted." in done["text"], done["text"]
    finally:
        await restarted.stop()
    async with hns4d.db.read() as session:
        (record,) = (await session.exec(select(Record))).all()
    assert json.loads(record.points) == [list(p) for p in ROUTE] and record.vehicles == "2 cars"


async def test_a_record_is_seen_by_its_organisation_its_country_s_officers_its_region_s_adviser_and_the_desk(
    hns4d: hns4d_bootstrap.Hns4dApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, bus: Bus, sandbox_url: str,
    clock: ManualClock, hns4d_people: dict[str, uuid.UUID], roster_settings: Settings,
) -> None:
    omar = 9813  # a colleague of the submitter's at WFP, in Niger: he sees it as his organisation's
    await import_people(roster_settings, clock, sandbox_url, {
        "omar@wfp.example": (omar, "Omar Ba,omar@wfp.example,+227 3,WFP,NE,Niamey,Logistics Focal Point,focal_point")},
        {})
    done = await by_bot(User(sandbox_url, ANA), clock, "Bamako–Mopti food convoy", hours_ahead=50)
    reference = re.search(r"<b>(HN-ML-\d{4}-\d{4})</b> submitted", done["text"])
    assert reference is not None, done["text"]
    rights = await bus.request("cmcoord.roster.svc.rights", {"person_id": str(hns4d_people["awa@ocha.example"])})
    assert (rights["officer_countries"], rights["organisation"]) == (["ML"], "OCHA")  # who she is: the roster's word
    somchai = 9804  # a CMCoord officer in Thailand
    for user, sees in ((AWA, True), (JEAN, True), (MARIA, True), (omar, True), (somchai, False)):
        shown = (await User(sandbox_url, user).reply_to("/hns4d"))["text"]
        if sees:
            assert f"<b>{reference.group(1)}</b> Bamako–Mopti food convoy (WFP)" in shown, (user, shown)
        else:
            assert reference.group(1) not in shown and "You have not notified any site or movement" in shown
    async with hns4d.db.read() as session:  # each view is in the audit log, with who saw it
        viewers = set((await session.exec(select(AuditEntry.who).where(AuditEntry.action == "viewed"))).all())
    assert {f"person:{hns4d_people[e]}" for e in ("awa@ocha.example", "jean@ocha.example", "maria@ocha.example")} \
        <= viewers


async def test_a_party_s_liaison_is_on_the_roster_to_be_told_never_as_a_member(
    roster_settings: Settings, clock: ManualClock, sandbox_url: str, hns4d_people: dict[str, uuid.UUID],
    roster: RosterApp, tmp_path: Path,
) -> None:
    again, created = await add_liaison(email="FAMA@defense.example", name="Cdt Keita", organisation="FAMa (G3)",
                                       phone="+223 5", timezone="Africa/Bamako", settings=roster_settings, clock=clock)
    assert (again, created) == (hns4d_people["fama@defense.example"], False)  # the same person, updated
    with pytest.raises(NotALiaison, match="a member of the community"):
        await add_liaison(email="awa@ocha.example", name="Awa", organisation="FAMa", phone="", timezone="UTC",
                          settings=roster_settings, clock=clock)
    db = Database(roster_settings.db_url)
    try:
        async with db.read() as session:
            fama = await session.get(Person, again)
            awa = await session.get(Person, hns4d_people["awa@ocha.example"])
        assert fama is not None and awa is not None
        assert (fama.liaison, fama.organisation, fama.timezone) == (True, "FAMa (G3)", "Africa/Bamako")
        assert awa.liaison is False
    finally:
        await db.dispose()
    # changing one thing keeps the rest; what does not fit is refused
    await add_liaison(email="fama@defense.example", telegram="@keita_g3", settings=roster_settings, clock=clock)
    for wrong, problem in (({"timezone": "Mali/Bamako"}, "not a time zone"), ({"name": "x" * 201}, "longer than"),
                           ({"email": "nobody"}, "not an e-mail address")):
        with pytest.raises(NotALiaison, match=problem):
            await add_liaison(**{"email": "fama@defense.example", **wrong}, settings=roster_settings, clock=clock)
    # a roster file naming a liaison is refused for that row: a liaison is never deployed
    today = clock.now().date()
    _, errors, _ = await import_text(
        PEOPLE_HEADER + f"Cdt Keita,fama@defense.example,+223 3,FAMa,ML,Bamako,Liaison,focal_point,{today},"
                        f"{today + timedelta(days=90)},\n", settings=roster_settings, clock=clock, publish=False)
    assert any("is a party's liaison on the roster" in str(e) for e in errors), errors
    db = Database(roster_settings.db_url)
    try:
        async with db.read() as session:
            fama = await session.get(Person, again)
        assert fama is not None and (fama.organisation, fama.timezone, fama.telegram_username, fama.phone) == (
            "FAMa (G3)", "Africa/Bamako", "keita_g3", "+223 5")
    finally:
        await db.dispose()
    # a party's Telegram or e-mail liaison is a liaison on the roster: a member would read what only the party should
    env = service_env(tmp_path / "hns4d-cli", roster_settings.nats_url)
    assert (await cli("hns4d", "migrate", env=env))[0] == 0
    add = ("hns4d", "party", "add", "ML", "FAMa", "--kind", "state_forces", "--channel", "telegram", "--liaison")
    code, _, err = await cli(*add, "awa@ocha.example", env=env)
    assert code == 1 and "awa@ocha.example is not a party's liaison on the roster" in err, err
    code, _, err = await cli(*add, "nobody@ocha.example", env=env)
    assert code == 1 and "not on the roster: nobody@ocha.example" in err, err
    code, out, err = await cli(*add, "FAMA@defense.example", env=env)
    assert code == 0 and "ML FAMa: state_forces, reached by telegram" in out, err
    code, out, _ = await cli("hns4d", "party", "list", "ML", env=env)
    assert [line.split("\t")[0] for line in out.splitlines()] == ["FAMa"]


async def test_a_party_s_liaison_sees_only_what_was_sent_to_its_party_and_only_its_own_answer(
    hns4d: hns4d_bootstrap.Hns4dApp, notify: notify_bootstrap.NotifyApp, bot: BotApp, sandbox_url: str,
    clock: ManualClock, hns4d_people: dict[str, uuid.UUID],
) -> None:
    """FAMa becomes a party after a first movement was sent: its liaison reads the second, never the first
    (addressed to MINUSMA only), nor a third not sent yet; and of the second, FAMa's answer, not MINUSMA's."""
    people, liaison = hns4d_people, User(sandbox_url, FAMA)
    assert "No humanitarian notification has been addressed to your organisation yet" in (
        await liaison.reply_to("/hns4d"))["text"]
    sent: dict[str, Record] = {}

    async def notified(name: str, *, send: bool) -> Record:
        async with hns4d.db.unit_of_work() as uow:
            record = await records.submit(uow, movement(clock, hours_ahead=50).model_copy(update={"name": name}),
                                          by=people["ana@wfp.example"], who="person:ana")
            if send:
                await records.send(uow, record, by=people["awa@ocha.example"], who="person:awa")
            return record

    async with hns4d.db.unit_of_work() as uow:
        await records.add_party(uow, country="ML", name="MINUSMA", kind="peacekeeping", channel="email",
                                liaison_id=people[MINUSMA_MAIL], who="person:desk")
    sent["before"] = await notified("Kayes–Bamako staff movement", send=True)
    async with hns4d.db.unit_of_work() as uow:
        await records.add_party(uow, country="ML", name="FAMa", kind="state_forces", channel="telegram",
                                liaison_id=people["fama@defense.example"], who="person:desk", exports=True)
    sent["after"] = await notified("Bamako–Mopti food convoy", send=True)
    sent["unsent"] = await notified("Sévaré–Gao fuel convoy", send=False)

    (told,) = await eventually(lambda: latest(FAMA, sandbox_url, sent["after"].reference), what="FAMa told")
    shown = (await liaison.reply_to("/hns4d"))["text"]
    assert f"<b>{sent['after'].reference}</b> Bamako–Mopti food convoy (WFP)" in shown, shown
    assert "FAMa: sent " in shown and "receipt asked for by" in shown
    assert sent["before"].reference not in shown and "Kayes" not in shown, shown
    assert sent["unsent"].reference not in shown and "Sévaré" not in shown
    assert "MINUSMA" not in shown and not NEVER.search(shown)
    await tap(liaison, told, "Acknowledge receipt")  # answered: it reads so, still FAMa's answer alone
    await eventually(lambda: _acknowledged_by(hns4d, sent["after"]), what="FAMa's answer recorded")
    shown = (await liaison.reply_to("/hns4d"))["text"]
    assert f"FAMa: acknowledged receipt at {clock.now():%Y-%m-%d %H:%M} UTC" in shown and "MINUSMA" not in shown
    await liaison.reply_to("/lang ar")
    shown = (await liaison.reply_to("/hns4d"))["text"]
    assert sent["after"].reference in shown and "MINUSMA" not in shown and "FAMa" in shown
    async with hns4d.db.read() as session:  # the liaison's view is in the audit log: the one record it saw
        seen = (await session.exec(select(AuditEntry.detail).where(
            AuditEntry.action == "viewed", AuditEntry.who == f"person:{people['fama@defense.example']}"))).all()
    assert set(seen) == {sent["after"].reference}
    async with hns4d.db.read() as session:  # an export given to FAMa (the desk allowed it) holds the same
        fama, minusma = [await store.party_by_name(session, "ML", name) for name in ("FAMa", "MINUSMA")]
        given = await records.exportable(session, country=None, since=clock.now() - timedelta(days=1), party=fama)
        assert [r.reference for r in given] == [sent["after"].reference]
        with pytest.raises(Refused, match="MINUSMA .ML. is not given exports"):
            await records.exportable(session, country=None, since=clock.now() - timedelta(days=1), party=minusma)


async def _acknowledged_by(app: hns4d_bootstrap.Hns4dApp, record: Record) -> bool:
    return any(f.acknowledged_at is not None for f in (await forwardings(app, record)).values())


async def test_an_answer_is_recorded_by_the_channel_it_came_by_and_an_older_notify_s_by_the_party_s(
    hns4d: hns4d_bootstrap.Hns4dApp, clock: ManualClock, hns4d_people: dict[str, uuid.UUID],
) -> None:
    """MINUSMA is told by e-mail; its liaison answers in Telegram (linked since): recorded as telegram. An
    answer from a notify that does not say how it came: the party's channel."""
    people = hns4d_people
    async with hns4d.db.unit_of_work() as uow:
        await records.add_party(uow, country="ML", name="MINUSMA", kind="peacekeeping", channel="email",
                                liaison_id=people[MINUSMA_MAIL], who="person:desk")
        asked = []
        for name in ("Kayes–Bamako staff movement", "Bamako–Mopti food convoy"):
            record = await records.submit(uow, movement(clock, hours_ahead=50).model_copy(update={"name": name}),
                                          by=people["ana@wfp.example"], who="person:ana")
            ((_, forwarding),) = await records.send(uow, record, by=people["awa@ocha.example"], who="person:awa")
            asked.append(forwarding.id)
    for forwarding_id, via in zip(asked, ("telegram", None), strict=True):
        answer = events.NotificationTransitioned(
            notification_id=uuid.uuid4(), kind=records.PARTY_KIND, about=str(forwarding_id), occurrence="r1",
            person_id=people[MINUSMA_MAIL], from_state="sent", to_state="acknowledged", reply="ack", via=via,
            at=clock.now())
        async with hns4d.db.unit_of_work() as uow:
            await records.on_transitioned(answer, uow=uow, clock=clock)
    async with hns4d.db.read() as session:
        recorded = [(await session.get(Forwarding, f)).acknowledged_via for f in asked]  # type: ignore[union-attr]
    assert recorded == ["telegram", "email"]
