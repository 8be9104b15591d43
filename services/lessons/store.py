"""The lessons store: reads of items, their links and review steps, and of the AARs owed.

What changes the store is in services/lessons/handlers.py; the full-text index and
search in services/lessons/search.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.lessons.models import LESSONS_TABLES, Aar, Item, ItemLink, ReviewStep
from services.lessons.search import search_index
from shared.clock import Clock
from shared.store import Database

SOURCE = "lessons"


def open_store(url: str, *, clock: Clock) -> Database:
    """The lessons store, as its service and its commands open it: its units of work write events as
    `SOURCE`, at `clock`'s time."""
    return Database(url, source=SOURCE, clock=clock)


async def prepare(db: Database) -> None:
    """Tables and the full-text index (idempotent): what the CLI and tests need on their own."""
    await db.create_tables(LESSONS_TABLES)
    await search_index(db)


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


async def history(session: AsyncSession, item_id: uuid.UUID) -> list[ReviewStep]:
    rows = await session.exec(select(ReviewStep).where(ReviewStep.item_id == item_id).order_by(col(ReviewStep.id)))
    return list(rows.all())


async def open_aars(session: AsyncSession, person_id: uuid.UUID) -> list[Aar]:
    rows = await session.exec(select(Aar).where(Aar.person_id == person_id, Aar.state == "open")
                              .order_by(col(Aar.due_on)))
    return list(rows.all())


async def aars_with_steps_due(session: AsyncSession, now: datetime, *, limit: int = 500) -> list[Aar]:
    rows = await session.exec(select(Aar).where(Aar.state == "open", col(Aar.next_at).is_not(None),
                                                col(Aar.next_at) <= now).order_by(col(Aar.next_at)).limit(limit))
    return list(rows.all())


async def overdue_by_region(session: AsyncSession, today: date) -> dict[str, int]:
    rows = await session.exec(select(Aar.region, func.count()).where(Aar.state == "open", col(Aar.due_on) < today)
                              .group_by(Aar.region))
    return {region or "other": int(n) for region, n in rows.all()}


async def all_aars(session: AsyncSession) -> list[Aar]:
    return list((await session.exec(select(Aar))).all())


async def items_between(session: AsyncSession, start: datetime, end: datetime) -> list[Item]:
    rows = await session.exec(select(Item).where(col(Item.created_at) >= start, col(Item.created_at) < end,
                                                 col(Item.status) != "merged"))
    return list(rows.all())
