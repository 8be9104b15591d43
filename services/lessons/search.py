"""Lessons search: the full-text index and the queries over it.

The index is SQLite FTS5 (an external-content index kept by triggers, so any insert is
indexed) or, on PostgreSQL, a generated tsvector column with a GIN index. Neither stems:
both index an item's `title_terms` and `body_terms`, its words as English, French and
Arabic stems made in Python when it is written (services/lessons/stemming.py), and a
query is stemmed the same way, so both stores answer a query alike. A query's words must
all match, each through any of its stems. On SQLite an item's classification, status,
kind, country, region, author, period and themes are words of the index too (its
facets), so a search's filters are resolved inside the index with the words.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, column, func, literal_column, or_, table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import defer
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.lessons import recurrence, stemming
from services.lessons.classification import Viewer
from services.lessons.models import Item, ItemTheme
from shared.store import Database, Work


# The terms are stemmed and folded already: the tokenizers only split them at the spaces
SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS item_fts USING fts5(title_terms, body_terms, facets, "
    "content='lesson_item', content_rowid='seq', tokenize='unicode61 remove_diacritics 0')",
    # relevance from the words only: the title counts five times the body, the facets nothing
    "INSERT INTO item_fts(item_fts, rank) VALUES ('rank', 'bm25(5.0, 1.0, 0.0)')",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_insert AFTER INSERT ON lesson_item BEGIN "
    "INSERT INTO item_fts(rowid, title_terms, body_terms, facets) "
    "VALUES (new.seq, new.title_terms, new.body_terms, new.facets); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_delete AFTER DELETE ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title_terms, body_terms, facets) "
    "VALUES ('delete', old.seq, old.title_terms, old.body_terms, old.facets); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_update AFTER UPDATE OF title_terms, body_terms, facets "
    "ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title_terms, body_terms, facets) "
    "VALUES ('delete', old.seq, old.title_terms, old.body_terms, old.facets); "
    "INSERT INTO item_fts(rowid, title_terms, body_terms, facets) "
    "VALUES (new.seq, new.title_terms, new.body_terms, new.facets); END",
)


POSTGRES_SEARCH = (
    "ALTER TABLE lesson_item ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS "
    "(setweight(to_tsvector('simple', title_terms), 'A') || setweight(to_tsvector('simple', body_terms), 'B')) "
    "STORED",
    "CREATE INDEX IF NOT EXISTS lesson_item_search ON lesson_item USING gin (search)",
)


_FTS = table("item_fts", column("rowid"), column("rank"))


async def search_index(db: Database) -> None:
    """The full-text index beside tables made at start (a migrated store has it already; idempotent)."""
    async with db.engine.begin() as conn:
        for ddl in SQLITE_SEARCH if db.is_sqlite else POSTGRES_SEARCH:
            await conn.exec_driver_sql(ddl)


def _token(prefix: str, value: str) -> str:
    return prefix + re.sub(r"[^0-9a-z]", "", value.lower())


def fill_index(item: Item) -> Item:
    """What the full-text index reads of a new item: its title's and body's terms (stemming.item_terms)
    and its facets."""
    item.title_terms, item.body_terms = stemming.item_terms(item.title, item.body)
    item.facets = facets_of(item)
    return item


def facets_of(item: Item) -> str:
    """An item's classification, status, kind, country, region, author and themes as words of the
    full-text index (SQLite): a search's filters are then resolved inside the index, with the words."""
    day = item.created_at
    parts = [_token("cl", item.classification), _token("st", item.status), _token("kd", item.kind),
             _token("ct", item.country), _token("rg", item.region or "none"), _token("au", item.author_id.hex),
             f"yr{day.year}", f"qt{day.year}q{(day.month - 1) // 3 + 1}", f"mo{day.year}{day.month:02d}"]
    return " ".join(parts + [_token("th", t) for t in item.theme_list])


def period_facet(since: date | None, until: date | None) -> str | None:
    """The facet naming exactly this period (a year, a quarter or a month), if one does."""
    if since is None or until is None or since.day != 1:
        return None
    after = until + timedelta(days=1)
    months = (after.year - since.year) * 12 + after.month - since.month
    if after.day != 1:
        return None
    if months == 12 and since.month == 1:
        return f"yr{since.year}"
    if months == 3 and since.month % 3 == 1:
        return f"qt{since.year}q{(since.month - 1) // 3 + 1}"
    return f"mo{since.year}{since.month:02d}" if months == 1 else None


async def similar_to(session: AsyncSession, item: Item, *, threshold: float, limit: int = 50) -> list[tuple[uuid.UUID, float]]:
    """Earlier items this one resembles: candidates sharing a theme, found by full-text search on its words."""
    mine = sorted(recurrence.words(item.body or item.title), key=len, reverse=True)[:16]
    terms = tuple(dict.fromkeys(t for word in stemming.query_terms(" ".join(mine)) for t in word))
    if not terms or not item.theme_list:
        return []
    stmt = select(Item).where(Unindexed(col(Item.created_at)) <= item.created_at)  # earlier ones
    any_word = [terms]  # one alternative: any term of any of its words
    if _is_sqlite(session):
        themes = " OR ".join(_token("th", t) for t in item.theme_list)
        stmt = _fts(stmt, f"{{title_terms body_terms}} : ({fts_words(any_word)}) AND facets : ({themes}) "
                          "NOT facets : stmerged")
    else:
        stmt = _pg_match(stmt.where(col(Item.status) != "merged", col(Item.seq).in_(
            select(ItemTheme.item_seq).where(col(ItemTheme.theme).in_(item.theme_list)))),
            func.to_tsquery("simple", tsquery_words(any_word)))
    found = (await session.exec(stmt.limit(limit))).all()
    candidates = [recurrence.Candidate(id=c.id, country=c.country, themes=frozenset(c.theme_list), text=c.body,
                                       created_at=c.created_at, deployment_key=f"{c.author_id}|{c.country}")
                  for c in found if c.id != item.id]
    return recurrence.similar(text=item.body, themes=item.theme_list, country=item.country,
                              created_at=item.created_at, deployment_key=f"{item.author_id}|{item.country}",
                              candidates=candidates, threshold=threshold)


def _is_sqlite(session: AsyncSession | Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _fts(stmt: Any, query: str) -> Any:
    """SQLite: items matching an FTS5 query, most relevant first."""
    return stmt.join(_FTS, _FTS.c.rowid == Item.seq).where(literal_column("item_fts").op("MATCH")(query)) \
        .order_by(_FTS.c.rank)


def _pg_match(stmt: Any, query: Any) -> Any:
    """PostgreSQL: items matching a tsquery, most relevant first."""
    search = literal_column("lesson_item.search")
    return stmt.where(search.op("@@")(query)).order_by(func.ts_rank(search, query).desc())


def _hidden_facets(viewer: Viewer) -> tuple[str | None, list[str]]:
    """`Viewer.can_see` over the facets: a facet an item must have (or None) and what it must not have.
    Written with as few and as rare facets as the viewer allows: bm25 counts, at every ranked search,
    how many items hold each word of the query, facets too, so naming 'public or community' costs a
    walk over most of the store where 'not restricted' walks a seventh of it."""
    if viewer.desk:
        return None, []
    mine = [_token("au", viewer.person_id.hex)] if viewer.person_id is not None else []
    if not (viewer.member or viewer.adviser_regions):  # the public, or someone who left: and their own
        return f"({' OR '.join(['clpublic', *(f'(clrestricted AND {m})' for m in mine)])})", []
    whose = mine + [_token("rg", r) for r in sorted(viewer.adviser_regions)]
    return None, [f"(clrestricted NOT ({' OR '.join(whose)}))" if whose else "clrestricted"]


def fts_query(words: str, viewer: Viewer, filters: Filters) -> str:
    """The words (in titles and bodies) and every filter but the period, as one FTS5 query."""
    required, hidden = _hidden_facets(viewer)
    parts = [f"{{title_terms body_terms}} : ({words})"] + ([f"facets : {required}"] if required else [])
    for prefix, value in (("st", filters.status), ("th", filters.theme), ("ct", filters.country),
                          ("rg", filters.region), ("kd", filters.kind)):
        if value:
            parts.append(f"facets : {_token(prefix, value)}")
    period = period_facet(filters.since, filters.until)
    if period is not None:
        parts.append(f"facets : {period}")
    hidden += [] if filters.status else ["stmerged"]
    return " AND ".join(parts) + (f" NOT facets : ({' OR '.join(hidden)})" if hidden else "")


class Unindexed(ColumnElement[Any]):
    """A column the query planner may not reach through an index (SQLite: `+column`).
    With words to match, the full-text index must drive the query: an index on, say,
    the classification would make SQLite walk every public row and test each for the words;
    without words, the newest are found down the created_at index rather than sorted afterwards."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _as_is(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(Unindexed, "sqlite")
def _unary_plus(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.column, **kw))


def _same(column: Any) -> Any:
    return column


def visible_to(viewer: Viewer, c: Callable[[Any], Any] = _same) -> ColumnElement[bool]:
    """`Viewer.can_see` as SQL."""
    allowed: list[ColumnElement[bool]] = [c(col(Item.classification)) == "public"]
    if viewer.member or viewer.desk or viewer.adviser_regions:
        allowed.append(c(col(Item.classification)) == "community")
    if viewer.desk:
        allowed.append(c(col(Item.classification)) == "restricted")
    else:
        whose: list[ColumnElement[bool]] = []
        if viewer.person_id is not None:
            whose.append(c(col(Item.author_id)) == viewer.person_id)
        if viewer.adviser_regions:
            whose.append(c(col(Item.region)).in_(sorted(viewer.adviser_regions)))
        if whose:
            allowed.append(and_(c(col(Item.classification)) == "restricted", or_(*whose)))
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
    total: int  # at most `COUNT_CAP` + 1 for a page: "more than 300" is enough to know
    items: list[Item] = field(default_factory=list)
    newest_first: bool = False  # else the most relevant first

    @property
    def more_than_counted(self) -> bool:
        return self.total > COUNT_CAP


COUNT_CAP = 300


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def fts_words(words: list[tuple[str, ...]]) -> str:
    """Query words (stemming.query_terms) as FTS5 syntax: every word must match, through any of its
    terms (quoted, so no term is an operator; terms are letters and digits only)."""
    return " AND ".join("(" + " OR ".join(f'"{t}"' for t in terms) + ")" for terms in words)


def tsquery_words(words: list[tuple[str, ...]]) -> str:
    """The same as a PostgreSQL tsquery, for to_tsquery('simple', ...)."""
    return " & ".join("(" + " | ".join(terms) + ")" for terms in words)


def conditions(viewer: Viewer, filters: Filters, c: Callable[[Any], Any] = _same) -> list[ColumnElement[bool]]:
    where = [visible_to(viewer, c)]
    where.append(c(col(Item.status)) == filters.status if filters.status else c(col(Item.status)) != "merged")
    if filters.theme:
        where.append(col(Item.seq).in_(select(ItemTheme.item_seq).where(ItemTheme.theme == filters.theme)))
    if filters.country:
        where.append(c(col(Item.country)) == filters.country)
    if filters.region:
        where.append(c(col(Item.region)) == filters.region)
    if filters.kind:
        where.append(c(col(Item.kind)) == filters.kind)
    return where + within(filters, c)


def within(filters: Filters, c: Callable[[Any], Any] = _same) -> list[ColumnElement[bool]]:
    """The period filter."""
    where = []
    if filters.since:
        where.append(c(col(Item.created_at)) >= start_of(filters.since))
    if filters.until:
        where.append(c(col(Item.created_at)) < start_of(filters.until + timedelta(days=1)))
    return where


def search(session: Session, *, viewer: Viewer, filters: Filters, limit: int | None = 10, offset: int = 0) -> Found:
    """A page of what `viewer` may read and how many match (counted up to COUNT_CAP + 1 for a
    page; exactly when `limit` is None). With words, the most relevant first, unless more than
    COUNT_CAP match: ranking them all costs more than it tells (people add a word), so the latest
    recorded come first. Without words, the newest first."""
    stemmed = stemming.query_terms(filters.query)
    words = fts_words(stemmed)
    if not words:  # down the created_at index until the page is full; the count may use any index
        stmt = _shown().where(*conditions(viewer, filters, Unindexed)).order_by(col(Item.created_at).desc())
        counted = select(Item.seq).where(*conditions(viewer, filters))
        latest = stmt
    elif _is_sqlite(session):  # the full-text index drives, and resolves the filters too
        query = fts_query(words, viewer, filters)
        in_index = period_facet(filters.since, filters.until) is not None or not (filters.since or filters.until)
        stmt = _fts(_shown().where(*([] if in_index else within(filters, Unindexed))), query)
        counted = stmt.order_by(None).with_only_columns(col(Item.seq))
        if in_index and limit is not None:  # no row is read to count
            counted = select(_FTS.c.rowid).where(literal_column("item_fts").op("MATCH")(query))
        latest = stmt.order_by(None).order_by(_FTS.c.rowid.desc())
    else:
        stmt = _pg_match(_shown().where(*conditions(viewer, filters)),
                         func.to_tsquery("simple", tsquery_words(stemmed)))
        counted = stmt.order_by(None).with_only_columns(col(Item.seq))
        latest = stmt.order_by(None).order_by(col(Item.seq).desc())
    if limit is None:
        return Found(total=_count(session, counted), items=list(session.exec(stmt).all()),
                     newest_first=not words)
    total = _count(session, counted.limit(COUNT_CAP + 1))
    newest = not words or total > COUNT_CAP
    page = session.exec((latest if newest else stmt).limit(limit).offset(offset)).all()
    return Found(total=total, items=list(page), newest_first=newest)


def _shown() -> Any:
    """Items as a search shows them: without what only the index reads (their terms and facets)."""
    return select(Item).options(defer(Item.title_terms), defer(Item.body_terms), defer(Item.facets))  # type: ignore[arg-type]


def _count(session: Session, rows: Any) -> int:
    return int(session.exec(select(func.count()).select_from(rows.subquery())).one())


async def find(db: Database, *, viewer: Viewer, filters: Filters, limit: int | None = 10, offset: int = 0) -> Found:
    """`search` in one read transaction, in one call to a reader thread of the store's on SQLite: a
    search is a few statements, and each through the asynchronous driver is several hops between
    threads, which together cost more than the statements themselves."""
    def work(w: Work) -> Found:
        with Session(w.conn) as session:
            return search(session, viewer=viewer, filters=filters, limit=limit, offset=offset)

    return await db.transact(work, write=False)
