"""A party silent past its deadline: the officer who sent the notification is told, then the regional
adviser, then the CMCS desk, each once (services/hns4d/records.py takes the steps and claims them)."""

from __future__ import annotations

import structlog

from services.hns4d import records, store
from shared.clock import Clock
from shared.periodic import Periodic
from shared.store import Database

log = structlog.get_logger("hns4d")


class SilenceSteps(Periodic):
    name = "silence-steps"

    def __init__(self, *, db: Database, clock: Clock, tick_seconds: float) -> None:
        super().__init__(tick_seconds=tick_seconds)
        self.db, self.clock = db, clock

    async def run_pass(self) -> None:
        async with self.db.read() as session:
            due = await store.silences_due(session, self.clock.now())
        for forwarding in due:
            async with self.db.unit_of_work(correlation_id=str(forwarding.record_id)) as uow:
                fresh = await uow.session.get(type(forwarding), forwarding.id)
                told = await records.take_silence_steps(uow, fresh) if fresh is not None else []
            if told:
                log.info("party_silent", forwarding_id=str(forwarding.id), told=told)
