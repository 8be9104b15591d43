"""Roster handlers: every change to the roster's state that an event or a command asks for.

An event handler is `async def on_x(event, *, uow, clock)`, applied once per event in the
consumer's unit of work (services/roster/consumers.py says which durable takes which event);
the event's envelope is `uow.cause`. Use cases of the service and the CLI (the rotation scan,
revoking or confirming a link) take the store and the clock as keywords too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.roster import rotation, store
from services.roster.models import Deployment, Person, join_list
from shared import events
from shared.bus import PermanentError
from shared.clock import Clock
from shared.events import deterministic_id
from shared.profile import ProfileValueError, hat_name, language_code, normalise_phone
from shared.store import Database, UnitOfWork

log = structlog.get_logger("roster")


async def on_handover_submitted(event: events.HandoverNoteSubmitted, *, uow: UnitOfWork, clock: Clock) -> None:
    """Store the note against the post; runs inside the consumer's transaction,
    after the event id was claimed."""
    recorded = await store.record_handover(uow, note=event)
    if recorded is None:
        raise PermanentError(f"deployment {event.deployment_id} is unknown or not held by the sender")
    log.debug("handover_recorded", deployment_id=str(event.deployment_id), revision=recorded[1])


async def on_departure_changed(event: events.DepartureChanged, *, uow: UnitOfWork, clock: Clock) -> None:
    if not await store.change_planned_end(uow, change=event, today=clock.now().date()):
        raise PermanentError(f"deployment {event.deployment_id}: not the sender's, over, or a date before its start")
    log.info("planned_end_changed", deployment_id=str(event.deployment_id))


async def on_profile_updated(event: events.ProfileUpdated, *, uow: UnitOfWork, clock: Clock) -> None:
    """An officer's own phone, languages or hats (/profile), written as an import would write them:
    a roster.person.changed when anything changed. Hats go on the deployments the person holds
    today. Checked again here: only what the bot may send is written."""
    person = await uow.session.get(Person, event.person_id)
    if person is None:
        raise PermanentError(f"person {event.person_id} is unknown")
    field = "phone"  # the reason names the field, not the value: it is logged, and a phone is personal
    try:
        phone = normalise_phone(event.phone) if event.phone is not None else None
        field = "languages"
        languages = join_list([language_code(c) for c in event.languages]) if event.languages is not None else None
        field = "hats"
        hats = join_list([hat_name(h) for h in event.hats]) if event.hats is not None else None
    except ProfileValueError:
        raise PermanentError(f"profile of {event.person_id}: a value of its {field} is not allowed") from None
    now = clock.now()
    changed = []
    for field, value in (("phone", phone), ("languages", languages)):
        if value is not None and getattr(person, field) != value:
            setattr(person, field, value)
            changed.append(field)
    if hats is not None:
        held = (await uow.session.exec(select(Deployment).where(
            Deployment.person_id == person.id, Deployment.on(now.date())))).all()
        for dep in held:
            if dep.hats != hats:
                dep.hats, dep.updated_at = hats, now
                uow.session.add(dep)
                if "hats" not in changed:
                    changed.append("hats")
    if changed:
        person.updated_at = now
        uow.session.add(person)
        await store.bump_revision(uow.session)
        uow.emit(events.PersonChanged(person_id=person.id, created=False), id=deterministic_id("profile", uow.cause.id))
    log.info("profile_updated", person_id=str(person.id), changed=changed)


async def prefetch_deployments(uow: UnitOfWork, batch: Sequence[events.Event]) -> list[Deployment]:
    return await store.load_deployments(uow, ids=[e.deployment_id for e in batch if isinstance(e, events.HandoverNoteSubmitted)])


class ClockJumpRefused(Exception):
    """A scan too far past the last accepted one: its clock is suspect, nothing was done."""

    def __init__(self, *, last_scan_at: datetime, scan_at: datetime, max_jump: timedelta) -> None:
        self.last_scan_at, self.scan_at, self.max_jump = last_scan_at, scan_at, max_jump
        super().__init__(
            f"refused: this scan is at {scan_at:%Y-%m-%d %H:%M} UTC, {self.jump_hours:.0f} h after the last scan "
            f"({last_scan_at:%Y-%m-%d %H:%M} UTC), more than the {max_jump.total_seconds() / 3600:g} h allowed "
            "(CMCOORD_ROSTER_SCAN_MAX_JUMP_HOURS)")

    @property
    def jump_hours(self) -> float:
        return (self.scan_at - self.last_scan_at).total_seconds() / 3600


async def run_rotation_scan(*, db: Database, clock: Clock, policy: rotation.RotationPolicy,
                            max_jump: timedelta | None, confirm_jump: bool = False) -> store.ScanResult:
    """One scan, refused (ClockJumpRefused, nothing written) when its clock is more than
    `max_jump` past the last accepted scan unless the jump is confirmed; None turns the
    check off. A concurrent scanner that wrote the same facts first makes ours fail on the
    unique event id, and the retry then finds nothing left to do."""
    now = clock.now()
    for attempt in (1, 2, 3):
        try:
            async with db.unit_of_work(source=store.SOURCE, clock=clock) as uow:
                scan_clock = await store.scan_clock(uow.session)
                last = scan_clock.last_scan_at
                jump = rotation.clock_jump(last, now, None if confirm_jump else max_jump)
                if jump is not None and last is not None and max_jump is not None:
                    raise ClockJumpRefused(last_scan_at=last, scan_at=now, max_jump=max_jump)
                jumped = last is not None and max_jump is not None and now - last > max_jump
                if jumped and scan_clock.jump_from is None:
                    assert last is not None
                    scan_clock.jump_from = last.date()  # confirmed: remembered until a scan shows it wrong
                result = await store.rotation_scan(uow, today=now.date(), policy=policy)
                scan_clock.last_scan_at = now
                uow.session.add(scan_clock)
            if jumped:
                log.warning("rotation_scan_clock_jump_confirmed", last_scan_at=last.isoformat(),
                            scan_at=now.isoformat())
            for taken in result.reopened:
                log.warning("rotation_announcement_taken_back", fact=taken.fact, subject_id=str(taken.subject_id),
                            due=taken.due.isoformat(), scan_day=now.date().isoformat())
            if result.announced:
                log.info("rotation_scan", announced=len(result.announced))
            return result
        except IntegrityError:
            if attempt == 3:
                raise
            log.info("rotation_scan_raced", attempt=attempt)
    raise AssertionError("unreachable")


async def revoke_link(*, db: Database, clock: Clock, email: str) -> store.Revoked:
    """`cmcoord roster revoke`: the person's Telegram link is removed at once (the account is
    told: `roster.telegram.unlinked`), with their unused invitations and any link held."""
    async with db.unit_of_work(source=store.SOURCE, clock=clock) as uow:
        revoked = await store.revoke_link(uow, email=email)
    log.info("telegram_link_revoked", person_id=str(revoked.person_id), unlinked=revoked.telegram_user_id is not None,
             invites=revoked.invites)
    return revoked


async def confirm_link(*, db: Database, clock: Clock, email: str) -> store.Confirmed:
    """`cmcoord roster confirm-link`: the CMCS desk confirms a link held for the person."""
    async with db.unit_of_work(source=store.SOURCE, clock=clock) as uow:
        confirmed = await store.confirm_link(uow, email=email)
    log.info("telegram_link_confirmed", person_id=str(confirmed.person_id))
    return confirmed
