"""Lessons search in English, French and Arabic on SQLite (FTS5) and PostgreSQL (tsvector):
reports recorded as the service records them, searched as a person would; a store made
before stems were indexed is re-indexed by its migration."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.lessons import handlers, search, store
from services.lessons.classification import Viewer
from services.lessons.models import LESSONS_TABLES, Item
from shared import events
from shared.clock import ManualClock
from shared.migrations import migrate
from shared.store import Database

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

REPORTS = {
    "R-FRACCES": "Les convois humanitaires n'ont pas pu accéder au camp de Bentiu pendant trois jours.",
    "R-FRAUTRE": "Il faut accélérer la distribution des vivres et accepter l'escorte de la police.",
    "R-ARHOSP": "نقل الجرحى إلى المستشفيات بعد إغلاق الطرق",
    "R-ARWUSUL": "سمح الجيش بالوصول إلى المخيم بعد التنسيق مع الأمم المتحدة",
    "R-ENBRIDGE": "Convoys were turned back at the Mopti bridge checkpoint by the armed forces.",
}
DESK = Viewer(member=True, desk=True)


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(database_url or f"sqlite+aiosqlite:///{tmp_path / 'lessons.db'}")
    yield database
    await database.dispose()


async def record(db: Database, reports: dict[str, str]) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    for reference, text in reports.items():
        clock.advance(timedelta(hours=1))
        async with db.unit_of_work(source="test", clock=clock) as uow:
            await handlers.record_report(uow, events.ReportSubmitted(
                report_id=uuid.uuid4(), reference=reference, person_id=uuid.uuid4(), text=text, country="SS",
                themes=["access"], classification="community", submitted_at=clock.now()), threshold=0.3)


async def found(db: Database, query: str, **filters: str) -> set[str]:
    page = await search.find(db, viewer=DESK, filters=search.Filters(query=query, **filters), limit=None)
    assert page.total == len(page.items)
    return {i.reference for i in page.items}


@pytest.mark.parametrize(("query", "wanted"), [
    ("accès", {"R-FRACCES"}),  # the noun finds its verb, "accéder", and not accélérer, accepter
    ("acces camp", {"R-FRACCES"}),  # typed without the accent
    ("convoi", {"R-FRACCES"}),  # "convois"
    ("accélérer", {"R-FRAUTRE"}),
    ("مستشفى", {"R-ARHOSP"}),  # a hospital: the hospitals
    ("الطريق", set()),  # the road (singular) is not the roads' broken plural
    ("الوصول", {"R-ARWUSUL"}),  # access: "with access"
    ("وصول التنسيق", {"R-ARWUSUL"}),
    ("convoy checkpoints", {"R-ENBRIDGE"}),  # English as before
    ("bridges", {"R-ENBRIDGE"}),
    ("policy", set()),  # the French report's "police" is not a policy
])
async def test_a_query_finds_the_forms_of_its_words_in_three_languages(db: Database, query: str,
                                                                        wanted: set[str]) -> None:
    await store.prepare(db)
    await record(db, REPORTS)
    assert await found(db, query) == wanted


async def test_filters_and_the_recurrence_search_work_on_stems(db: Database) -> None:
    await store.prepare(db)
    await record(db, {**REPORTS, "R-FRAGAIN": "Les convois n'ont toujours pas accès au camp de Bentiu."})
    assert await found(db, "accès", country="SS", status="new") == {"R-FRACCES", "R-FRAGAIN"}
    assert await found(db, "accès", country="ML") == set()
    async with db.read() as session:
        again = await store.item_by_reference(session, "R-FRAGAIN")
        first = await store.item_by_reference(session, "R-FRACCES")
        assert again is not None and first is not None
        assert (first.id, again.id) in {(b, a) for a, b in await store.links_of(session, [again.id])}


# lesson_item as revision 0001 made it: without the terms
ITEM_AT_0001 = sa.Table("lesson_item", sa.MetaData(), *(
    sa.Column(c.name, c.type, primary_key=c.primary_key) for c in Item.__table__.columns  # type: ignore[attr-defined]
    if c.name not in {"title_terms", "body_terms"}))


async def test_the_migration_indexes_the_stored_items_anew(db: Database) -> None:
    await migrate(db, package="services.lessons", service="lessons", tables=LESSONS_TABLES, revision="0001")
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    rows = []
    for n, (reference, text) in enumerate(REPORTS.items()):
        item = search.fill_index(Item(id=uuid.uuid4(), reference=reference, kind="observation", author_id=uuid.uuid4(),
                                      country="SS", region="ROSEA", themes="access", classification="community",
                                      title=text[:60], body=text, created_at=at + timedelta(minutes=n)))
        rows.append(item.model_dump(exclude={"seq", "title_terms", "body_terms"}))
    async with db.engine.begin() as conn:
        await conn.execute(ITEM_AT_0001.insert(), rows)
    await migrate(db, package="services.lessons", service="lessons", tables=LESSONS_TABLES)
    assert await found(db, "accès") == {"R-FRACCES"}
    assert await found(db, "مستشفى") == {"R-ARHOSP"}
    assert await found(db, "convoy checkpoints") == {"R-ENBRIDGE"}
    await record(db, {"R-FRNEW": "Le convoi a pu accéder au camp le lendemain."})  # and what comes after
    assert await found(db, "accès") == {"R-FRACCES", "R-FRNEW"}
