"""HNS4D's answers over NATS request/reply (shared/contracts/hns4d.py): a submission from the bot,
checked and stored in one transaction, and the records a person may see with each party's answer:
their own; as a member, their organisation's; as a CMCoord officer, their country's; as a regional
adviser, their region's; the desk, every one. Who they are is the roster's answer (`rights`), never
their word; the roster away, their own only. A party's liaison sees the records addressed to their party,
each with their party's answer only (never whether another party answered): that is HNS4D's own data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.service import Service
from sqlalchemy.exc import IntegrityError
from sqlalchemy import ColumnElement, case, func, literal, or_, true
from sqlmodel import col, select

from services.hns4d import records, store
from services.hns4d.models import Party, Record
from services.hns4d.records import Refused
from shared import events
from shared.contracts import hns4d as contract
from shared.contracts.hns4d import Mine, MineRequest, RecordStatus, Submitted, SubmitRequest
from shared.bus import Bus
from shared.contracts.query import answer
from shared.contracts.roster import Rights, ask_rights
from shared.store import Database

log = structlog.get_logger("hns4d")


ATTEMPTS = 3


@dataclass(frozen=True)
class Visible:
    """The records an asker may see, and the parties whose answers they read (None: every party's)."""

    records: ColumnElement[bool]
    parties: frozenset[uuid.UUID] | None = None


class Hns4dQueries:
    def __init__(self, *, db: Database, bus: Bus | None = None, timeout: float = 5.0) -> None:
        self.db = db
        self.bus = bus
        self.timeout = timeout

    async def _rights(self, person_id: uuid.UUID) -> Rights | None:
        if self.bus is None:
            return None
        return await ask_rights(self.bus, person_id, timeout=self.timeout, log=log, event="asker_rights_unknown")

    async def visible_to(self, person_id: uuid.UUID) -> Visible:
        """The records `person_id` may see (their own, whatever the roster says), and whose answers."""
        rights = await self._rights(person_id)
        if rights is not None and rights.desk:
            return Visible(true())
        seen: list[ColumnElement[bool]] = [col(Record.submitted_by) == person_id]
        if rights is not None and rights.member:
            if rights.organisation.strip():
                # folded alike on both sides (SQLite's lower() knows ASCII only)
                seen.append(func.lower(col(Record.organisation)) == func.lower(literal(rights.organisation.strip())))
            if rights.officer_countries:
                seen.append(col(Record.country).in_(rights.officer_countries))
            if rights.adviser_regions:
                seen.append(col(Record.region).in_(rights.adviser_regions))
            return Visible(or_(*seen))
        async with self.db.read() as session:  # a party's liaison (never a member): what was sent to the party
            parties = set((await session.exec(select(Party.id).where(Party.liaison_id == person_id))).all())
        if parties:
            seen.append(store.sent_to(parties))
        return Visible(or_(*seen), parties=frozenset(parties) or None)

    async def submit(self, q: SubmitRequest) -> Submitted:
        """Stored with the id the submission fixes: asked again (a retry, a double press), the same reference.
        Two submissions numbered at once in one country (another replica, PostgreSQL): the second tries again."""
        record_id = events.deterministic_id("hns4d.submission", q.submission_id)
        for attempt in range(ATTEMPTS):
            try:
                async with self.db.unit_of_work(correlation_id=str(q.submission_id)) as uow:
                    record = await records.submit(uow, q.submission, by=q.person_id, who=f"person:{q.person_id}",
                                                  record_id=record_id)
                    return Submitted(reference=record.reference, warning=record.warning)
            except Refused as refused:
                return Submitted(problems=refused.problems)
            except IntegrityError:
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def mine(self, q: MineRequest) -> Mine:
        visible = await self.visible_to(q.person_id)
        async with self.db.unit_of_work() as uow:
            own_first = case((col(Record.submitted_by) == q.person_id, 0), else_=1)  # others never push theirs out
            rows = (await uow.session.exec(select(Record).where(visible.records).order_by(
                own_first, col(Record.submitted_at).desc()).limit(q.limit))).all()
            shown = []
            now = uow.clock.now()
            for record in rows:
                statuses = await records.party_statuses(uow.session, record, now=now, parties=visible.parties)
                records.audit(uow, who=f"person:{q.person_id}", action="viewed", record_id=record.id,
                              detail=record.reference)
                shown.append(RecordStatus(reference=record.reference, kind=record.kind, country=record.country,
                                          name=record.name, state=record.state, revision=record.revision,
                                          organisation=record.organisation,
                                          asker_submitted=record.submitted_by == q.person_id,
                                          lines=records.status_lines(record, statuses, now=now,
                                                                     warning=visible.parties is None)[1:],
                                          warning=record.warning if visible.parties is None else "",
                                          parties=statuses))
        return Mine(shown)

    async def serve(self, nc: NATS, *, version: str) -> Service:
        service = await add_service(nc, name="hns4d", version=version,
                                    description="CMCoord humanitarian notifications to parties", queue_group="hns4d")
        await answer(service, contract.SUBMIT, self.submit)
        await answer(service, contract.MINE, self.mine)
        return service
