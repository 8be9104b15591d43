"""AAR reminders and escalations, sent through notify (notify.notification.requested).

Each pass takes the AARs with a step due; a step is claimed by bumping the AAR's
version in the transaction that writes the request to the outbox, so two lessons
processes never both send it, and the request's id is derived from (AAR, step)
so a repeat is one notification. A submitted AAR has no further steps.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import structlog

from services.lessons import handlers, store
from services.lessons.duties import DutyPolicy, Step
from services.lessons.models import Aar
from shared import events, notices
from shared.bus import Bus
from shared.clock import Clock
from shared.contracts.query import ask
from shared.contracts.roster import RECIPIENTS, RecipientsRequest
from shared.events import ReplyButton
from shared.periodic import Periodic
from shared.store import Database

log = structlog.get_logger("lessons")
WRITE_AAR = "aar"  # the bot opens /aar when this button is pressed


def _subject(aar: Aar) -> tuple[str, dict[str, str]]:
    """The key's suffix and parameter naming what the AAR is of: its operation, else the deployment's country."""
    return ("", {"operation": aar.operation}) if aar.operation else (".country", {"country": aar.country})


def request_for(aar: Aar, step: Step, *, officer: str, today: date) -> events.NotificationRequested:
    common: dict[str, Any] = {"about": str(aar.id), "occurrence": step.name}
    suffix, subject = _subject(aar)
    if step.audience == "officer":
        timing = "aar.reminder" if step.offset_days < 0 else "aar.today" if aar.due_on >= today else "aar.late"
        notice, text = notices.english(timing + suffix, due=aar.due_on, **subject)
        return events.NotificationRequested(kind="aar.reminder", person_ids=[aar.person_id], text=text, notice=notice,
                                            buttons=[ReplyButton(label="Write it now", reply=WRITE_AAR)],
                                            region=aar.region, **common)
    notice, text = notices.english("aar.overdue" + suffix, officer=officer, due=aar.due_on, days=step.offset_days,
                                   **subject)
    role = step.audience if aar.region is not None or step.audience == "cmcs_desk" else "cmcs_desk"
    return events.NotificationRequested(kind="aar.overdue", role=role,  # type: ignore[arg-type]
                                        region=aar.region if role == "regional_adviser" else None, text=text,
                                        notice=notice, buttons=[ReplyButton(label="Acknowledge", reply="ack")],
                                        **common)


class AarDuties(Periodic):
    name = "aar-duties"

    def __init__(self, *, db: Database, clock: Clock, policy: DutyPolicy, bus: Bus | None, tick_seconds: float,
                 query_timeout: float = 5.0) -> None:
        super().__init__(tick_seconds=tick_seconds)
        self.db, self.clock, self.policy, self.bus, self.query_timeout = db, clock, policy, bus, query_timeout

    async def _names(self, aars: list[Aar]) -> dict[str, str]:
        """Officers' names for the escalation texts (the roster's; "an officer" if it does not answer)."""
        if self.bus is None:
            return {}
        try:
            rows = await ask(self.bus, RECIPIENTS,
                             RecipientsRequest(person_ids=sorted({a.person_id for a in aars}, key=str)),
                             timeout=self.query_timeout)
        except Exception as err:  # the roster away: the text says "an officer"
            log.warning("officer_names_unavailable", error=str(err) or type(err).__name__)
            return {}
        return {str(r.person_id): r.name for r in rows.root}

    async def run_pass(self) -> None:
        now = self.clock.now()
        async with self.db.read() as session:
            due = await store.aars_with_steps_due(session, now)
        if not due:
            return
        escalating = [a for a in due if any(s.audience != "officer"
                                            for s in self.policy.due_now(a.due_on, a.next_step, now)[0])]
        names = await self._names(escalating) if escalating else {}
        for aar in due:
            steps, next_index = self.policy.due_now(aar.due_on, aar.next_step, now)
            async with self.db.unit_of_work(correlation_id=str(aar.id)) as uow:
                if not await handlers.claim_steps(uow, aar, next_step=next_index,
                                               next_at=self.policy.at(aar.due_on, next_index)):
                    continue  # another process took it, or the AAR was submitted meanwhile
                for step in steps:
                    uow.emit(request_for(aar, step, officer=names.get(str(aar.person_id), "an officer"),
                                         today=now.date()),
                             id=events.deterministic_id("aar.step", aar.id, step.name))
                    if step.audience != "officer":
                        uow.emit(events.AarOverdue(aar_id=aar.id, person_id=aar.person_id, country=aar.country,
                                                   region=aar.region, due_on=aar.due_on,
                                                   escalated_to=step.audience),  # type: ignore[arg-type]
                                 id=events.deterministic_id("aar.overdue", aar.id, step.name))
            log.info("aar_steps_taken", aar_id=str(aar.id), steps=[s.name for s in steps])
