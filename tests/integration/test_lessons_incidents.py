"""Incidents HNS4D records, in lessons (real nats-server, SQLite): each one a restricted observation,
once however often it comes, found by its notification's reference by those who may read it and by
nobody else; linked to an earlier incident like it, never for the words every incident shares."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from services.lessons import bootstrap as lessons_bootstrap
from services.lessons import search
from services.lessons.classification import Viewer
from services.lessons.handlers import HNS4D_AUTHOR
from services.lessons.models import Item, ItemLink
from shared import events
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import Envelope
from shared.natsserver import NatsServer
from tests.helpers import eventually, published
from tests.integration.test_lessons import started_lessons

OFFICER, OTHER_OFFICER = uuid.uuid4(), uuid.uuid4()
STOPPED = "A convoy of three trucks was stopped at the checkpoint and turned back after two hours."


@pytest.fixture
async def lessons(tmp_path: Path, nats_server: NatsServer,
                  clock: ManualClock) -> AsyncIterator[lessons_bootstrap.LessonsApp]:
    app = await started_lessons(tmp_path, nats_server.url, clock)  # without notify: nothing here tells anyone
    yield app
    await app.stop()


def incident(clock: ManualClock, *, reference: str = "HN-ML-2026-0001", what: str = STOPPED,
             recorded_by: uuid.UUID | None = OFFICER) -> events.IncidentRecorded:
    return events.IncidentRecorded(
        incident_id=uuid.uuid4(), record_id=uuid.uuid4(), reference=reference, country="ML",
        region="ROWCA", party_id=uuid.uuid4(), occurred_at=datetime(2026, 3, 12, 10, 30, tzinfo=UTC),
        what=what, recorded_by=recorded_by, recorded_at=clock.now())


def from_hns4d(event: events.Event) -> Envelope:
    return Envelope.wrap(event, source="hns4d", occurred_at=datetime.now(UTC))


async def caught_up(bus: Bus, seq: int) -> bool:
    """lessons has handled (and acknowledged) everything on HNS4D up to `seq`."""
    info = await bus.js.consumer_info("HNS4D", "lessons--on_hns4d")
    return bool(info.delivered.stream_seq >= seq and info.num_ack_pending == 0 and info.num_pending == 0)


async def items(app: lessons_bootstrap.LessonsApp) -> list[Item]:
    async with app.db.read() as session:
        return list((await session.exec(select(Item).order_by(Item.seq))).all())  # type: ignore[arg-type]


async def found_by(app: lessons_bootstrap.LessonsApp, viewer: Viewer, query: str) -> set[str]:
    page = await search.find(app.db, viewer=viewer, filters=search.Filters(query=query))
    return {i.reference for i in page.items}


async def test_an_incident_is_one_restricted_observation_found_by_its_reference(
    lessons: lessons_bootstrap.LessonsApp, bus: Bus, clock: ManualClock,
) -> None:
    e = incident(clock)
    envelope = from_hns4d(e)
    await bus.publish(envelope)
    await bus.publish(envelope)  # the same envelope again (the stream keeps it once)
    await bus.publish_raw(envelope.subject, envelope.to_bytes(), msg_id="replayed")  # past the stream: the consumer's
    seq = await bus.publish(from_hns4d(e))  # announced again by HNS4D: another envelope, the same incident
    await eventually(lambda: caught_up(bus, seq), what="lessons handled the incident four times over")

    [item] = await items(lessons)
    assert (item.id, item.kind, item.classification) == (
        events.deterministic_id("hns4d.incident.item", e.incident_id), "observation", "restricted")
    assert (item.country, item.region, item.theme_list, item.author_id) == ("ML", "ROWCA", ["hns4d"], OFFICER)
    assert item.title == "Incident on humanitarian notification HN-ML-2026-0001" and item.tags == "HN-ML-2026-0001"
    assert item.body == f"{STOPPED}\n\n2026-03-12 10:30 UTC, HN-ML-2026-0001"
    assert item.reference.startswith("R-") and len(item.reference) == 10 and item.created_at == clock.now()
    assert str(e.party_id) not in item.body + item.title + item.tags
    [recorded] = await published(bus.js, "LESSONS", "lessons.item.recorded", 1)
    assert recorded.data == {
        "item_id": str(item.id), "reference": item.reference, "kind": "observation", "country": "ML",
        "region": "ROWCA", "themes": ["hns4d"], "classification": "restricted", "similar_to": []}

    # found by its notification's reference by those who may read it, and by nobody else
    other = await bus.publish(from_hns4d(incident(clock, reference="HN-ML-2026-0002", recorded_by=None,
                                                  what="A party's patrol entered the notified health centre.")))
    await eventually(lambda: caught_up(bus, other), what="the second incident handled")
    anonymous = (await items(lessons))[1]
    assert anonymous.author_id == HNS4D_AUTHOR and anonymous.classification == "restricted"
    recorded_twice = await published(bus.js, "LESSONS", "lessons.item.recorded", 2)
    assert sorted(r.data["reference"] for r in recorded_twice) == sorted([item.reference, anonymous.reference])
    for viewer in (Viewer(member=True, desk=True), Viewer(person_id=OFFICER, member=True),
                   Viewer(member=True, adviser_regions=frozenset({"ROWCA"}))):
        assert await found_by(lessons, viewer, "HN-ML-2026-0001") == {item.reference}, viewer
    for viewer in (Viewer(), Viewer(member=True), Viewer(member=True, adviser_regions=frozenset({"ROAP"}))):
        assert await found_by(lessons, viewer, "HN-ML-2026-0001") == set(), viewer
    public = await public_search(bus, "HN-ML-2026-0001")
    assert public["total"] == 0 and public["items"] == [] and public["rights_unknown"] is False


async def public_search(bus: Bus, query: str) -> dict[str, Any]:
    """lessons' search over NATS without saying who asks: the public's."""
    return dict(await bus.request("cmcoord.lessons.svc.search", {"query": query}, timeout=5))


async def test_an_incident_like_an_earlier_one_is_linked_to_it_and_only_then(
    lessons: lessons_bootstrap.LessonsApp, bus: Bus, clock: ManualClock,
) -> None:
    await bus.publish(from_hns4d(incident(clock, what="Convoy stopped at Sévaré checkpoint.")))
    clock.advance(timedelta(hours=1))
    await bus.publish(from_hns4d(incident(clock, reference="HN-ML-2026-0002", recorded_by=OTHER_OFFICER,
                                          what="Warehouse shelled overnight.")))  # nothing alike but the form
    clock.advance(timedelta(hours=1))
    last = await bus.publish(from_hns4d(incident(clock, reference="HN-ML-2026-0003", recorded_by=OTHER_OFFICER,
                                                 what="Convoy stopped again at Sévaré checkpoint.")))
    await eventually(lambda: caught_up(bus, last), what="three incidents handled")
    first, shelled, again = await items(lessons)
    async with lessons.db.read() as session:
        links = {(link.item_id, link.similar_id) for link in (await session.exec(select(ItemLink))).all()}
    assert links == {(again.id, first.id)} and shelled.id not in {i for pair in links for i in pair}
    recorded = await published(bus.js, "LESSONS", "lessons.item.recorded", 3)
    assert {e.data["reference"]: e.data["similar_to"] for e in recorded} == {
        first.reference: [], shelled.reference: [], again.reference: [str(first.id)]}
