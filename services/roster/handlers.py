"""Roster handlers: plain async functions taking their dependencies as arguments."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from sqlalchemy.exc import IntegrityError

from services.roster import rotation, store
from services.roster.models import Deployment
from shared import events
from shared.bus import PermanentError
from shared.clock import Clock
from shared.events import Envelope
from shared.store import Database, UnitOfWork

log = structlog.get_logger("roster")

SOURCE = "roster"


async def on_handover_submitted(uow: UnitOfWork, envelope: Envelope, event: events.HandoverNoteSubmitted) -> None:
    """Store the note against the post; runs inside the consumer's transaction,
    after the event id was claimed."""
    recorded = await store.record_handover(uow, note=event)
    if recorded is None:
        raise PermanentError(f"deployment {event.deployment_id} is unknown or not held by the sender")
    log.debug("handover_recorded", deployment_id=str(event.deployment_id), revision=recorded[1])


async def on_departure_changed(uow: UnitOfWork, envelope: Envelope, event: events.DepartureChanged) -> None:
    if not await store.change_planned_end(uow, change=event, today=uow.clock.now().date()):
        raise PermanentError(f"deployment {event.deployment_id}: not the sender's, over, or a date before its start")
    log.info("planned_end_changed", deployment_id=str(event.deployment_id))


async def prefetch_deployments(uow: UnitOfWork, batch: Sequence[events.Event]) -> list[Deployment]:
    return await store.load_deployments(uow, ids=[e.deployment_id for e in batch if isinstance(e, events.HandoverNoteSubmitted)])


async def run_rotation_scan(*, db: Database, clock: Clock, policy: rotation.RotationPolicy) -> store.ScanResult:
    """One scan; a concurrent scanner that wrote the same facts first makes ours
    fail on the unique event id, and the retry then finds nothing left to do."""
    for attempt in (1, 2, 3):
        try:
            async with db.unit_of_work(source=SOURCE, clock=clock) as uow:
                result = await store.rotation_scan(uow, today=clock.now().date(), policy=policy)
            if result.announced:
                log.info("rotation_scan", announced=len(result.announced))
            return result
        except IntegrityError:
            if attempt == 3:
                raise
            log.info("rotation_scan_raced", attempt=attempt)
    raise AssertionError("unreachable")
