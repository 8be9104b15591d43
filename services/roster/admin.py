"""The roster's operator work as functions: import a roster file, the directory, invitations, a
rotation scan, counterpart contacts. `cmcoord roster` (cli.py) parses and prints around them;
tests and the benchmarks call them directly.

They work on the roster's own store (the URL in CMCOORD_ROSTER_DATABASE_URL, or the SQLite file
under CMCOORD_HOME). Events they cause are written to the outbox in the same transaction and
published at once when NATS is reachable; otherwise the running roster service publishes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from services.roster import store
from services.roster.config import Settings
from services.roster.importer import Change, Progress, RosterRow, RowError, parse_roster
from services.roster.models import ROSTER_TABLES, CounterpartContact, Person
from shared import events
from shared.clock import Clock
from shared.exports import csv_line
from shared.regions import country_alpha3, country_name
from shared.store import Database, OutboxRelay

if TYPE_CHECKING:
    from services.roster.handlers import ScanResult
    from shared.bus import Bus

CONNECT_EARLY_ROWS = 5_000  # see import_file


async def _open(settings: Settings, clock: Clock) -> Database:
    db = store.open_store(settings.db_url, clock=clock)
    await db.create_tables(ROSTER_TABLES)
    return db


async def _connect(settings: Settings) -> Bus:
    from shared.bus import Bus, TopologyMissing, explain_missing  # NATS only for the commands that publish
    from shared.topology import missing

    bus = await Bus.open(settings.nats_url, source="roster", instance="cli", patience=1.0, auth=settings.nats_auth())
    try:
        # publishes only where `cmcoord nats-init` declared it: never creates or changes a stream
        problems = [p for p in await missing(bus.js, "roster") if p.startswith("stream ")]
        if problems:
            raise TopologyMissing(explain_missing(problems))
    except BaseException:
        await bus.close()
        raise
    return bus


async def _publish_now(db: Database, connecting: asyncio.Task[Bus], clock: Clock) -> str:
    """Publish what the transaction wrote to the outbox, over the connection `connecting` opens."""
    from shared.bus import TopologyMissing

    try:
        bus = await connecting
    except TopologyMissing as exc:
        return f"{exc}: the events wait in the outbox for the roster service"
    except Exception:
        return "NATS not reachable: the roster service will publish the events"
    try:
        published = await OutboxRelay(db, bus, clock=clock).flush()
        return f"{published} event(s) published"
    except Exception as exc:  # committed already: the service's relay publishes what is left
        return f"events wait in the outbox for the roster service ({type(exc).__name__})"
    finally:
        await bus.close()


async def _not_published(connecting: asyncio.Task[Bus] | None) -> None:
    if connecting is None:
        return
    connecting.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):  # cancelled or unreachable: nothing to close
        await (await connecting).close()


@dataclass
class ImportReport:
    changes: list[Change]  # every change, when asked for (list_changes)
    counts: dict[str, int]  # new_person, changed_person, new_deployment, changed_deployment, ended_deployment
    errors: list[RowError]
    note: str = ""  # what became of the events (published, or waiting in the outbox)
    written: bool = False
    lock_seconds: float = 0.0  # the write transaction that swapped the import in
    attempts: int = 0  # plans made: more than one when the roster changed while it was prepared


async def import_file(
    data: str | bytes, *, settings: Settings, clock: Clock, dry_run: bool = False, publish: bool = True,
    filename: str = "", progress: Progress | None = None, list_changes: bool = True,
) -> ImportReport:
    """Validate, plan and (unless dry-run) write an import, all or nothing.

    `data` is the file's bytes (encoding, delimiter or workbook detected) or text already
    decoded. The file is read and checked before the store is opened; store.import_rows
    says how it is written without holding the write lock for long. Python's cyclic
    garbage collector is paused meanwhile: the import makes hundreds of thousands of
    objects and no cycles, and the collector's passes over them took a third of the time."""
    with store.collector_paused():
        parsed = parse_roster(data, filename=filename, progress=progress)
        if parsed.errors:
            return ImportReport([], {}, parsed.errors)
        first: list[list[RosterRow]] = [parsed.rows]
        # A small import (a day's changes) connects to NATS while it is written: its events go out the moment it
        # commits. A large one connects once written: the client then reuses the memory its rows let go.
        early = publish and not dry_run and len(parsed.rows) <= CONNECT_EARLY_ROWS
        del parsed

        def rows() -> list[RosterRow]:
            # the rows read above, then (should the roster change while the import is prepared) read again
            return first.pop() if first else parse_roster(data, filename=filename).rows

        connecting = asyncio.create_task(_connect(settings)) if early else None
        db = await _open(settings, clock)
        try:
            outcome = await store.import_rows(db, rows=rows, clock=clock, policy=settings.rotation_policy,
                                              source=store.SOURCE, dry_run=dry_run, progress=progress,
                                              list_changes=list_changes)
        except BaseException:
            await _not_published(connecting)
            await db.dispose()
            raise
    report = ImportReport(outcome.changes, outcome.counts, outcome.errors, written=outcome.written,
                          lock_seconds=outcome.lock_seconds, attempts=outcome.attempts)
    if outcome.errors or not publish or dry_run:
        await _not_published(connecting)
        await db.dispose()
        if outcome.errors:
            report.changes, report.counts = [], {}
        return report
    report.note = await _publish_now(db, connecting or asyncio.create_task(_connect(settings)), clock)
    await db.dispose()
    return report


async def import_text(
    text: str | bytes, *, settings: Settings, clock: Clock, dry_run: bool = False, publish: bool = True,
    filename: str = "",
) -> tuple[list[Change], list[RowError], str]:
    """`import_file` as (changes, errors, note): what tests and benchmarks call."""
    report = await import_file(text, settings=settings, clock=clock, dry_run=dry_run, publish=publish,
                               filename=filename)
    return report.changes, report.errors, report.note


async def directory_rows(*, settings: Settings, clock: Clock, region: str | None, country: str | None) -> list[dict[str, Any]]:
    from services.roster.directory import load_snapshot  # the directory's search tables: its commands only

    db = await _open(settings, clock)
    try:
        async with db.read() as session:
            revision = await store.revision_now(db)
            snapshot = await load_snapshot(session, day=clock.now().date(), revision=revision,
                                           required_course=settings.required_course)
    finally:
        await db.dispose()
    out = []
    for entry, dep in snapshot.directory(region=region, country=country):
        out.append({
            "name": entry.name, "email": entry.email, "phone": entry.phone, "telegram": entry.telegram_username,
            "organisation": entry.organisation, "country": dep.country, "country_iso3": country_alpha3(dep.country),
            "country_name": country_name(dep.country),
            "duty_station": dep.duty_station, "region": dep.region, "post_title": dep.title, "role": dep.role,
            "start": dep.start.isoformat(), "planned_end": dep.planned_end.isoformat(), "hats": ";".join(dep.hats),
            "flags": ";".join(entry.flags),
        })
    return out


class AlreadyRegistered(Exception):
    """The person has a Telegram account linked: a new invitation needs `force`."""

    def __init__(self, name: str, linked_at: datetime) -> None:
        super().__init__(name)
        self.name, self.linked_at = name, linked_at


async def invite_person(*, email: str, settings: Settings, clock: Clock, force: bool = False) -> tuple[str, str, datetime]:
    """A new invitation for the person: (name, token, valid until). Someone already registered
    gets one only with `force` (AlreadyRegistered): it revokes their older invitations, and
    opening it from another Telegram account moves their link there."""
    from services.roster import handlers  # the store's writers: for the commands that write

    db = await _open(settings, clock)
    try:
        async with db.unit_of_work() as uow:
            person, link = await store.person_and_link(uow.session, email=email)
            if link is not None and not force:
                raise AlreadyRegistered(person.name, link.linked_at)
            person, token = await handlers.create_invite(uow, email=email, ttl=timedelta(days=settings.invite_ttl_days))
            name = person.name
    finally:
        await db.dispose()
    return name, token, clock.now() + timedelta(days=settings.invite_ttl_days)


class NotALiaison(ValueError):
    """Why the person cannot be a party's liaison as asked: a member of the community already, or a field
    that does not fit."""


async def add_liaison(*, email: str, settings: Settings, clock: Clock, name: str | None = None,
                      organisation: str | None = None, phone: str | None = None, timezone: str | None = None,
                      telegram: str | None = None) -> tuple[uuid.UUID, bool]:
    """A party's liaison on the roster, created (`name` and `organisation` needed) or changed (only what is
    given): never deployed, so never a member; invited like anyone (`invite`). With `telegram` (their
    username), a link opened from another account waits for the desk, as a member's does.
    (person id, created)."""
    from sqlmodel import select

    from shared.notices import zone

    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise NotALiaison(f"{email!r} is not an e-mail address")
    if timezone is not None and zone(timezone).key != timezone:
        raise NotALiaison(f"{timezone!r} is not a time zone (an IANA name, such as Africa/Bamako)")
    for what, value, longest in (("name", name, 200), ("organisation", organisation, 120), ("phone", phone, 64),
                                 ("telegram", telegram, 64)):
        if value is not None and len(value) > longest:
            raise NotALiaison(f"the {what} is longer than {longest} characters")
    db = await _open(settings, clock)
    try:
        async with db.unit_of_work() as uow:
            person = (await uow.session.exec(select(Person).where(Person.email == email))).first()
            created = person is None
            if person is None:
                if not name or not organisation:
                    raise NotALiaison("a new liaison needs a name and an organisation (their party)")
                person = Person(email=email, name=name, created_at=clock.now(), updated_at=clock.now())
            elif not person.liaison:
                raise NotALiaison(f"{email} is on the roster as a member of the community, not a party's liaison")
            for field_name, value in (("name", name), ("organisation", organisation), ("phone", phone),
                                      ("timezone", timezone), ("telegram_username", telegram)):
                if value is not None:
                    setattr(person, field_name, value.strip().lstrip("@") if field_name == "telegram_username"
                            else value.strip())
            person.liaison, person.updated_at = True, clock.now()
            uow.session.add(person)
            await uow.session.flush()
            uow.emit(events.PersonChanged(person_id=person.id, created=created))
            await store.bump_revision(uow.session)
            return person.id, created
    finally:
        await db.dispose()


@dataclass(frozen=True)
class BulkInvitations:
    issued: list[tuple[str, str, str, datetime]]  # name, email, token, valid until
    skipped_invited: list[store.Unlinked]  # a valid invitation out already (without force)
    skipped_held: list[store.Unlinked]  # a link waiting for `confirm-link`


def invitation_link(*, settings: Settings, token: str) -> str:
    return f"https://t.me/{settings.bot_username}?start={token}"


def invitations_csv(*, settings: Settings, issued: list[tuple[str, str, str, datetime]]) -> str:
    """The links as CSV: name, email, link, token, valid_until. The name and e-mail are
    neutralised against formula injection (shared/exports.py); the link and the token are ours
    (URL-safe characters) and stay exactly as issued, so they work when copied."""
    def cell(text: str) -> str:
        return csv_line([text]).rstrip("\n")  # neutralised, quoted when it must be

    lines = [csv_line(["name", "email", "link", "token", "valid_until"])]
    lines += [",".join([cell(name), cell(email), invitation_link(settings=settings, token=token), token,
                        f"{until:%Y-%m-%d %H:%M}Z"]) + "\n"
              for name, email, token, until in issued]
    return "".join(lines)


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[TextIO]:
    """A new file (never one that exists) that only its owner may read, from its creation on; removed
    again if the block fails, even after writing it."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as f:  # noqa: PTH123 - the descriptor made above
            yield f
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def invite_unlinked(*, settings: Settings, clock: Clock, region: str | None, force: bool,
                          out: Path) -> BulkInvitations:
    """An invitation for everyone `unlinked` lists (in `region`), written to `out` (created, never
    overwritten) before the transaction commits: if the file cannot be written, no invitation
    is issued and nobody's older link stops working; if the invitations cannot be saved, the
    file is removed (its links would never work)."""
    from services.roster import handlers  # the store's writers: for the commands that write

    db = await _open(settings, clock)
    issued: list[tuple[str, str, str, datetime]] = []
    try:
        with private_file(out) as f:  # made first: a file that exists stops it before anything is issued
            async with db.unit_of_work() as uow:
                now = clock.now()
                found = await store.unlinked_members(uow.session, day=now.date(), now=now, grace=settings.member_grace,
                                                     region=region)
                held = [u for u in found if u.held]
                invited = [u for u in found if not u.held and u.invited_until is not None and not force]
                ttl = timedelta(days=settings.invite_ttl_days)
                for u in found:
                    if u in held or u in invited:
                        continue
                    person, token = await handlers.create_invite(uow, email=u.person.email, ttl=ttl)
                    issued.append((person.name, person.email, token, now + ttl))
                f.write(invitations_csv(settings=settings, issued=issued))  # the links are keys to the roster: the file is 0600
                f.flush()
    finally:
        await db.dispose()
    return BulkInvitations(issued, invited, held)


async def unlinked_rows(*, settings: Settings, clock: Clock, region: str | None) -> list[store.Unlinked]:
    db = await _open(settings, clock)
    try:
        async with db.read() as session:
            now = clock.now()
            return await store.unlinked_members(session, day=now.date(), now=now, grace=settings.member_grace,
                                                region=region)
    finally:
        await db.dispose()


T = TypeVar("T")


async def write_then_publish(*, settings: Settings, clock: Clock, write: Callable[..., Awaitable[T]]) -> tuple[T, str]:
    """`write(db=, clock=)` in the store, then its events published at once (the account is told
    without waiting for the service's relay); what it returned, and what became of the events."""
    db = await _open(settings, clock)
    connecting = asyncio.create_task(_connect(settings))
    try:
        done = await write(db=db, clock=clock)
    except BaseException:
        await _not_published(connecting)
        await db.dispose()
        raise
    note = await _publish_now(db, connecting, clock)
    await db.dispose()
    return done, note


async def scan_now(*, settings: Settings, clock: Clock, confirm_jump: bool) -> tuple[ScanResult, str]:
    """One rotation scan as of `clock`, its announcements published at once; (result, what became of
    the events). handlers.ClockJumpRefused when the clock is too far past the last scan."""
    from services.roster import handlers  # with NATS: what announces the facts

    db = await _open(settings, clock)
    try:
        connecting = asyncio.create_task(_connect(settings))
        try:
            result = await handlers.run_rotation_scan(db=db, clock=clock, policy=settings.rotation_policy,
                                                      max_jump=settings.scan_max_jump, confirm_jump=confirm_jump)
        except BaseException:
            await _not_published(connecting)
            raise
        return result, await _publish_now(db, connecting, clock)
    finally:
        await db.dispose()


async def store_counterparts(*, settings: Settings, clock: Clock, rows: list[tuple[str, str, str, str, str]]) -> None:
    """Upsert counterpart contacts (country, unit, function, channel, classification), by country, unit and
    function, in one transaction."""
    from sqlmodel import select

    db = await _open(settings, clock)
    try:
        async with db.unit_of_work() as uow:
            for country, unit, function, channel, classification in rows:
                found = (await uow.session.exec(select(CounterpartContact).where(
                    CounterpartContact.country == country, CounterpartContact.unit == unit,
                    CounterpartContact.function == function))).first()
                found = found or CounterpartContact(country=country, unit=unit, function=function, channel=channel,
                                                    updated_at=clock.now())
                found.channel, found.classification, found.updated_at = channel, classification, clock.now()
                uow.session.add(found)
            await store.bump_revision(uow.session)
    finally:
        await db.dispose()
