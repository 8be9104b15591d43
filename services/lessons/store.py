"""The lessons store: items and their full-text index, AARs owed, review steps.

Full-text search is SQLite FTS5 (an external-content index kept by triggers, so
any insert is indexed) or, on PostgreSQL, a generated tsvector column with a GIN
index. Both stem English words; a query's words must all match.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, column, func, literal_column, or_, table, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.lessons import lifecycle, recurrence
from services.lessons.classification import Viewer
from services.lessons.duties import DutyPolicy
from services.lessons.models import (
    LESSONS_TABLES,
    Aar,
    Item,
    ItemLink,
    ItemTheme,
    ReviewStep,
)
from shared import events
from shared.regions import region_for_country
from shared.store import Database, UnitOfWork
from shared.themes import THEMES, reference

SOURCE = "lessons"
TITLE_MAX = 120
WORD = re.compile(r"\w+", re.UNICODE)

SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS item_fts USING fts5(title, body, content='lesson_item', content_rowid='seq', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_insert AFTER INSERT ON lesson_item BEGIN "
    "INSERT INTO item_fts(rowid, title, body) VALUES (new.seq, new.title, new.body); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_delete AFTER DELETE ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title, body) VALUES ('delete', old.seq, old.title, old.body); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_update AFTER UPDATE OF title, body ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title, body) VALUES ('delete', old.seq, old.title, old.body); "
    "INSERT INTO item_fts(rowid, title, body) VALUES (new.seq, new.title, new.body); END",
)
POSTGRES_SEARCH = (
    "ALTER TABLE lesson_item ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS "
    "(setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')) STORED",
    "CREATE INDEX IF NOT EXISTS lesson_item_search ON lesson_item USING gin (search)",
)
_FTS = table("item_fts", column("rowid"), column("rank"))


async def prepare(db: Database) -> None:
    """Tables and the full-text index (idempotent)."""
    await db.create_tables(LESSONS_TABLES)
    async with db.engine.begin() as conn:
        for ddl in SQLITE_SEARCH if db.is_sqlite else POSTGRES_SEARCH:
            await conn.exec_driver_sql(ddl)


def title_of(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= TITLE_MAX else first[: TITLE_MAX - 1].rsplit(" ", 1)[0] + "…"


def clean_themes(themes: Sequence[str]) -> list[str]:
    return [t for t in dict.fromkeys(themes) if t in THEMES]


# --- recording --------------------------------------------------------------


async def _unique_reference(session: AsyncSession, wanted: str, item_id: uuid.UUID) -> str:
    taken = (await session.exec(select(Item.id).where(Item.reference == wanted))).first()
    return wanted if taken is None or taken == item_id else f"{wanted}-{item_id.hex[:4].upper()}"


async def _add_item(uow: UnitOfWork, item: Item, *, threshold: float) -> Item | None:
    """Store a new item with its themes and links to earlier ones it resembles; None if it exists."""
    session = uow.session
    if (await session.exec(select(Item).where(Item.id == item.id))).first() is not None:
        return None
    item.reference = await _unique_reference(session, item.reference, item.id)
    similar = await similar_to(session, item, threshold=threshold)
    session.add(item)
    await session.flush()  # the row id the theme rows and the full-text index point to
    assert item.seq is not None
    session.add_all([ItemTheme(theme=t, item_seq=item.seq) for t in item.theme_list])
    session.add_all([ItemLink(item_id=item.id, similar_id=other, score=score) for other, score in similar])
    uow.emit(events.LessonRecorded(
        item_id=item.id, reference=item.reference, kind=item.kind, country=item.country,  # type: ignore[arg-type]
        region=item.region, themes=item.theme_list, classification=item.classification,  # type: ignore[arg-type]
        similar_to=[other for other, _ in similar]), id=events.deterministic_id("lesson.recorded", item.id))
    return item


async def record_report(uow: UnitOfWork, e: events.ReportSubmitted, *, threshold: float) -> Item | None:
    country = e.country.upper()
    item = Item(id=e.report_id, reference=e.reference, kind="observation", author_id=e.person_id, country=country,
                region=region_for_country(country), themes=" ".join(clean_themes(e.themes)),
                classification=e.classification, title=title_of(e.text), body=e.text.strip(),
                attachment_kind=e.attachment_kind, attachment_file_id=e.attachment_file_id,
                attachment_name=e.attachment_name, created_at=e.submitted_at)
    return await _add_item(uow, item, threshold=threshold)


AAR_SECTIONS = (("planned", "What was planned"), ("happened", "What happened"), ("difference", "Why the difference"),
                ("sustain", "What to sustain"), ("improve", "What to improve"))


def aar_body(answers: dict[str, str]) -> str:
    return "\n\n".join(f"{label}:\n{answers[key].strip()}" for key, label in AAR_SECTIONS if answers.get(key, "").strip())


async def record_aar(uow: UnitOfWork, e: events.AarSubmitted, *, threshold: float) -> Item | None:
    """The officer's review: the AAR owed is closed (or one is recorded, if none was asked for)."""
    session = uow.session
    aar = await session.get(Aar, e.aar_id)
    if aar is None:  # written without being asked: welcome all the same
        if not e.country:
            raise ValueError("an AAR nobody asked for needs its country")
        country = e.country.upper()
        aar = Aar(id=e.aar_id, person_id=e.person_id, country=country, region=region_for_country(country),
                  due_on=e.submitted_at.date(), created_at=e.submitted_at, requested_by="self")
    if aar.state == "submitted":
        return None
    answers = e.model_dump(include={k for k, _ in AAR_SECTIONS})
    label = aar.operation or f"deployment in {aar.country}"
    item = Item(id=events.deterministic_id("aar.item", aar.id), reference=reference("A", aar.id), kind="aar",
                author_id=aar.person_id, country=aar.country, region=aar.region,
                themes=" ".join(clean_themes(e.themes)), classification=e.classification,
                title=title_of(f"AAR: {label} — {answers['improve'] or answers['happened'] or answers['planned']}"),
                body=aar_body(answers), aar_id=aar.id, created_at=e.submitted_at)
    added = await _add_item(uow, item, threshold=threshold)
    aar.state, aar.submitted_at, aar.item_id = "submitted", e.submitted_at, item.id
    aar.next_at, aar.version = None, aar.version + 1
    session.add(aar)
    uow.emit(events.AarCompleted(aar_id=aar.id, person_id=aar.person_id, region=aar.region, due_on=aar.due_on,
                                 submitted_on=e.submitted_at.date(), item_id=item.id),
             id=events.deterministic_id("aar.completed", aar.id))
    return added


async def similar_to(session: AsyncSession, item: Item, *, threshold: float, limit: int = 50) -> list[tuple[uuid.UUID, float]]:
    """Earlier items this one resembles: candidates sharing a theme, found by full-text search on its words."""
    mine = sorted(recurrence.words(item.body or item.title), key=len, reverse=True)[:16]
    if not mine or not item.theme_list:
        return []
    stmt = select(Item).where(col(Item.status) != "merged", col(Item.created_at) <= item.created_at,
                              col(Item.seq).in_(select(ItemTheme.item_seq).where(
                                  col(ItemTheme.theme).in_(item.theme_list))))
    stmt = _match(stmt, session, " OR ".join(f'"{w}"' for w in mine), any_word=True).limit(limit)
    found = (await session.exec(stmt)).all()
    candidates = [recurrence.Candidate(id=c.id, country=c.country, themes=frozenset(c.theme_list), text=c.body,
                                       created_at=c.created_at, deployment_key=f"{c.author_id}|{c.country}")
                  for c in found if c.id != item.id]
    return recurrence.similar(text=item.body, themes=item.theme_list, country=item.country,
                              created_at=item.created_at, deployment_key=f"{item.author_id}|{item.country}",
                              candidates=candidates, threshold=threshold)


# --- search -----------------------------------------------------------------


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _match(stmt: Any, session: AsyncSession, words: str, *, any_word: bool = False) -> Any:
    if _is_sqlite(session):
        return stmt.join(_FTS, _FTS.c.rowid == Item.seq).where(literal_column("item_fts").op("MATCH")(words)) \
            .order_by(_FTS.c.rank)
    query = func.to_tsquery("english", words.replace('"', "").replace(" OR ", " | ")) if any_word \
        else func.plainto_tsquery("english", words.replace('"', ""))
    search = literal_column("lesson_item.search")
    return stmt.where(search.op("@@")(query)).order_by(func.ts_rank(search, query).desc())


def visible_to(viewer: Viewer) -> ColumnElement[bool]:
    """`Viewer.can_see` as SQL."""
    allowed: list[ColumnElement[bool]] = [col(Item.classification) == "public"]
    if viewer.member or viewer.desk or viewer.adviser_regions:
        allowed.append(col(Item.classification) == "community")
    if viewer.desk:
        allowed.append(col(Item.classification) == "restricted")
    else:
        whose: list[ColumnElement[bool]] = []
        if viewer.person_id is not None:
            whose.append(col(Item.author_id) == viewer.person_id)
        if viewer.adviser_regions:
            whose.append(col(Item.region).in_(sorted(viewer.adviser_regions)))
        if whose:
            allowed.append(and_(col(Item.classification) == "restricted", or_(*whose)))
    return or_(*allowed)


@dataclass(frozen=True)
class Filters:
    query: str = ""
    theme: str | None = None
    country: str | None = None
    region: str | None = None
    since: date | None = None  # created on or after
    until: date | None = None  # created on or before
    status: str | None = None  # default: all but merged
    kind: str | None = None


@dataclass
class Found:
    total: int
    items: list[Item] = field(default_factory=list)


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def match_words(text: str) -> str:
    """A person's query as FTS5 syntax: every word must match (quoted, so nothing in it is an operator)."""
    return " ".join(f'"{w}"' for w in WORD.findall(text))


async def search(session: AsyncSession, *, viewer: Viewer, filters: Filters, limit: int | None = 10,
                 offset: int = 0) -> Found:
    stmt = select(Item).where(visible_to(viewer))
    if filters.status:
        stmt = stmt.where(col(Item.status) == filters.status)
    else:
        stmt = stmt.where(col(Item.status) != "merged")
    if filters.theme:
        stmt = stmt.where(col(Item.seq).in_(select(ItemTheme.item_seq).where(ItemTheme.theme == filters.theme)))
    if filters.country:
        stmt = stmt.where(col(Item.country) == filters.country)
    if filters.region:
        stmt = stmt.where(col(Item.region) == filters.region)
    if filters.kind:
        stmt = stmt.where(col(Item.kind) == filters.kind)
    if filters.since:
        stmt = stmt.where(col(Item.created_at) >= start_of(filters.since))
    if filters.until:
        stmt = stmt.where(col(Item.created_at) < start_of(filters.until + timedelta(days=1)))
    words = match_words(filters.query)
    if words:
        stmt = _match(stmt, session, words if _is_sqlite(session) else filters.query)
    else:
        stmt = stmt.order_by(col(Item.created_at).desc())
    total = (await session.exec(select(func.count()).select_from(stmt.order_by(None).subquery()))).one()
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    return Found(total=int(total), items=list((await session.exec(stmt)).all()))


async def item_by_reference(session: AsyncSession, ref: str) -> Item | None:
    return (await session.exec(select(Item).where(Item.reference == ref.strip().upper()))).first()


async def links_of(session: AsyncSession, item_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    if not item_ids:
        return []
    rows = await session.exec(select(ItemLink.item_id, ItemLink.similar_id).where(
        or_(col(ItemLink.item_id).in_(list(item_ids)), col(ItemLink.similar_id).in_(list(item_ids)))))
    return list(rows.all())


async def items_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Item]:
    if not ids:
        return {}
    return {i.id: i for i in (await session.exec(select(Item).where(col(Item.id).in_(list(ids))))).all()}


# --- review -----------------------------------------------------------------


async def review(uow: UnitOfWork, *, ref: str, action: lifecycle.Action, by: str, note: str = "",
                 themes: Sequence[str] = (), remove: Sequence[str] = (), into: str | None = None) -> Item:
    """One review step on an item, recorded with who and when; raises ReviewRefused or LookupError."""
    session, now = uow.session, uow.clock.now()
    item = await item_by_reference(session, ref)
    if item is None:
        raise LookupError(f"no item {ref}")
    status = lifecycle.after(item.status, action, note=note)
    detail = note
    if action == "tagged":
        unknown = [t for t in [*themes, *remove] if t not in THEMES]
        if unknown:
            raise lifecycle.ReviewRefused(f"unknown theme(s): {', '.join(unknown)}; themes are {', '.join(THEMES)}")
        new = [t for t in dict.fromkeys([*item.theme_list, *themes]) if t not in remove]
        assert item.seq is not None
        for gone in set(item.theme_list) - set(new):
            row = await session.get(ItemTheme, (gone, item.seq))
            if row is not None:
                await session.delete(row)
        session.add_all([ItemTheme(theme=t, item_seq=item.seq) for t in new if t not in item.theme_list])
        item.themes = " ".join(new)
        detail = f"themes: {item.themes}" + (f"; {note}" if note else "")
    elif action == "merged":
        target = await item_by_reference(session, into or "")
        if target is None or target.id == item.id or target.status == "merged":
            raise lifecycle.ReviewRefused(f"merge into what? {into!r} is not another item still open")
        item.merged_into = target.id
        detail = f"into {target.reference}" + (f"; {note}" if note else "")
    elif action == "learned":
        item.action = note.strip()
    item.status = status
    session.add(item)
    session.add(ReviewStep(item_id=item.id, action=action, detail=detail, by=by, at=now))
    uow.emit(events.LessonReviewed(item_id=item.id, reference=item.reference, action=action, status=status, by=by,
                                   at=now))
    return item


async def history(session: AsyncSession, item_id: uuid.UUID) -> list[ReviewStep]:
    rows = await session.exec(select(ReviewStep).where(ReviewStep.item_id == item_id).order_by(col(ReviewStep.id)))
    return list(rows.all())


# --- AARs owed ---------------------------------------------------------------


async def expect_aar(uow: UnitOfWork, *, aar_id: uuid.UUID, person_id: uuid.UUID, country: str, due_on: date,
                     policy: DutyPolicy, deployment_id: uuid.UUID | None = None, operation: str = "",
                     requested_by: str = "") -> Aar | None:
    """An AAR owed from now; None if it was asked for already."""
    if await uow.session.get(Aar, aar_id) is not None:
        return None
    country = country.upper()
    aar = Aar(id=aar_id, person_id=person_id, deployment_id=deployment_id, operation=operation, country=country,
              region=region_for_country(country), due_on=due_on, requested_by=requested_by,
              created_at=uow.clock.now(), next_step=0, next_at=policy.at(due_on, 0))
    uow.session.add(aar)
    uow.emit(events.AarDue(aar_id=aar.id, person_id=person_id, deployment_id=deployment_id, operation=operation,
                           country=country, region=aar.region, due_on=due_on),
             id=events.deterministic_id("aar.due", aar.id))
    return aar


async def open_aars(session: AsyncSession, person_id: uuid.UUID) -> list[Aar]:
    rows = await session.exec(select(Aar).where(Aar.person_id == person_id, Aar.state == "open")
                              .order_by(col(Aar.due_on)))
    return list(rows.all())


async def aars_with_steps_due(session: AsyncSession, now: datetime, *, limit: int = 500) -> list[Aar]:
    rows = await session.exec(select(Aar).where(Aar.state == "open", col(Aar.next_at).is_not(None),
                                                col(Aar.next_at) <= now).order_by(col(Aar.next_at)).limit(limit))
    return list(rows.all())


async def claim_steps(uow: UnitOfWork, aar: Aar, *, next_step: int, next_at: datetime | None) -> bool:
    """Move the AAR past the steps being taken, if no other pass did (version check)."""
    result = await uow.session.exec(  # type: ignore[call-overload]
        update(Aar).where(col(Aar.id) == aar.id, col(Aar.version) == aar.version, col(Aar.state) == "open")
        .values(next_step=next_step, next_at=next_at, version=aar.version + 1))
    return bool(result.rowcount)


async def all_aars(session: AsyncSession) -> list[Aar]:
    return list((await session.exec(select(Aar))).all())


async def items_between(session: AsyncSession, start: datetime, end: datetime) -> list[Item]:
    rows = await session.exec(select(Item).where(col(Item.created_at) >= start, col(Item.created_at) < end,
                                                 col(Item.status) != "merged"))
    return list(rows.all())
