"""The lessons store on SQLite (FTS5) and PostgreSQL (tsvector): search with filters over
10,000 lessons, the classification for every role, review steps, recurrence links."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.lessons import handlers, lifecycle, samples, search, store
from services.lessons.classification import Viewer
from services.lessons.models import Item, ReviewStep
from shared import events
from shared.clock import ManualClock
from shared.store import Database

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
N = 10_000


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(database_url or f"sqlite+aiosqlite:///{tmp_path / 'lessons.db'}")
    await store.prepare(database)
    yield database
    await database.dispose()


@pytest.fixture
async def loaded(db: Database) -> list[Item]:
    items = samples.generate(N)
    await samples.load(db, items)
    return items


AUTHOR_VIEW = 0  # index of the generated author whose view is checked


def roles(items: list[Item]) -> dict[str, Viewer]:
    author = items[AUTHOR_VIEW].author_id
    return {"public": Viewer(), "community": Viewer(person_id=uuid.uuid4(), member=True),
            "author": Viewer(person_id=author, member=True),
            "former_author": Viewer(person_id=author),  # left the community: public, and what they wrote
            "adviser": Viewer(person_id=uuid.uuid4(), member=True, adviser_regions=frozenset({"ROWCA"})),
            "desk": Viewer(member=True, desk=True)}


def expected(items: list[Item], viewer: Viewer, **f: object) -> set[str]:
    def keep(i: Item) -> bool:
        if not viewer.can_see(classification=i.classification, author_id=i.author_id, region=i.region):
            return False
        if i.status == "merged" and f.get("status") != "merged":
            return False
        if f.get("status") and i.status != f["status"]:
            return False
        if f.get("theme") and f["theme"] not in i.theme_list:
            return False
        if f.get("country") and i.country != f["country"]:
            return False
        if f.get("region") and i.region != f["region"]:
            return False
        if f.get("word") and f"the {f['word']}," not in i.body:
            return False
        day = i.created_at.date()
        return not ((f.get("since") and day < f["since"]) or (f.get("until") and day > f["until"]))  # type: ignore[operator]
    return {i.reference for i in items if keep(i)}


CASES = [
    {},
    {"word": "airstrip"},
    {"word": "ferry", "theme": "access"},
    {"theme": "hns4d", "region": "ROWCA", "status": "identified"},
    {"country": "ML", "since": date(2025, 4, 1), "until": date(2025, 6, 30)},
    {"word": "warehouse", "country": "YE", "status": "learned", "since": date(2026, 1, 1)},
    {"word": "bridge", "since": date(2025, 7, 1), "until": date(2025, 9, 30), "theme": "poc"},  # a quarter
    {"word": "helipad", "since": date(2026, 2, 1), "until": date(2026, 2, 28)},  # a month
]


async def test_search_with_filters_matches_the_data_for_every_role(db: Database, loaded: list[Item]) -> None:
    for name, viewer in roles(loaded).items():
        for case in CASES:
            filters = search.Filters(query=str(case.get("word", "")), theme=case.get("theme"),  # type: ignore[arg-type]
                                    country=case.get("country"), region=case.get("region"),  # type: ignore[arg-type]
                                    status=case.get("status"), since=case.get("since"),  # type: ignore[arg-type]
                                    until=case.get("until"))  # type: ignore[arg-type]
            want = expected(loaded, viewer, **case)
            found = await search.find(db, viewer=viewer, filters=filters, limit=None)
            assert found.total == len(want), (name, case)
            assert {i.reference for i in found.items} == want, (name, case)
            assert all(viewer.can_see(classification=i.classification, author_id=i.author_id, region=i.region)
                       for i in found.items)


async def test_the_restricted_share_is_seen_only_by_author_adviser_and_desk(db: Database, loaded: list[Item]) -> None:
    counts = {}
    for name, viewer in roles(loaded).items():
        found = await search.find(db, viewer=viewer, filters=search.Filters(), limit=None)
        counts[name] = sum(i.classification == "restricted" for i in found.items)
    restricted = [i for i in loaded if i.classification == "restricted" and i.status != "merged"]
    assert counts["public"] == counts["community"] == 0
    assert counts["author"] == counts["former_author"] == sum(
        i.author_id == loaded[AUTHOR_VIEW].author_id for i in restricted) > 0
    assert counts["adviser"] == sum(i.region == "ROWCA" for i in restricted) > 0
    assert counts["desk"] == len(restricted)


async def test_stemmed_words_and_ranked_results(db: Database, loaded: list[Item]) -> None:
    found = await search.find(db, viewer=Viewer(member=True, desk=True),
                               filters=search.Filters(query="evacuations helicopter"), limit=5)
    assert found.total > 0 and len(found.items) == 5
    assert all("helicopters for an evacuation" in i.body for i in found.items)


def report(text: str, *, country: str, themes: list[str], at: datetime, person: uuid.UUID | None = None,
           classification: str = "community") -> events.ReportSubmitted:
    rid = uuid.uuid4()
    return events.ReportSubmitted(report_id=rid, reference=f"R-{rid.hex[:8].upper()}", person_id=person or uuid.uuid4(),
                                  text=text, country=country, themes=themes, classification=classification,  # type: ignore[arg-type]
                                  submitted_at=at)


async def test_review_steps_are_recorded_with_who_and_when(db: Database) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    async with db.unit_of_work(source="test", clock=clock) as uow:
        first = await handlers.record_report(uow, report("Convoys turned back at the Mopti bridge", country="ML",
                                                      themes=["access"], at=clock.now()), threshold=0.3)
        dup = await handlers.record_report(uow, report("Mopti bridge checkpoint turned convoys back", country="ML",
                                                    themes=["access"], at=clock.now()), threshold=0.3)
    assert first is not None and dup is not None
    steps = [("tagged", {"themes": ["hns4d"]}), ("identified", {"note": "seen in three rotations"}),
             ("learned", {"note": "Notification guidance updated (section 4)"})]
    for action, kw in steps:
        clock.advance(timedelta(hours=1))
        async with db.unit_of_work(source="test", clock=clock) as uow:
            item = await handlers.review(uow, ref=first.reference, action=action, by="maria@ocha.example", **kw)  # type: ignore[arg-type]
    async with db.unit_of_work(source="test", clock=clock) as uow:
        await handlers.review(uow, ref=dup.reference, action="merged", by="maria@ocha.example", into=first.reference)
        with pytest.raises(lifecycle.ReviewRefused):
            await handlers.review(uow, ref=first.reference, action="identified", by="maria@ocha.example")
    async with db.read() as session:
        item = await store.item_by_reference(session, first.reference)
        history = await store.history(session, first.id)
        merged = await store.item_by_reference(session, dup.reference)
        themed = await search.find(db, viewer=Viewer(member=True), filters=search.Filters(theme="hns4d"))
        hidden = await search.find(db, viewer=Viewer(member=True), filters=search.Filters(query="Mopti"))
    assert item is not None and merged is not None
    assert (item.status, item.action, item.themes) == ("learned", "Notification guidance updated (section 4)",
                                                       "access hns4d")
    assert [(s.action, s.by, s.at.replace(tzinfo=None)) for s in history] == [
        (a, "maria@ocha.example", (datetime(2026, 3, 2, 9) + timedelta(hours=h + 1))) for h, (a, _) in enumerate(steps)]
    assert all(isinstance(s, ReviewStep) for s in history)
    assert (merged.status, merged.merged_into) == ("merged", first.id)
    assert [i.reference for i in themed.items] == [first.reference]
    assert [i.reference for i in hidden.items] == [first.reference]  # the duplicate left the results


async def test_a_problem_back_in_another_country_is_linked_to_the_earlier_one(db: Database) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    texts = [("ML", ["access"], "Convoys notified 72 hours ahead were turned back at the Mopti bridge checkpoint"),
             ("TH", ["natural_disasters"], "Flood response: the air force evacuated villages by helicopter"),
             ("NE", ["access", "hns4d"], "A checkpoint near Niamey turned back convoys although they were notified "
                                         "in advance")]
    made = []
    for country, themes, text in texts:
        clock.advance(timedelta(days=30))
        async with db.unit_of_work(source="test", clock=clock) as uow:
            made.append(await handlers.record_report(uow, report(text, country=country, themes=themes, at=clock.now()),
                                                  threshold=0.3))
            recorded = [e for e in uow.emitted if e.type == "lessons.item.recorded"]
        assert len(recorded) == 1
    assert recorded[0].data["similar_to"] == [str(made[0].id)]  # type: ignore[union-attr]
    async with db.read() as session:
        links = await store.links_of(session, [made[2].id])  # type: ignore[union-attr]
    assert links == [(made[2].id, made[0].id)]  # type: ignore[union-attr]


async def test_a_page_counts_up_to_its_cap_and_lists_the_latest_when_more_match(
        db: Database, loaded: list[Item]) -> None:
    viewer = roles(loaded)["community"]
    broad = await search.find(db, viewer=viewer, filters=search.Filters(query="airstrip"), limit=5)
    narrow = await search.find(db, viewer=viewer, filters=search.Filters(
        query="airstrip", country="ML", status="identified", since=date(2026, 1, 1), until=date(2026, 12, 31)),
        limit=5)
    want = expected(loaded, viewer, word="airstrip")
    latest = sorted((i for i in loaded if i.reference in want), key=lambda i: i.seq or 0)[-5:]
    assert len(want) > search.COUNT_CAP and broad.total == search.COUNT_CAP + 1 and broad.more_than_counted
    assert broad.newest_first and [i.reference for i in broad.items] == [i.reference for i in reversed(latest)]
    few = expected(loaded, viewer, word="airstrip", country="ML", status="identified", since=date(2026, 1, 1),
                   until=date(2026, 12, 31))
    assert narrow.total == len(few) and not narrow.newest_first
    assert {i.reference for i in narrow.items} <= few and len(narrow.items) == min(5, len(few))
