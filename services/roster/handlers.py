"""Roster handlers: every change to the roster's state that an event or a command asks for.

An event handler is `async def on_x(event, *, uow, clock)`, applied once per event in the
consumer's unit of work (services/roster/consumers.py says which durable takes which event);
the event's envelope is `uow.cause`. The use cases of the service's queries, jobs and CLI (the
rotation scan, invitations and their redeeming, revoking or confirming a link) are here too: those
run in a caller's unit of work take it as their first argument, the others the store and the clock
as keywords."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.roster import rotation, store
from services.roster.importer import StoredPost
from services.roster.models import (
    Deployment,
    HandoverNote,
    Person,
    RegistrationToken,
    TelegramLink,
    TelegramLinkHold,
    join_list,
)
from shared import events
from shared.bus import PermanentError
from shared.clock import Clock
from shared.events import deterministic_id
from shared.profile import ProfileValueError, hat_name, language_code, normalise_phone
from shared.store import Database, UnitOfWork, upsert

log = structlog.get_logger("roster")


async def on_handover_submitted(event: events.HandoverNoteSubmitted, *, uow: UnitOfWork, clock: Clock) -> None:
    """Store the note against the post; runs inside the consumer's transaction,
    after the event id was claimed."""
    recorded = await record_handover(uow, note=event)
    if recorded is None:
        raise PermanentError(f"deployment {event.deployment_id} is unknown or not held by the sender")
    log.debug("handover_recorded", deployment_id=str(event.deployment_id), revision=recorded[1])


async def on_departure_changed(event: events.DepartureChanged, *, uow: UnitOfWork, clock: Clock) -> None:
    if not await change_planned_end(uow, change=event, today=clock.now().date()):
        raise PermanentError(f"deployment {event.deployment_id}: not the sender's, over, or a date before its start")
    log.info("planned_end_changed", deployment_id=str(event.deployment_id))


async def record_handover(uow: UnitOfWork, *, note: events.HandoverNoteSubmitted) -> tuple[uuid.UUID, int] | None:
    """Store (or revise) the note against the deployment's post in one
    statement; (note id, revision), or None if the deployment is unknown or not
    the sender's."""
    session = uow.session
    dep = await session.get(Deployment, note.deployment_id)
    if dep is None or dep.person_id != note.person_id:
        return None
    fields = {
        "key_counterparts": note.key_counterparts,
        "open_issues": note.open_issues,
        "recurring_meetings": note.recurring_meetings,
        "where_files_live": note.where_files_live,
        "advice_to_successor": note.advice_to_successor,
        "submitted_at": note.submitted_at,
    }
    table = HandoverNote.__table__  # type: ignore[attr-defined]
    statement = (
        upsert(session, table)
        .values(id=uuid.uuid4(), deployment_id=dep.id, post_id=dep.post_id, person_id=dep.person_id, revision=1, **fields)
        .on_conflict_do_update(index_elements=["deployment_id"], set_={**fields, "revision": table.c.revision + 1})
        .returning(table.c.id, table.c.revision)
    )
    note_id, revision = (await session.exec(statement)).one()
    uow.emit(
        events.HandoverRecorded(
            note_id=note_id, deployment_id=dep.id, post_id=dep.post_id, person_id=dep.person_id, revision=revision
        )
    )
    return note_id, revision


async def change_planned_end(uow: UnitOfWork, *, change: events.DepartureChanged, today: date) -> bool:
    """The officer's new departure date; False if the deployment is not theirs, is over, or the
    date is before its start or in the past. The rotation scan re-times what follows."""
    dep = await uow.session.get(Deployment, change.deployment_id)
    if dep is None or dep.person_id != change.person_id or dep.actual_end is not None:
        return False
    if change.planned_end < max(dep.start, today):
        return False
    if dep.planned_end != change.planned_end:
        dep.planned_end = change.planned_end
        dep.updated_at = uow.clock.now()
        uow.session.add(dep)
        await store.bump_revision(uow.session)
    return True


async def on_profile_updated(event: events.ProfileUpdated, *, uow: UnitOfWork, clock: Clock) -> None:
    """An officer's own phone, languages or hats (/profile), written as an import would write them, and the
    language they read the bot in (not an import's):
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
    for field, value in (("phone", phone), ("languages", languages), ("locale", event.locale)):
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


@dataclass
class ScanResult:
    announced: list[events.Event]
    reopened: list[rotation.Reopened] = field(default_factory=list)

    def count(self, event_type: type[events.Event]) -> int:
        return sum(isinstance(e, event_type) for e in self.announced)


async def rotation_scan(uow: UnitOfWork, *, today: date, policy: rotation.RotationPolicy) -> ScanResult:
    """Apply the rotation rules to every post; take back what was announced early, record and emit what is due.

    The posts and deployments are read as plain rows; only what changed is written back, in the
    caller's transaction, with one UPDATE per table. The collector is paused meanwhile (a scan of
    50,000 people makes a few hundred thousand objects, and no cycles)."""
    with store.collector_paused():
        clock_row = await store.scan_clock(uow.session)
        assessed: list[tuple[StoredPost, dict[uuid.UUID, str], rotation.PostOutcome]] = []
        for post, deployments in await store.rotation_rows(uow.session):
            view = rotation.PostView(id=post.id, gapped_since=post.gapped_since, gap_alerts_sent=post.gap_alerts_sent,
                                     deployments=tuple(d.view for d in deployments))
            outcome = rotation.assess_post(view, today, policy, jump_from=clock_row.jump_from)
            if outcome.decisions or outcome.markers or outcome.reopened or (
                    (post.gapped_since, post.gap_alerts_sent) != (outcome.gapped_since, outcome.gap_alerts_sent)):
                assessed.append((post, {d.view.id: d.role for d in deployments}, outcome))
        reopened = [r for _, _, outcome in assessed for r in outcome.reopened]
        if reopened:  # the jump was wrong, and is undone: what is announced again from now on carries new ids
            clock_row.epoch += 1
            clock_row.jump_from = None
        announced: list[events.Event] = []
        marks: dict[uuid.UUID, dict[str, object]] = {}  # deployment id -> its rotation columns, as they now are
        gaps: dict[uuid.UUID, dict[str, object]] = {}  # post id -> its gap columns, as they now are
        for post, roles, outcome in assessed:
            for dep_id, marked in outcome.markers.items():
                marks[dep_id] = _marks(marked)
            for decision in outcome.decisions:
                event = _record(decision, post=post, roles=roles, marks=marks)
                if event is not None:
                    uow.emit(event, id=rotation.announcement_id(decision, clock_row.epoch))
                    announced.append(event)
            if (post.gapped_since, post.gap_alerts_sent) != (outcome.gapped_since, outcome.gap_alerts_sent):
                gaps[post.id] = {"gapped_since": outcome.gapped_since, "gap_alerts_sent": outcome.gap_alerts_sent}
        await store.mark_rotation(uow.session, deployments=marks, posts=gaps)
    return ScanResult(announced, reopened)


def _marks(view: rotation.DeploymentView) -> dict[str, object]:
    return {"started_announced": view.started_announced, "ending_soon_announced_for": view.ending_soon_announced_for,
            "ended_announced": view.ended_announced}


def _record(decision: rotation.Decision, *, post: StoredPost, roles: dict[uuid.UUID, str],
            marks: dict[uuid.UUID, dict[str, object]]) -> events.Event | None:
    """Mark the decision on its deployment's rotation columns (`marks`); the event to announce, if any."""

    def facts(view: rotation.DeploymentView, **columns: object) -> dict[str, object]:
        marks.setdefault(view.id, _marks(view)).update(columns)
        return store.deployment_facts(view, post, role=roles[view.id])

    match decision:
        case rotation.Started(deployment=view, announce=announce):
            started = facts(view, started_announced=True)
            return events.DeploymentStarted(**started) if announce else None
        case rotation.EndingSoon(deployment=view, days_left=days_left, successor_person_id=successor):
            return events.DeploymentEndingSoon(**facts(view, ending_soon_announced_for=view.planned_end),
                                               days_left=days_left, successor_person_id=successor)
        case rotation.Ended(deployment=view, announce=announce):
            ended = facts(view, ended_announced=True)
            return events.DeploymentEnded(**ended, ended_on=view.end) if announce else None
        case rotation.Gapped(gapped_since=since, alert_number=n, last_deployment_id=last):
            return events.PostGapped(
                post_id=post.id, country=post.country, region=post.region, title=post.title,
                duty_station=post.duty_station, gapped_since=since, alert_number=n, last_deployment_id=last,
            )
        case rotation.Filled(gapped_since=since, deployment=view):
            return events.PostFilled(
                post_id=post.id, country=post.country, region=post.region, deployment_id=view.id,
                person_id=view.person_id, filled_on=max(view.start, since), gapped_since=since,
            )
    raise AssertionError(f"unhandled decision {decision!r}")


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
                            max_jump: timedelta | None, confirm_jump: bool = False) -> ScanResult:
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
                result = await rotation_scan(uow, today=now.date(), policy=policy)
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


# Registration. A person has at most one linked Telegram account. An invitation is single use,
# and only the newest one works (a new one revokes the older unused ones). An account whose
# username is not the one the roster has for the person is held for the CMCS desk to confirm.
# Every change of link is an event: `telegram.linked`, and `telegram.unlinked` with the account
# that lost it (revoked by the desk, or moved to another account), which notify tells.


async def create_invite(uow: UnitOfWork, *, email: str, ttl: timedelta) -> tuple[Person, str]:
    """A single-use registration token for the person with this email; their older unused
    invitations stop working (only the newest link sent to them does)."""
    session = uow.session
    person = await store.person_by_email(session, email)
    token = secrets.token_urlsafe(24)  # 192 bits
    now = uow.clock.now()
    await store.revoke_invites(session, person_id=person.id, now=now)
    session.add(RegistrationToken(token_hash=store.hash_token(token), person_id=person.id, created_at=now, expires_at=now + ttl))
    return person, token


class RegistrationRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # unknown | used | revoked | expired | taken


@dataclass(frozen=True)
class Registration:
    person: Person
    held: bool = False  # the link waits for the CMCS desk (a username not the roster's)


async def _link(uow: UnitOfWork, *, person_id: uuid.UUID, telegram_user_id: int, now: datetime,
                confirmed_by_desk: bool = False) -> None:
    """Link the account to the person; an account linked to them before loses the link and is told."""
    session = uow.session
    link = await session.get(TelegramLink, person_id)
    if link is None:
        session.add(TelegramLink(person_id=person_id, telegram_user_id=telegram_user_id, linked_at=now))
    elif link.telegram_user_id != telegram_user_id:  # a new phone or account: the link moves to it
        uow.emit(events.TelegramUnlinked(person_id=person_id, telegram_user_id=link.telegram_user_id, reason="moved"))
        link.telegram_user_id, link.linked_at = telegram_user_id, now
        session.add(link)
    hold = await session.get(TelegramLinkHold, person_id)
    if hold is not None:  # settled: a link held earlier is not confirmed later by mistake
        await session.delete(hold)
    uow.emit(events.TelegramLinked(person_id=person_id, telegram_user_id=telegram_user_id,
                                   confirmed_by_desk=confirmed_by_desk))
    # no revision bump: a Telegram link is not part of any contact card or directory row


async def redeem_invite(uow: UnitOfWork, *, token: str, telegram_user_id: int,
                        telegram_username: str | None = None) -> Registration:
    """Link a Telegram account to the token's person; the token is spent. When the roster has a
    Telegram username for the person and the account's (`telegram_username`, "" for none) is
    another, the link is held for the CMCS desk instead (`confirm_link`), and the desk is told;
    None (a caller that does not say) is not checked."""
    session, now = uow.session, uow.clock.now()
    row = await session.get(RegistrationToken, store.hash_token(token))
    if row is None:
        raise RegistrationRefused("unknown")
    if row.used_at is not None:
        raise RegistrationRefused("used")
    if row.revoked_at is not None:
        raise RegistrationRefused("revoked")
    if store.as_utc(row.expires_at) <= now:
        raise RegistrationRefused("expired")
    taken = (await session.exec(select(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id))).first()
    if taken is not None and taken.person_id != row.person_id:
        raise RegistrationRefused("taken")
    person = await session.get(Person, row.person_id)
    assert person is not None
    row.used_at = now
    session.add(row)
    expected = person.telegram_username
    if (taken is None and telegram_username is not None and expected
            and not store.same_username(expected, telegram_username)):
        hold = await session.get(TelegramLinkHold, person.id)
        if hold is None:
            hold = TelegramLinkHold(person_id=person.id, telegram_user_id=telegram_user_id, held_at=now)
        hold.telegram_user_id, hold.telegram_username, hold.held_at = telegram_user_id, telegram_username[:64], now
        session.add(hold)
        uow.emit(events.TelegramLinkHeld(person_id=person.id, telegram_user_id=telegram_user_id,
                                         telegram_username=telegram_username[:64]))
        return Registration(person, held=True)
    await _link(uow, person_id=person.id, telegram_user_id=telegram_user_id, now=now)
    return Registration(person)


@dataclass(frozen=True)
class Revoked:
    person_id: uuid.UUID
    name: str
    telegram_user_id: int | None  # the account unlinked; None: none was linked
    invites: int  # unused invitations that stopped working
    hold_dropped: bool


async def revoke(uow: UnitOfWork, *, email: str) -> Revoked:
    """Unlink the person's Telegram account at once (it is told), and stop their unused
    invitations and any link held for confirmation."""
    session, now = uow.session, uow.clock.now()
    person = await store.person_by_email(session, email)
    link = await session.get(TelegramLink, person.id)
    unlinked = None
    if link is not None:
        unlinked = link.telegram_user_id
        await session.delete(link)
        uow.emit(events.TelegramUnlinked(person_id=person.id, telegram_user_id=unlinked, reason="revoked"))
    invites = await store.revoke_invites(session, person_id=person.id, now=now)
    hold = await session.get(TelegramLinkHold, person.id)
    if hold is not None:
        await session.delete(hold)
    return Revoked(person.id, person.name, unlinked, invites, hold is not None)


class NothingToConfirm(Exception):
    """No link waits for the desk for this person, or the account is linked to someone else now."""


@dataclass(frozen=True)
class Confirmed:
    person_id: uuid.UUID
    name: str
    telegram_user_id: int
    telegram_username: str


async def confirm(uow: UnitOfWork, *, email: str) -> Confirmed:
    """The CMCS desk confirms the link held for the person: it is made (the account is told; an
    account linked to them before loses the link and is told)."""
    session, now = uow.session, uow.clock.now()
    person = await store.person_by_email(session, email)
    hold = await session.get(TelegramLinkHold, person.id)
    if hold is None:
        raise NothingToConfirm(f"no Telegram link waits for confirmation for {person.email}")
    taken = (await session.exec(select(TelegramLink).where(
        TelegramLink.telegram_user_id == hold.telegram_user_id))).first()
    if taken is not None and taken.person_id != person.id:
        raise NothingToConfirm(f"the Telegram account held for {person.email} is linked to someone else now")
    confirmed = Confirmed(person.id, person.name, hold.telegram_user_id, hold.telegram_username)
    await _link(uow, person_id=person.id, telegram_user_id=hold.telegram_user_id, now=now, confirmed_by_desk=True)
    return confirmed


async def revoke_link(*, db: Database, clock: Clock, email: str) -> Revoked:
    """`cmcoord roster revoke`: the person's Telegram link is removed at once (the account is
    told: `roster.telegram.unlinked`), with their unused invitations and any link held."""
    async with db.unit_of_work(source=store.SOURCE, clock=clock) as uow:
        revoked = await revoke(uow, email=email)
    log.info("telegram_link_revoked", person_id=str(revoked.person_id), unlinked=revoked.telegram_user_id is not None,
             invites=revoked.invites)
    return revoked


async def confirm_link(*, db: Database, clock: Clock, email: str) -> Confirmed:
    """`cmcoord roster confirm-link`: the CMCS desk confirms a link held for the person."""
    async with db.unit_of_work(source=store.SOURCE, clock=clock) as uow:
        confirmed = await confirm(uow, email=email)
    log.info("telegram_link_confirmed", person_id=str(confirmed.person_id))
    return confirmed
