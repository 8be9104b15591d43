"""The services' event handlers, one rule at a time: each applied as its consumer applies it
(tests/unit/handling.py: the idempotency record, the change and the emitted events in one
transaction of a real SQLite store), with no NATS and no other process."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlmodel import select

from services.lessons import handlers as lessons
from services.lessons.duties import DutyPolicy
from services.lessons.models import LESSONS_TABLES, Aar, Item
from services.lessons.store import prepare
from services.notify.handlers import facts as notify_facts
from services.notify.handlers import reports as notify
from services.notify.models import NOTIFY_TABLES, Notification
from services.notify.recipients import Recipient
from services.roster import handlers as roster
from services.roster.models import ROSTER_TABLES, Deployment, Person, Post
from shared import events
from shared.bus import PermanentError, QueryError, TransientError
from shared.clock import ManualClock
from shared.events import Envelope, deterministic_id
from shared.store import Consumes, Database
from tests.unit.handling import apply, apply_batch, closing_stores, envelope_of, store

close_stores = pytest.fixture(autouse=True)(closing_stores)

NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


# --- roster ---------------------------------------------------------------------------------


async def _deployed(db: Database, *, start: date = date(2026, 1, 5), planned_end: date = date(2026, 7, 4)
                    ) -> tuple[Person, Deployment]:
    async with db.write() as session:
        person = Person(email="awa@example.org", name="Awa Traoré", phone="+223 70 00 00 01", languages="fr",
                        created_at=NOW, updated_at=NOW)
        post = Post(country="ML", duty_station="Mopti", region="ROWCA", title="CMCoord Officer")
        session.add_all([person, post])
        await session.flush()
        dep = Deployment(person_id=person.id, post_id=post.id, role="cmcoord_officer", start=start,
                         planned_end=planned_end, created_at=NOW, updated_at=NOW)
        session.add(dep)
    return person, dep


async def test_a_profile_change_is_written_once_and_announced_with_an_id_from_the_event(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, ROSTER_TABLES, "roster")
    person, _ = await _deployed(db)
    event = envelope_of(events.ProfileUpdated(person_id=person.id, phone="+223 76 12 34 56", languages=["fr", "en"],
                                              updated_at=NOW), at=NOW)
    emitted = await apply(roster.on_profile_updated, event, db=db, clock=clock, source="roster")
    assert [e.type for e in emitted] == ["roster.person.changed"]
    assert emitted[0].id == deterministic_id("profile", event.id) and emitted[0].correlation_id == event.correlation_id
    async with db.read() as session:
        stored = await session.get(Person, person.id)
    assert stored is not None and stored.phone == "+223 76 12 34 56" and stored.languages == "fr;en"
    assert await apply(roster.on_profile_updated, event, db=db, clock=clock, source="roster") == []  # redelivered


async def test_a_refused_profile_value_is_dead_lettered_naming_the_field_never_the_value(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, ROSTER_TABLES, "roster")
    person, _ = await _deployed(db)
    with pytest.raises(PermanentError) as refused:
        await apply(roster.on_profile_updated, events.ProfileUpdated(person_id=person.id, phone="call me maybe",
                                                                     updated_at=NOW), db=db, clock=clock,
                    source="roster")
    assert "phone" in str(refused.value) and "call me maybe" not in str(refused.value)
    async with db.read() as session:
        assert (await session.get(Person, person.id)).phone == "+223 70 00 00 01"  # type: ignore[union-attr]


async def test_a_departure_moves_only_the_senders_running_deployment_and_never_into_the_past(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, ROSTER_TABLES, "roster")
    person, dep = await _deployed(db)

    def moved(to: date, *, by: uuid.UUID = person.id) -> events.DepartureChanged:
        return events.DepartureChanged(person_id=by, deployment_id=dep.id, planned_end=to, changed_at=NOW)

    with pytest.raises(PermanentError, match="not the sender's"):
        await apply(roster.on_departure_changed, moved(date(2026, 8, 1), by=uuid.uuid4()), db=db, clock=clock,
                    source="roster")
    with pytest.raises(PermanentError):
        await apply(roster.on_departure_changed, moved(NOW.date() - timedelta(days=1)), db=db, clock=clock,
                    source="roster")
    await apply(roster.on_departure_changed, moved(date(2026, 8, 1)), db=db, clock=clock, source="roster")
    async with db.read() as session:
        assert (await session.get(Deployment, dep.id)).planned_end == date(2026, 8, 1)  # type: ignore[union-attr]


async def test_a_handover_note_is_kept_against_the_post_and_revised_by_a_second_one(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, ROSTER_TABLES, "roster")
    person, dep = await _deployed(db)

    def note(advice: str) -> events.HandoverNoteSubmitted:
        return events.HandoverNoteSubmitted(person_id=person.id, deployment_id=dep.id, advice_to_successor=advice,
                                            submitted_at=NOW)

    first = await apply(roster.on_handover_submitted, note("Call the brigade first"), db=db, clock=clock,
                        source="roster")
    second = await apply(roster.on_handover_submitted, note("Call the brigade, then OCHA"), db=db, clock=clock,
                         source="roster")
    recorded = [e.decode() for e in first + second]
    assert [(type(r).__name__, r.revision) for r in recorded] == [("HandoverRecorded", 1),  # type: ignore[attr-defined]
                                                                  ("HandoverRecorded", 2)]
    assert {r.post_id for r in recorded} == {dep.post_id}  # type: ignore[attr-defined]
    with pytest.raises(PermanentError, match="not held by the sender"):
        await apply(roster.on_handover_submitted, events.HandoverNoteSubmitted(
            person_id=uuid.uuid4(), deployment_id=dep.id, submitted_at=NOW), db=db, clock=clock, source="roster")


# --- lessons --------------------------------------------------------------------------------

POLICY = DutyPolicy()


def _ended(person_id: uuid.UUID, deployment_id: uuid.UUID) -> events.DeploymentEnded:
    return events.DeploymentEnded(deployment_id=deployment_id, person_id=person_id, post_id=uuid.uuid4(), country="ml",
                                  region="ROWCA", role="cmcoord_officer", start=date(2026, 1, 5),
                                  planned_end=date(2026, 5, 31), ended_on=date(2026, 5, 31))


async def test_an_ended_deployment_owes_one_aar_due_as_the_settings_say(tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, LESSONS_TABLES, "lessons")
    person_id, deployment_id = uuid.uuid4(), uuid.uuid4()
    emitted = await apply(lessons.on_deployment_ended, _ended(person_id, deployment_id), db=db, clock=clock,
                          source="lessons", policy=POLICY, due_days=14)
    due = [e.decode() for e in emitted]
    assert len(due) == 1 and isinstance(due[0], events.AarDue)
    assert due[0].due_on == date(2026, 6, 14) and due[0].country == "ML" and due[0].region == "ROWCA"
    assert emitted[0].id == deterministic_id("aar.due", deterministic_id("aar", deployment_id))
    # the same end announced again (another event id: a re-announcement) owes nothing more
    assert await apply(lessons.on_deployment_ended, _ended(person_id, deployment_id), db=db, clock=clock,
                       source="lessons", policy=POLICY, due_days=14) == []
    async with db.read() as session:
        aars = (await session.exec(select(Aar))).all()
    assert [(a.state, a.next_at) for a in aars] == [("open", POLICY.at(date(2026, 6, 14), 0))]


async def test_a_submitted_aar_closes_what_was_owed_and_becomes_a_lesson(tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, LESSONS_TABLES, "lessons")
    await prepare(db)  # and its full-text index, which finds the earlier lessons it resembles
    person_id, deployment_id = uuid.uuid4(), uuid.uuid4()
    await apply(lessons.on_deployment_ended, _ended(person_id, deployment_id), db=db, clock=clock, source="lessons",
                policy=POLICY, due_days=14)
    aar_id = deterministic_id("aar", deployment_id)
    submitted = events.AarSubmitted(aar_id=aar_id, person_id=person_id, planned="Notify every convoy",
                                    happened="Two convoys went unannounced", difference="", sustain="",
                                    improve="Share the list with the checkpoint", themes=["hns4d"],
                                    classification="community", submitted_at=NOW)
    emitted = await apply(lessons.on_aar_submitted, submitted, db=db, clock=clock, source="lessons", threshold=0.5)
    assert sorted(e.type for e in emitted) == ["lessons.aar.completed", "lessons.item.recorded"]
    async with db.read() as session:
        aar = await session.get(Aar, aar_id)
        item = (await session.exec(select(Item))).one()
    assert aar is not None and aar.state == "submitted" and aar.next_at is None and aar.item_id == item.id
    assert item.kind == "aar" and "What was planned:\nNotify every convoy" in item.body and "sustain" not in item.body
    assert await apply(lessons.on_aar_submitted, submitted.model_copy(update={"happened": "again"}), db=db,
                       clock=clock, source="lessons", threshold=0.5) == []  # submitted once only


# --- notify ---------------------------------------------------------------------------------


async def _sent(db: Database, *, person_id: uuid.UUID, state: str = "sent") -> Notification:
    async with db.write() as session:
        n = Notification(id=uuid.uuid4(), kind="post.gapped", subject="post:1", occurrence="1", person_id=person_id,
                         person_name="Awa Traoré", chat_id=4242, text="The Mopti post is gapped.", state=state,
                         created_at=NOW - timedelta(hours=1), due_at=NOW + timedelta(hours=4), due_action="remind")
        session.add(n)
    return n


async def test_a_reply_from_the_recipient_acknowledges_and_ends_what_was_due(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    person_id = uuid.uuid4()
    n = await _sent(db, person_id=person_id)
    stranger = events.NotificationReplied(notification_id=n.id, person_id=uuid.uuid4(), reply="ack", replied_at=NOW)
    assert await apply(notify.on_replied, stranger, db=db, clock=clock, source="notify") == []
    replied = events.NotificationReplied(notification_id=n.id, person_id=person_id, reply="ack",
                                         replied_at=NOW - timedelta(minutes=2))
    emitted = [e.decode() for e in await apply(notify.on_replied, replied, db=db, clock=clock, source="notify")]
    assert [(t.from_state, t.to_state) for t in emitted if isinstance(t, events.NotificationTransitioned)] == [
        ("sent", "acknowledged")]
    async with db.read() as session:
        stored = await session.get(Notification, n.id)
    assert stored is not None and stored.acknowledged_at is not None and stored.due_at is None
    assert stored.acknowledged_at.replace(tzinfo=UTC) == NOW - timedelta(minutes=2)  # when pressed, not when heard


async def test_a_delivery_is_sent_when_telegram_took_it_not_when_notify_heard(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    n = await _sent(db, person_id=uuid.uuid4(), state="queued")
    accepted = envelope_of(events.DeliverySent(notification_id=n.id, attempt=1, person_id=n.person_id, message_id=7),
                           at=NOW - timedelta(seconds=30))
    clock.advance(timedelta(minutes=5))  # notify hears of it later (a backlog)
    await apply(notify.on_delivery_sent, accepted, db=db, clock=clock, source="notify")
    async with db.read() as session:
        stored = await session.get(Notification, n.id)
    assert stored is not None and stored.state == "sent"
    assert stored.sent_at is not None and stored.sent_at.replace(tzinfo=UTC) == NOW - timedelta(seconds=30)


async def test_in_a_batch_each_delivery_is_timed_by_its_own_event(tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    first, second = [await _sent(db, person_id=uuid.uuid4(), state="queued") for _ in range(2)]
    batch = [envelope_of(events.DeliverySent(notification_id=n.id, attempt=1, person_id=n.person_id, message_id=i),
                         at=NOW - timedelta(seconds=60 - 20 * i)) for i, n in enumerate((first, second))]
    await apply_batch({events.DeliverySent: notify.on_delivery_sent}, batch, db=db, clock=clock, source="notify")
    async with db.read() as session:
        sent = [(await session.get(Notification, n.id)).sent_at.replace(tzinfo=UTC)  # type: ignore[union-attr]
                for n in (first, second)]
    assert sent == [NOW - timedelta(seconds=60), NOW - timedelta(seconds=40)]


async def test_a_batch_of_reports_reads_its_notifications_once_and_applies_each_as_alone(
        tmp_path: Path, clock: ManualClock) -> None:
    """The fan-out's reports: the prefetch locks the batch's notifications in one query; sent then
    acknowledged in the same batch, a failure, and a report of a notification notify never made."""
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    first, second = [await _sent(db, person_id=uuid.uuid4(), state="queued") for _ in range(2)]
    batch = [
        envelope_of(events.DeliverySent(notification_id=first.id, attempt=1, person_id=first.person_id, message_id=1),
                    at=NOW),
        envelope_of(events.NotificationReplied(notification_id=first.id, person_id=first.person_id, reply="ack",
                                               replied_at=NOW), at=NOW),
        envelope_of(events.DeliveryFailed(notification_id=second.id, attempt=1, person_id=second.person_id,
                                          reason="blocked"), at=NOW),
        envelope_of(events.DeliverySent(notification_id=uuid.uuid4(), attempt=1, person_id=uuid.uuid4(), message_id=3),
                    at=NOW),
    ]
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "WHERE notification.id " in statement:
            reads.append(statement)

    sqlalchemy_event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await apply_batch({events.DeliverySent: notify.on_delivery_sent, events.NotificationReplied: notify.on_replied,
                           events.DeliveryFailed: notify.on_delivery_failed}, batch, db=db, clock=clock,
                          source="notify", prefetch=notify.prefetch_notifications)
    finally:
        sqlalchemy_event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    # one read for the batch; the unknown one is read again (it may have been made since), the others are not
    assert [r.split("WHERE", 1)[1].split()[:2] for r in reads] == [["notification.id", "IN"], ["notification.id", "="]]
    async with db.read() as session:
        states = [(await session.get(Notification, n.id)).state for n in (first, second)]  # type: ignore[union-attr]
    assert states == ["acknowledged", "failed"]


# --- notify: roster facts, looked up before the transaction ----------------------------------


class FakeRoster:
    """The roster as notify's lookups ask it (services/notify/recipients.py): by id, and role holders."""

    def __init__(self, people: list[Recipient], holders: dict[str, list[Recipient]] | None = None) -> None:
        self.by_id = {p.person_id: p for p in people}
        self.by_role = holders or {}
        self.answering = True
        self.asked: list[str] = []

    async def people(self, person_ids: Sequence[uuid.UUID]) -> list[Recipient]:
        self.asked.append("people")
        if not self.answering:
            raise QueryError("503", "no responders")
        return [self.by_id[i] for i in person_ids if i in self.by_id]

    async def holders(self, role: str, region: str | None = None, country: str | None = None) -> list[Recipient]:
        """`holders` keyed by role, or by "role in CC" for a country's."""
        self.asked.append(f"holders {role}" + (f" in {country}" if country else "") + (f" of {region}" if region else ""))
        if not self.answering:
            raise QueryError("503", "no responders")
        return self.by_role.get(f"{role} in {country}" if country else role, [])


def _recipient(name: str, chat_id: int | None) -> Recipient:
    return Recipient(person_id=uuid.uuid4(), name=name, telegram_user_id=chat_id, timezone="Africa/Dakar",
                     regions=("ROWCA",))


def _gapped() -> events.PostGapped:
    return events.PostGapped(post_id=uuid.uuid4(), country="ML", region="ROWCA", title="CMCoord Officer",
                             duty_station="Mopti", gapped_since=date(2026, 5, 30), alert_number=1)


async def test_a_gapped_post_is_one_alert_to_the_advisers_and_the_desk_and_redelivery_adds_nothing(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    adviser, desk = _recipient("Awa", 101), _recipient("Desk officer", 202)
    fake = FakeRoster([], {"regional_adviser": [adviser], "cmcs_desk": [desk]})
    fact = envelope_of(_gapped(), at=NOW)
    lookup = partial(notify_facts.find_gapped, roster=fake)
    emitted = [e.decode() for e in await apply(notify_facts.on_found, fact, lookup=lookup, db=db, clock=clock,
                                               source="notify")]
    sent = [e for e in emitted if isinstance(e, events.DeliverTelegram)]
    assert sorted(d.chat_id for d in sent) == [101, 202]
    async with db.read() as session:
        stored = (await session.exec(select(Notification))).all()
    assert {n.person_id for n in stored} == {adviser.person_id, desk.person_id}
    assert all(n.kind == "post.gapped" and n.group_id is not None for n in stored)  # each role: one alert
    assert await apply(notify_facts.on_found, fact, lookup=lookup, db=db, clock=clock, source="notify") == []


async def test_a_roster_that_does_not_answer_brings_the_fact_back_later_with_nothing_written(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    fake = FakeRoster([], {"regional_adviser": [_recipient("Awa", 101)]})
    fake.answering = False
    fact = envelope_of(_gapped(), at=NOW)
    lookup = partial(notify_facts.find_gapped, roster=fake)
    with pytest.raises(TransientError):
        await apply(notify_facts.on_found, fact, lookup=lookup, db=db, clock=clock, source="notify")
    fake.answering = True  # back: the same fact, redelivered, is applied in full
    emitted = await apply(notify_facts.on_found, fact, lookup=lookup, db=db, clock=clock, source="notify")
    assert [e.decode().chat_id for e in emitted if e.type == events.DeliverTelegram.type] == [101]  # type: ignore[attr-defined]


async def test_the_bot_may_request_only_an_adhoc_message_and_is_dead_lettered_otherwise(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    fake = FakeRoster([], {"cmcs_desk": [_recipient("Desk officer", 202)]})
    request = events.NotificationRequested(kind="post.gapped", about="x", occurrence="1", text="Ring the desk",
                                           role="cmcs_desk")
    from_bot = Envelope.wrap(request, source="bot", occurred_at=NOW)
    with pytest.raises(PermanentError, match="the bot may request"):
        await apply(notify_facts.on_found, from_bot, lookup=partial(notify_facts.find_requested, roster=fake), db=db,
                    clock=clock, source="notify")
    assert fake.asked == []  # refused before anyone was asked
    from_lessons = Envelope.wrap(request, source="lessons", occurred_at=NOW)
    emitted = await apply(notify_facts.on_found, from_lessons, lookup=partial(notify_facts.find_requested, roster=fake), db=db,
                          clock=clock, source="notify")
    assert [e.type for e in emitted].count(events.DeliverTelegram.type) == 1


async def test_a_review_goes_to_the_country_s_officers_and_to_the_region_s_when_the_country_has_none(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    in_mali, in_niger = _recipient("Awa", 101), _recipient("Issa", 102)
    fake = FakeRoster([], {"cmcoord_officer in ML": [in_mali], "cmcoord_officer": [in_mali, in_niger]})

    async def told(country: str, region: str | None = "ROWCA") -> list[int]:
        request = events.NotificationRequested(kind="hns4d.review", about=f"record-{country}", occurrence="1",
                                               text="A movement to review", role="cmcoord_officer", region=region,
                                               country=country)
        emitted = await apply(notify_facts.on_found, Envelope.wrap(request, source="hns4d", occurred_at=NOW),
                              lookup=partial(notify_facts.find_requested, roster=fake), db=db, clock=clock,
                              source="notify")
        return sorted(e.decode().chat_id for e in emitted if e.type == events.DeliverTelegram.type)  # type: ignore[attr-defined]

    assert await told("ML") == [101]  # Mali's officer, not Niger's
    assert fake.asked == ["holders cmcoord_officer in ML of ROWCA"]
    assert await told("BF") == [101, 102]  # nobody in Burkina Faso: the region's officers
    assert fake.asked[1:] == ["holders cmcoord_officer in BF of ROWCA", "holders cmcoord_officer of ROWCA"]
    assert await told("NE", region=None) == [101, 102]  # no region said: the country's, never the world's
    assert fake.asked[3:] == ["holders cmcoord_officer in NE", "holders cmcoord_officer of ROWCA"]
    assert await told("XK", region=None) == []  # a country in no known region: the adviser step is skipped
    assert fake.asked[5:] == ["holders cmcoord_officer in XK", "holders cmcs_desk"]


async def test_a_handover_campaign_does_not_start_for_a_note_already_written(
        tmp_path: Path, clock: ManualClock) -> None:
    db = await store(tmp_path, NOTIFY_TABLES, "notify")
    officer = _recipient("Awa", 101)
    fake = FakeRoster([officer])
    ending = events.DeploymentEndingSoon(deployment_id=uuid.uuid4(), person_id=officer.person_id, post_id=uuid.uuid4(),
                                         country="ML", region="ROWCA", role="cmcoord_officer", start=date(2026, 1, 5),
                                         planned_end=date(2026, 6, 30), days_left=29)
    written = events.HandoverRecorded(note_id=uuid.uuid4(), deployment_id=ending.deployment_id,
                                      person_id=officer.person_id, post_id=ending.post_id, revision=1)
    await apply(notify_facts.on_handover_recorded, written, lookup=partial(notify_facts.find_successors, roster=fake, db=db),
                db=db, clock=clock, source="notify")
    emitted = await apply(notify_facts.on_ending_soon, ending, lookup=partial(notify_facts.find_ending_soon, roster=fake),
                          db=db, clock=clock, source="notify")
    assert emitted == []
    async with db.read() as session:
        assert (await session.exec(select(Notification))).all() == []


def test_a_consumer_with_lookups_applies_its_events_one_at_a_time() -> None:
    with pytest.raises(ValueError, match="one at a time"):
        Consumes("ROSTER", {events.PostGapped: notify_facts.on_found}, lookup={events.PostGapped: notify_facts.find_gapped},
                 batched=True)
