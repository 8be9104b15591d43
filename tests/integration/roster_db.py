"""Reading the roster's own SQLite file in tests."""

from __future__ import annotations

from sqlmodel import col, func, select

from services.roster.config import Settings
from services.roster.models import ROSTER_TABLES, Deployment, HandoverNote, Person
from shared.events import Envelope
from shared.store import Database, OutboxMessage


async def counts(settings: Settings) -> tuple[int, int]:
    db = Database(settings.db_url)
    await db.create_tables(ROSTER_TABLES)
    try:
        async with db.read() as s:
            people = (await s.exec(select(func.count()).select_from(Person))).one()
            deployments = (await s.exec(select(func.count()).select_from(Deployment))).one()
            return people, deployments
    finally:
        await db.dispose()


async def outbox(settings: Settings, *, type_prefix: str = "") -> list[Envelope]:
    db = Database(settings.db_url)
    await db.create_tables(ROSTER_TABLES)
    try:
        async with db.read() as s:
            rows = (await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.seq)))).all()
    finally:
        await db.dispose()
    envelopes = [Envelope.from_bytes(r.payload) for r in rows]
    return [e for e in envelopes if e.type.startswith(type_prefix)]


async def deployments(settings: Settings) -> list[Deployment]:
    db = Database(settings.db_url)
    try:
        async with db.read() as s:
            return list((await s.exec(select(Deployment))).all())
    finally:
        await db.dispose()


async def handover_notes(settings: Settings) -> list[HandoverNote]:
    db = Database(settings.db_url)
    try:
        async with db.read() as s:
            return list((await s.exec(select(HandoverNote))).all())
    finally:
        await db.dispose()
