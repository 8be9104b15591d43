"""Roster reads and writes. Functions take a session or unit of work and
keyword-only arguments; nothing here talks to NATS."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.roster import rotation
from services.roster.importer import (
    Change,
    DeploymentData,
    ExistingDeployment,
    PersonData,
    RosterRow,
    RowError,
    plan_changes,
)
from services.roster.models import (
    CounterpartContact,
    Deployment,
    HandoverNote,
    Person,
    Post,
    RegistrationToken,
    RosterRevision,
    ScanClock,
    TelegramLink,
    Training,
    join_list,
    split_list,
)
from shared import events
from shared.regions import REGIONS
from shared.store import Database, UnitOfWork, upsert


async def bump_revision(session: AsyncSession) -> None:
    row = await session.get(RosterRevision, 1)
    if row is None:
        session.add(RosterRevision(id=1, revision=1))
    else:
        # an SQL increment, not read-modify-write: concurrent writers never share a revision
        await session.exec(
            update(RosterRevision).where(col(RosterRevision.id) == 1).values(revision=col(RosterRevision.revision) + 1)
        )


async def revision_now(db: Database) -> int:
    """The roster revision with the least overhead (checked on every query)."""
    async with db.engine.connect() as conn:
        value = (await conn.exec_driver_sql("SELECT revision FROM roster_revision WHERE id = 1")).scalar()
    return int(value or 0)


# --- import -----------------------------------------------------------------


async def plan_import(session: AsyncSession, *, rows: list[RosterRow]) -> tuple[list[Change], list[RowError]]:
    emails = {r.person.email for r in rows}
    people: dict[str, PersonData] = {}
    existing: list[ExistingDeployment] = []
    found = await session.exec(select(Person).where(col(Person.email).in_(emails)))
    by_id: dict[uuid.UUID, Person] = {}
    for p in found.all():
        by_id[p.id] = p
        people[p.email] = PersonData(
            email=p.email, name=p.name, phone=p.phone, telegram_username=p.telegram_username,
            organisation=p.organisation, languages=tuple(split_list(p.languages)), timezone=p.timezone,
        )
    if by_id:
        result = await session.exec(
            select(Deployment, Post).join(Post).where(col(Deployment.person_id).in_(list(by_id)))
        )
        for dep, post in result.all():
            existing.append(
                ExistingDeployment(
                    country=post.country, duty_station=post.duty_station, region=post.region, title=post.title,
                    role=dep.role, start=dep.start, planned_end=dep.planned_end, actual_end=dep.actual_end,
                    hats=tuple(split_list(dep.hats)), id=dep.id, email=by_id[dep.person_id].email,
                )
            )
    return plan_changes(rows, people, existing)


async def apply_rows(uow: UnitOfWork, *, rows: list[RosterRow]) -> None:
    """Upsert people (by email), posts, deployments and trainings from valid rows.

    What exists is loaded once up front; new rows get their ids in Python, so
    the ORM writes them as multi-row inserts at commit."""
    session, now = uow.session, uow.clock.now()
    emails = list({r.person.email for r in rows})
    people = {p.email: p for p in (await session.exec(select(Person).where(col(Person.email).in_(emails)))).all()}
    posts = {(p.country, p.duty_station, p.title): p for p in (await session.exec(select(Post))).all()}
    known_ids = [p.id for p in people.values()]
    deployments = {
        (d.person_id, d.post_id, d.start): d
        for d in (await session.exec(select(Deployment).where(col(Deployment.person_id).in_(known_ids)))).all()
    }
    trainings = {
        (t.person_id, t.course): t
        for t in (await session.exec(select(Training).where(col(Training.person_id).in_(known_ids)))).all()
    }
    touched: set[str] = set()
    new: dict[type, list[object]] = {Person: [], Post: [], Deployment: [], Training: []}
    with session.no_autoflush:
        for row in rows:
            person = _upsert_person(uow, people=people, touched=touched, row=row, now=now, new=new)
            for course, completed in row.trainings:
                known = trainings.get((person.id, course))
                if known is None:
                    trainings[(person.id, course)] = known = Training(person_id=person.id, course=course,
                                                                      completed_on=completed)
                    new[Training].append(known)
                elif completed is not None and known.completed_on != completed:
                    known.completed_on = completed
            if row.deployment is not None:
                _upsert_deployment(uow, person=person, data=row.deployment, posts=posts, deployments=deployments,
                                   now=now, new=new)
    # Parents before children: without relationship()s the ORM does not order
    # inserts across tables by their foreign keys.
    for model in (Person, Post, Deployment, Training):
        session.add_all(new[model])
        await session.flush()
    await bump_revision(session)


def _upsert_person(uow: UnitOfWork, *, people: dict[str, Person], touched: set[str], row: RosterRow,
                   now: datetime, new: dict[type, list[object]]) -> Person:
    p = row.person
    person = people.get(p.email)
    if p.email in touched:  # a later row of the same person: the first row's details stand
        assert person is not None
        return person
    touched.add(p.email)
    created = person is None
    if person is None:
        default_tz = REGIONS[row.deployment.region].timezone if row.deployment else "UTC"
        person = Person(email=p.email, name=p.name, timezone=p.timezone or default_tz, created_at=now, updated_at=now)
        people[p.email] = person
        new[Person].append(person)
    values = {
        "name": p.name,
        "phone": p.phone,
        "telegram_username": p.telegram_username,
        "organisation": p.organisation,
        "languages": join_list(list(p.languages)),
        "timezone": p.timezone or person.timezone,
    }
    if created or any(getattr(person, k) != v for k, v in values.items()):
        for k, v in values.items():
            setattr(person, k, v)
        person.updated_at = now
        uow.emit(events.PersonChanged(person_id=person.id, created=created))
    return person


def _upsert_deployment(
    uow: UnitOfWork,
    *,
    person: Person,
    data: DeploymentData,
    posts: dict[tuple[str, str, str], Post],
    deployments: dict[tuple[uuid.UUID, uuid.UUID, date], Deployment],
    now: datetime,
    new: dict[type, list[object]],
) -> None:
    post = posts.get((data.country, data.duty_station, data.title))
    if post is None:
        post = Post(country=data.country, duty_station=data.duty_station, region=data.region, title=data.title)
        posts[(data.country, data.duty_station, data.title)] = post
        new[Post].append(post)
    elif post.region != data.region:
        post.region = data.region
    dep = deployments.get((person.id, post.id, data.start))
    hats = join_list(list(data.hats))
    if dep is None:
        dep = Deployment(
            person_id=person.id, post_id=post.id, role=data.role, start=data.start, planned_end=data.planned_end,
            actual_end=data.actual_end, hats=hats, created_at=now, updated_at=now,
        )
        deployments[(person.id, post.id, data.start)] = dep
        new[Deployment].append(dep)
        uow.emit(
            events.DeploymentAssigned(**_deployment_facts(dep, post)),
            id=events.deterministic_id("deployment.assigned", dep.id),
        )
        return
    if (dep.role, dep.planned_end, dep.actual_end, dep.hats) != (data.role, data.planned_end, data.actual_end, hats):
        dep.role, dep.planned_end, dep.actual_end, dep.hats = data.role, data.planned_end, data.actual_end, hats
        dep.updated_at = now


def _deployment_facts(dep: Deployment, post: Post) -> dict[str, object]:
    return {
        "deployment_id": dep.id,
        "person_id": dep.person_id,
        "post_id": post.id,
        "country": post.country,
        "region": post.region,
        "role": dep.role,
        "start": dep.start,
        "planned_end": dep.planned_end,
    }


# --- rotation scan ----------------------------------------------------------


@dataclass
class ScanResult:
    announced: list[events.Event]
    reopened: list[rotation.Reopened] = field(default_factory=list)

    def count(self, event_type: type[events.Event]) -> int:
        return sum(isinstance(e, event_type) for e in self.announced)


async def scan_clock(session: AsyncSession) -> ScanClock:
    """The scan clock's row, locked until the transaction ends (PostgreSQL; SQLite writes are serial anyway)."""
    row = (await session.exec(select(ScanClock).where(ScanClock.id == 1).with_for_update())).first()
    if row is None:
        row = ScanClock(id=1)
        session.add(row)
    elif row.last_scan_at is not None:
        row.last_scan_at = _as_utc(row.last_scan_at)
    return row


async def rotation_scan(uow: UnitOfWork, *, today: date, policy: rotation.RotationPolicy) -> ScanResult:
    """Apply the rotation rules to every post; take back what was announced early, record and emit what is due."""
    session = uow.session
    clock_row = await scan_clock(session)
    posts = {p.id: p for p in (await session.exec(select(Post))).all()}
    deployments = (await session.exec(select(Deployment))).all()
    by_post: dict[uuid.UUID, list[Deployment]] = {}
    for dep in deployments:
        by_post.setdefault(dep.post_id, []).append(dep)
    rows = {dep.id: dep for dep in deployments}
    outcomes: list[tuple[Post, rotation.PostOutcome]] = []
    for post in posts.values():
        view = rotation.PostView(
            id=post.id,
            gapped_since=post.gapped_since,
            gap_alerts_sent=post.gap_alerts_sent,
            deployments=tuple(
                rotation.DeploymentView(
                    id=d.id, person_id=d.person_id, post_id=d.post_id, start=d.start, planned_end=d.planned_end,
                    actual_end=d.actual_end, started_announced=d.started_announced,
                    ending_soon_announced_for=d.ending_soon_announced_for, ended_announced=d.ended_announced,
                )
                for d in by_post.get(post.id, [])
            ),
        )
        outcomes.append((post, rotation.assess_post(view, today, policy, jump_from=clock_row.jump_from)))
    reopened = [r for _, outcome in outcomes for r in outcome.reopened]
    if reopened:  # the jump was wrong, and is undone: what is announced again from now on carries new ids
        clock_row.epoch += 1
        clock_row.jump_from = None
    announced: list[events.Event] = []
    for post, outcome in outcomes:
        for dep_id, marks in outcome.markers.items():
            row = rows[dep_id]
            row.started_announced = marks.started_announced
            row.ending_soon_announced_for = marks.ending_soon_announced_for
            row.ended_announced = marks.ended_announced
        for decision in outcome.decisions:
            event = _record(decision, post=post, rows=rows)
            if event is not None:
                uow.emit(event, id=rotation.announcement_id(decision, clock_row.epoch))
                announced.append(event)
        if (post.gapped_since, post.gap_alerts_sent) != (outcome.gapped_since, outcome.gap_alerts_sent):
            post.gapped_since, post.gap_alerts_sent = outcome.gapped_since, outcome.gap_alerts_sent
            session.add(post)
    return ScanResult(announced, reopened)


def _record(decision: rotation.Decision, *, post: Post, rows: dict[uuid.UUID, Deployment]) -> events.Event | None:
    """Mark the decision on its row; the event to announce, if any."""
    match decision:
        case rotation.Started(deployment=view, announce=announce):
            dep = rows[view.id]
            dep.started_announced = True
            return events.DeploymentStarted(**_deployment_facts(dep, post)) if announce else None
        case rotation.EndingSoon(deployment=view, days_left=days_left, successor_person_id=successor):
            dep = rows[view.id]
            dep.ending_soon_announced_for = dep.planned_end
            return events.DeploymentEndingSoon(
                **_deployment_facts(dep, post), days_left=days_left, successor_person_id=successor
            )
        case rotation.Ended(deployment=view, announce=announce):
            dep = rows[view.id]
            dep.ended_announced = True
            return events.DeploymentEnded(**_deployment_facts(dep, post), ended_on=dep.end) if announce else None
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


# --- handover notes ---------------------------------------------------------


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
        await bump_revision(uow.session)
    return True


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


async def load_deployments(uow: UnitOfWork, *, ids: list[uuid.UUID]) -> list[Deployment]:
    """Bring these deployments into the session in one query (batch prefetch)."""
    return list((await uow.session.exec(select(Deployment).where(col(Deployment.id).in_(ids)))).all())


# --- registration -----------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_invite(uow: UnitOfWork, *, email: str, ttl: timedelta) -> tuple[Person, str]:
    """A single-use registration token for the person with this email."""
    session = uow.session
    person = (await session.exec(select(Person).where(Person.email == email.strip().lower()))).first()
    if person is None:
        raise LookupError(f"nobody on the roster has the email {email!r}")
    token = secrets.token_urlsafe(24)  # 192 bits
    now = uow.clock.now()
    session.add(RegistrationToken(token_hash=hash_token(token), person_id=person.id, created_at=now, expires_at=now + ttl))
    return person, token


class RegistrationRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # unknown | used | expired | taken


def _as_utc(value: datetime) -> datetime:
    # SQLite (and PostgreSQL's timestamp without time zone) hand datetimes back naive; they are UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def redeem_invite(uow: UnitOfWork, *, token: str, telegram_user_id: int) -> Person:
    """Link a Telegram account to the token's person; the token is spent."""
    session, now = uow.session, uow.clock.now()
    row = await session.get(RegistrationToken, hash_token(token))
    if row is None:
        raise RegistrationRefused("unknown")
    if row.used_at is not None:
        raise RegistrationRefused("used")
    if _as_utc(row.expires_at) <= now:
        raise RegistrationRefused("expired")
    taken = (await session.exec(select(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id))).first()
    if taken is not None and taken.person_id != row.person_id:
        raise RegistrationRefused("taken")
    row.used_at = now
    link = await session.get(TelegramLink, row.person_id)
    if link is None:
        session.add(TelegramLink(person_id=row.person_id, telegram_user_id=telegram_user_id, linked_at=now))
    else:  # a new phone or account: the person's link moves to it
        link.telegram_user_id, link.linked_at = telegram_user_id, now
    uow.emit(events.TelegramLinked(person_id=row.person_id, telegram_user_id=telegram_user_id))
    # no revision bump: a Telegram link is not part of any contact card or directory row
    person = await session.get(Person, row.person_id)
    assert person is not None
    return person


async def person_by_telegram(session: AsyncSession, *, telegram_user_id: int) -> Person | None:
    link = (await session.exec(select(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id))).first()
    return None if link is None else await session.get(Person, link.person_id)


async def handover_note(session: AsyncSession, *, deployment_id: uuid.UUID) -> HandoverNote | None:
    return (await session.exec(select(HandoverNote).where(HandoverNote.deployment_id == deployment_id))).first()


@dataclass(frozen=True)
class RecipientRow:
    person: Person
    regions: tuple[str, ...]
    telegram_user_id: int | None


async def people_by_email(session: AsyncSession, emails: list[str]) -> list[uuid.UUID]:
    wanted = [e.strip().lower() for e in emails]
    return list((await session.exec(select(Person.id).where(col(Person.email).in_(wanted)))).all())


async def deployed_in(session: AsyncSession, *, region: str, day: date) -> list[uuid.UUID]:
    """Everyone with a deployment in the region that day (a regional call's participants)."""
    rows = await session.exec(
        select(Deployment.person_id).join(Post)
        .where(Post.region == region, Deployment.on(day)))
    return list(dict.fromkeys(rows.all()))


async def recipients_by_id(session: AsyncSession, person_ids: list[uuid.UUID], *, day: date) -> list[RecipientRow]:
    """People by id with the regions they are deployed in on `day`, read straight from the
    tables (three small queries): telling a few people never waits for a directory rebuild."""
    people = {p.id: p for p in (await session.exec(select(Person).where(col(Person.id).in_(person_ids)))).all()}
    regions: dict[uuid.UUID, set[str]] = {}
    active = await session.exec(
        select(Deployment.person_id, Post.region).join(Post)
        .where(col(Deployment.person_id).in_(person_ids), Deployment.on(day)))
    for person_id, region in active.all():
        regions.setdefault(person_id, set()).add(region)
    links = await telegram_links(session, list(people))
    return [RecipientRow(person=people[pid], regions=tuple(sorted(regions.get(pid, ()))),
                         telegram_user_id=links.get(pid)) for pid in person_ids if pid in people]


async def linked_people(session: AsyncSession) -> list[uuid.UUID]:
    return list((await session.exec(select(TelegramLink.person_id))).all())


async def telegram_links(session: AsyncSession, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not person_ids:
        return {}
    rows = await session.exec(select(TelegramLink).where(col(TelegramLink.person_id).in_(person_ids)))
    return {link.person_id: link.telegram_user_id for link in rows.all()}


# --- counterparts -----------------------------------------------------------


async def counterparts_in(session: AsyncSession, *, country: str) -> list[CounterpartContact]:
    result = await session.exec(
        select(CounterpartContact).where(CounterpartContact.country == country).order_by(col(CounterpartContact.unit))
    )
    return list(result.all())
