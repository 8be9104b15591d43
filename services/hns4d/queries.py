"""HNS4D's answers over NATS request/reply (shared/contracts/hns4d.py): a submission from the bot,
checked and stored in one transaction, and what a person submitted with each party's answer."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.service import Service
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.hns4d import records
from services.hns4d.models import Record
from services.hns4d.records import Refused
from shared import events
from shared.contracts import hns4d as contract
from shared.contracts.hns4d import Mine, MineRequest, RecordStatus, Submitted, SubmitRequest
from shared.contracts.query import answer
from shared.store import Database


ATTEMPTS = 3


class Hns4dQueries:
    def __init__(self, *, db: Database) -> None:
        self.db = db

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
        async with self.db.unit_of_work() as uow:
            rows = (await uow.session.exec(select(Record).where(Record.submitted_by == q.person_id).order_by(
                col(Record.submitted_at).desc()).limit(q.limit))).all()
            shown = []
            now = uow.clock.now()
            for record in rows:
                statuses = await records.party_statuses(uow.session, record, now=now)
                records.audit(uow, who=f"person:{q.person_id}", action="viewed", record_id=record.id,
                              detail=record.reference)
                shown.append(RecordStatus(reference=record.reference, kind=record.kind, country=record.country,
                                          name=record.name, state=record.state, revision=record.revision,
                                          lines=records.status_lines(record, statuses, now=now)[1:],
                                          warning=record.warning, parties=statuses))
        return Mine(shown)

    async def serve(self, nc: NATS, *, version: str) -> Service:
        service = await add_service(nc, name="hns4d", version=version,
                                    description="CMCoord humanitarian notifications to parties", queue_group="hns4d")
        await answer(service, contract.SUBMIT, self.submit)
        await answer(service, contract.MINE, self.mine)
        return service
