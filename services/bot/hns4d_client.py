"""HNS4D's answers over NATS request/reply (the bot never reads its tables): a submission, and what a
person submitted with each party's answer (shared/contracts/hns4d.py)."""

from __future__ import annotations

import uuid

from nats.errors import Error as NatsError

from shared.bus import Bus, QueryError
from shared.contracts import hns4d as contract
from shared.contracts.hns4d import RecordStatus, Submission, Submitted
from shared.contracts.query import ask


class Hns4dUnavailable(Exception):
    pass


class Hns4dClient:
    def __init__(self, bus: Bus, *, timeout: float) -> None:
        self.bus, self.timeout = bus, timeout

    async def submit(self, submission_id: uuid.UUID, person_id: uuid.UUID, submission: Submission) -> Submitted:
        """The reference, or each problem; asked again with the same id, the same answer."""
        request = contract.SubmitRequest(submission_id=submission_id, person_id=person_id, submission=submission)
        try:
            return await ask(self.bus, contract.SUBMIT, request, timeout=self.timeout)
        except (QueryError, NatsError, TimeoutError) as err:
            raise Hns4dUnavailable(str(err)) from err

    async def mine(self, person_id: uuid.UUID) -> list[RecordStatus]:
        try:
            return list((await ask(self.bus, contract.MINE, contract.MineRequest(person_id=person_id),
                                   timeout=self.timeout)).root)
        except (QueryError, NatsError, TimeoutError) as err:
            raise Hns4dUnavailable(str(err)) from err
