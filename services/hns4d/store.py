"""The HNS4D store: how it is opened, the audit log's guard, and its reads.

What changes the store is in services/hns4d/records.py."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.hns4d.models import HNS4D_TABLES, Forwarding, Incident, Party, Record
from shared.clock import Clock
from shared.store import Database

SOURCE = "hns4d"
# The audit log is append-only in the database too: an update or a delete is refused, whoever asks.
AUDIT_GUARD = {
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS hns4d_audit_no_update BEFORE UPDATE ON hns4d_audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS hns4d_audit_no_delete BEFORE DELETE ON hns4d_audit "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION hns4d_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        "CREATE OR REPLACE TRIGGER hns4d_audit_append_only BEFORE UPDATE OR DELETE ON hns4d_audit "
        "FOR EACH ROW EXECUTE FUNCTION hns4d_audit_append_only()",
    ),
}


def open_store(url: str, *, clock: Clock) -> Database:
    return Database(url, source=SOURCE, clock=clock)


async def guard_audit(db: Database) -> None:
    """The audit log's triggers, where they are missing (the migration makes them; a store made without
    migrations gets them here). Checked first: replicas starting together do not replace them at once."""
    async with db.write() as session:
        if db.engine.dialect.name == "postgresql" and (await session.exec(text(  # type: ignore[call-overload]
                "SELECT 1 FROM pg_trigger WHERE tgname = 'hns4d_audit_append_only'"))).first() is not None:
            return
        for statement in AUDIT_GUARD.get(db.engine.dialect.name, ()):
            await session.exec(text(statement))  # type: ignore[call-overload]


async def prepare(db: Database) -> None:
    """Tables and the audit log's guard (idempotent): what the commands and tests need on their own."""
    await db.create_tables(HNS4D_TABLES)
    await guard_audit(db)


def utc(at: datetime) -> datetime:
    """A time read back from the store (SQLite keeps naive UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


async def record_by_reference(session: AsyncSession, reference: str) -> Record | None:
    return (await session.exec(select(Record).where(Record.reference == reference.strip().upper()))).first()


async def parties_of(session: AsyncSession, country: str, *, active_only: bool = True) -> list[Party]:
    query = select(Party).where(Party.country == country.upper())
    if active_only:
        query = query.where(col(Party.active).is_(True))
    return list((await session.exec(query.order_by(col(Party.name)))).all())


async def party_by_name(session: AsyncSession, country: str, name: str) -> Party | None:
    rows = await parties_of(session, country, active_only=False)
    wanted = name.strip().casefold()
    return next((p for p in rows if p.name.casefold() == wanted), None)


async def parties_by_id(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Party]:
    if not ids:
        return {}
    return {p.id: p for p in (await session.exec(select(Party).where(col(Party.id).in_(list(ids))))).all()}


async def forwardings_of(session: AsyncSession, record_id: uuid.UUID, *, revision: int | None = None) -> list[Forwarding]:
    query = select(Forwarding).where(Forwarding.record_id == record_id)
    if revision is not None:
        query = query.where(Forwarding.revision == revision)
    return list((await session.exec(query.order_by(col(Forwarding.revision), col(Forwarding.sent_at)))).all())


async def silences_due(session: AsyncSession, now: datetime, *, limit: int = 200) -> list[Forwarding]:
    rows = await session.exec(select(Forwarding).where(
        col(Forwarding.next_step_at).is_not(None), col(Forwarding.next_step_at) <= now,
        col(Forwarding.acknowledged_at).is_(None), col(Forwarding.superseded).is_(False),
    ).order_by(col(Forwarding.next_step_at)).limit(limit))
    return list(rows.all())


async def in_period(session: AsyncSession, start: datetime, end: datetime,
                    country: str | None = None) -> tuple[list[Forwarding], list[Incident]]:
    """The forwardings sent and the incidents that happened in [start, end)."""
    sent = select(Forwarding).where(col(Forwarding.sent_at) >= start, col(Forwarding.sent_at) < end)
    happened = select(Incident).where(col(Incident.occurred_at) >= start, col(Incident.occurred_at) < end)
    if country is not None:
        sent, happened = sent.where(Forwarding.country == country), happened.where(Incident.country == country)
    return list((await session.exec(sent)).all()), list((await session.exec(happened)).all())


async def silent_by_country(session: AsyncSession, now: datetime, *,
                            within: timedelta = timedelta(days=30)) -> dict[str, int]:
    """Parties past their deadline with no acknowledgement, by country: those whose deadline fell in the
    last `within` (a silence of last year is evidence in the figures, not a matter for today)."""
    rows = await session.exec(select(Forwarding.country, func.count()).where(
        col(Forwarding.due_at) <= now, col(Forwarding.due_at) > now - within,
        col(Forwarding.acknowledged_at).is_(None),
        col(Forwarding.superseded).is_(False)).group_by(col(Forwarding.country)))
    return {country: n for country, n in rows.all()}


def sent_to(party_ids: Collection[uuid.UUID]) -> ColumnElement[bool]:
    """The records whose current revision was sent to one of these parties (a later revision not sent to
    them: not theirs to see or be given)."""
    return col(Record.id).in_(select(Forwarding.record_id).where(
        col(Forwarding.party_id).in_(party_ids), col(Forwarding.revision) == col(Record.revision)))
