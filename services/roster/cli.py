"""`cmcoord roster ...`: import, directory, invitations, scans, samples.

The commands work on the roster's own store (the URL in CMCOORD_ROSTER_DATABASE_URL,
or the SQLite file under CMCOORD_HOME). Events they cause are written to the
outbox in the same transaction and published at once when NATS is reachable;
otherwise the running roster service publishes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import typer

from services.roster import store
from services.roster.config import Settings
from services.roster.importer import (
    CHANGE_KINDS,
    Change,
    Progress,
    RosterFileError,
    RosterRow,
    RowError,
    parse_roster,
)
from services.roster.models import ROSTER_TABLES, CounterpartContact
from services.roster.samples import generate
from shared.clock import Clock, ManualClock, SystemClock, clock_for
from shared.countries import resolve_country
from shared.exports import csv_line
from shared.logging import configure_logging
from shared.regions import country_alpha3, resolve_region
from shared.store import Database, OutboxRelay

if TYPE_CHECKING:
    from shared.bus import Bus

app = typer.Typer(no_args_is_help=True, help="People, posts and deployments.")


@app.callback()
def _logging() -> None:
    # Commands speak to the operator on stdout; only real problems go to the log.
    configure_logging(service="roster-cli", fmt="console", level="error")

SAMPLE = Path(__file__).parent / "sample" / "roster.csv"
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
    with _collector_paused():
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


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _TerminalProgress:
    """A progress bar per phase on a terminal (stderr), gone when the import ends."""

    LABELS = {"reading": "reading the file", "checking": "checking against the roster",
              "writing": "preparing the changes", "committing": "writing them to the roster"}

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _TerminalProgress:
        self.bars.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.bars.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        task = self.tasks.get(phase)
        if task is None:
            task = self.tasks[phase] = self.bars.add_task(self.LABELS.get(phase, phase), total=max(total, 1))
        self.bars.update(task, completed=min(done, total), total=max(total, 1))


MAX_ERRORS_SHOWN = 20


@app.command("import")
def import_(
    file: Path | None = typer.Argument(None, help="CSV (any encoding Excel writes; , ; or tab), HXL-tagged CSV or .xlsx",
                                       exists=True, dir_okay=False),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would change; write nothing"),
    sample: bool = typer.Option(False, "--sample", help="import the demo roster, dated from today"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="list every change (and every error)"),
) -> None:
    """Upsert people by email, with their posts, deployments and trainings. All or nothing."""
    settings = Settings()
    clock = clock_for(settings.clock_file)
    data: str | bytes
    if sample:
        data, filename = generate(people=60, today=clock.now().date()), "sample.csv"
    elif file is not None:
        data, filename = file.read_bytes(), file.name
    else:
        raise typer.BadParameter("give a FILE or --sample")
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            progress = stack.enter_context(_TerminalProgress()) if sys.stderr.isatty() else None
            report = asyncio.run(import_file(data, settings=settings, clock=clock, dry_run=dry_run,
                                             filename=filename, progress=progress, list_changes=verbose))
    except (RosterFileError, store.RosterChangedDuringImport) as exc:
        typer.echo(f"cannot import: {exc}", err=True)
        raise typer.Exit(2) from exc
    errors = report.errors
    if errors:
        shown = errors if verbose else errors[:MAX_ERRORS_SHOWN]
        for error in shown:
            typer.echo(str(error), err=True)
        if len(shown) < len(errors):
            typer.echo(f"… and {len(errors) - len(shown)} more (--verbose lists them all)", err=True)
        typer.echo(f"{len(errors)} error(s); nothing was written", err=True)
        raise typer.Exit(1)
    for change in report.changes:
        typer.echo(str(change))
    counts = {kind: report.counts.get(kind, 0) for kind in CHANGE_KINDS}
    hint = "" if verbose or not any(counts.values()) else "; --verbose lists each change"
    typer.echo(("would change: " if dry_run else "imported: ")
               + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
               + f", 0 errors ({time.monotonic() - started:.1f} s{hint})")
    if report.note:
        typer.echo(report.note)


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
    for card, dep in snapshot.directory(region=region, country=country):
        out.append({
            "name": card.name, "email": card.email, "phone": card.phone, "telegram": card.telegram_username,
            "organisation": card.organisation, "country": dep.country, "country_iso3": country_alpha3(dep.country),
            "country_name": dep.country_name,
            "duty_station": dep.duty_station, "region": dep.region, "post_title": dep.title, "role": dep.role,
            "start": dep.start.isoformat(), "planned_end": dep.planned_end.isoformat(), "hats": ";".join(dep.hats),
            "flags": ";".join(card.flags),
        })
    return out


@app.command()
def directory(
    region: str | None = typer.Option(None, help="OCHA region code or name, e.g. ROWCA"),
    country: str | None = typer.Option(None, help="ISO 3166 code or name"),
    fmt: str = typer.Option("csv", "--format", help="csv, hxl or json"),
) -> None:
    """The published directory of current deployments (recommendation #4). CSV and HXL cells that a
    spreadsheet would take for a formula start with a quote; HXL gives countries as ISO alpha-3."""
    region_code = resolve_region(region) if region else None
    if region and region_code is None:
        raise typer.BadParameter(f"unknown region {region!r}", param_hint="--region")
    country_code = resolve_country(country) if country else None
    if country and country_code is None:
        raise typer.BadParameter(f"unknown country {country!r}", param_hint="--country")
    if fmt not in ("csv", "hxl", "json"):
        raise typer.BadParameter("csv, hxl or json", param_hint="--format")
    settings = Settings()
    rows = asyncio.run(directory_rows(settings=settings, clock=clock_for(settings.clock_file), region=region_code,
                                      country=country_code))
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from services.roster.directory import directory_table

    typer.echo(directory_table(rows, hxl=fmt == "hxl"), nl=False)


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


@dataclass(frozen=True)
class BulkInvitations:
    issued: list[tuple[str, str, str, datetime]]  # name, email, token, valid until
    skipped_invited: list[store.Unlinked]  # a valid invitation out already (without force)
    skipped_held: list[store.Unlinked]  # a link waiting for `confirm-link`


def _link(settings: Settings, token: str) -> str:
    return f"https://t.me/{settings.bot_username}?start={token}"


def invitations_csv(settings: Settings, issued: list[tuple[str, str, str, datetime]]) -> str:
    """The links as CSV: name, email, link, token, valid_until. The name and e-mail are
    neutralised against formula injection (shared/exports.py); the link and the token are ours
    (URL-safe characters) and stay exactly as issued, so they work when copied."""
    def cell(text: str) -> str:
        return csv_line([text]).rstrip("\n")  # neutralised, quoted when it must be

    lines = [csv_line(["name", "email", "link", "token", "valid_until"])]
    lines += [",".join([cell(name), cell(email), _link(settings, token), token, f"{until:%Y-%m-%d %H:%M}Z"]) + "\n"
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
                f.write(invitations_csv(settings, issued))  # the links are keys to the roster: the file is 0600
                f.flush()
    finally:
        await db.dispose()
    return BulkInvitations(issued, invited, held)


@app.command()
def invite(
    email: str | None = typer.Argument(None, help="the roster email of the person to invite"),
    unlinked: bool = typer.Option(False, "--unlinked",
                                  help="invite everyone `cmcoord roster unlinked` lists (needs --out)"),
    region: str | None = typer.Option(None, help="with --unlinked: only this region (code or name, e.g. ROWCA)"),
    out: Path | None = typer.Option(None, "--out", dir_okay=False,
                                    help="with --unlinked: the CSV file to write (name, email, link, token, "
                                         "valid_until); it must not exist yet"),
    force: bool = typer.Option(False, "--force",
                               help="invite someone already registered (their link moves to the account that opens "
                                    "the new invitation); with --unlinked, also those whose invitation is still valid"),
) -> None:
    """Single-use Telegram registration links (valid 7 days); a new one revokes the person's older ones.

    There is no e-mail channel yet: the links are for you to send.

    EMAIL: the person's link is printed, then its token alone on the last line.

    --unlinked --out FILE: a link for everyone without a linked Telegram account, in a new CSV file (keep it safe).
    """
    settings = Settings()
    clock = clock_for(settings.clock_file)
    if unlinked:
        if email is not None:
            raise typer.BadParameter("give an EMAIL or --unlinked, not both")
        if out is None:
            raise typer.BadParameter("there is no e-mail channel yet: give --out FILE for a CSV of the links",
                                     param_hint="--out")
        if out.exists():
            raise typer.BadParameter(f"{out} exists; choose a new file (the links in it would be lost)",
                                     param_hint="--out")
        region_code = _region_option(region)
        bulk = asyncio.run(invite_unlinked(settings=settings, clock=clock, region=region_code, force=force, out=out))
        typer.echo(f"{len(bulk.issued)} invitation(s) written to {out}, valid "
                   f"{settings.invite_ttl_days} days (send each person their own link)")
        if bulk.skipped_invited:
            typer.echo(f"{len(bulk.skipped_invited)} person(s) skipped: an invitation sent earlier is still valid "
                       "(--force issues new ones; the older links then stop working)")
        if bulk.skipped_held:
            typer.echo(f"{len(bulk.skipped_held)} person(s) skipped: a link waits for `cmcoord roster confirm-link`")
        return
    if email is None:
        raise typer.BadParameter("give an EMAIL, or --unlinked with --out FILE")
    if region is not None or out is not None:
        raise typer.BadParameter("--region and --out go with --unlinked")
    try:
        name, token, expires = asyncio.run(invite_person(email=email, settings=settings, clock=clock, force=force))
    except AlreadyRegistered as registered:
        typer.echo(f"{registered.name} is already registered: a Telegram account was linked on "
                   f"{registered.linked_at:%Y-%m-%d}. Nothing was issued.\n"
                   "A new invitation would revoke their older ones, and opening it from another Telegram account "
                   "moves the link there. If that is what you want (a new phone, a lost account), run it again with "
                   "--force.", err=True)
        raise typer.Exit(1) from registered
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if force:
        typer.echo(f"warning: {name} was registered; the link moves to the account that opens this invitation")
    typer.echo(f"invitation for {name}, valid until {expires:%Y-%m-%d %H:%M} UTC, single use (older unused "
               "invitations for them no longer work):")
    typer.echo(_link(settings, token))
    # the token alone, last, so a script takes it with `tail -n 1` and nobody cuts it out of the link
    typer.echo("the token, to send as /start <token> (the sandbox has no t.me links):")
    typer.echo(token)


def _region_option(region: str | None) -> str | None:
    if region is None:
        return None
    code = resolve_region(region)
    if code is None:
        raise typer.BadParameter(f"unknown region {region!r}", param_hint="--region")
    return code


async def unlinked_rows(*, settings: Settings, clock: Clock, region: str | None) -> list[store.Unlinked]:
    db = await _open(settings, clock)
    try:
        async with db.read() as session:
            now = clock.now()
            return await store.unlinked_members(session, day=now.date(), now=now, grace=settings.member_grace,
                                                region=region)
    finally:
        await db.dispose()


@app.command()
def unlinked(region: str | None = typer.Option(None, help="only this region (code or name, e.g. ROWCA)")) -> None:
    """Who has no Telegram account linked, among those with a deployment (running, to come, or ended
    within the membership grace): name, e-mail, post, region, and where their invitation stands.
    `cmcoord roster invite --unlinked --out FILE` invites them all."""
    settings = Settings()
    found = asyncio.run(unlinked_rows(settings=settings, clock=clock_for(settings.clock_file),
                                      region=_region_option(region)))
    for u in found:
        if u.held:
            status = "link waiting for confirm-link"
        elif u.invited_until is not None:
            status = f"invited, valid until {u.invited_until:%Y-%m-%d}"
        else:
            status = "not invited"
        post = f"{u.post.title}, {u.post.duty_station} ({u.post.country})"
        typer.echo(f"{u.post.region:<7} {u.person.name} <{u.person.email}> · {post} · {status}")
    where = f" in {region}" if region else ""
    typer.echo(f"{len(found)} person(s){where} without a Telegram link")


T = TypeVar("T")


async def _write_then_publish(settings: Settings, clock: Clock, write: Callable[..., Awaitable[T]]) -> tuple[T, str]:
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


@app.command()
def revoke(email: str = typer.Argument(..., help="the roster email of the person")) -> None:
    """Unlink the person's Telegram account at once (it is told), and stop their unused invitations."""
    from services.roster import handlers  # NATS and the store's writers: for this command only

    settings = Settings()
    clock = clock_for(settings.clock_file)

    try:
        revoked, note = asyncio.run(_write_then_publish(settings, clock, partial(handlers.revoke_link, email=email)))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if revoked.telegram_user_id is None:
        typer.echo(f"{revoked.name} had no Telegram account linked")
    else:
        typer.echo(f"{revoked.name}'s Telegram account {revoked.telegram_user_id} is unlinked; it is told so")
    if revoked.invites or revoked.hold_dropped:
        typer.echo(f"{revoked.invites} unused invitation(s) revoked" + (", and the link held for confirmation "
                                                                         "dropped" if revoked.hold_dropped else ""))
    typer.echo(note)


@app.command("confirm-link")
def confirm_link(email: str = typer.Argument(..., help="the roster email of the person")) -> None:
    """Confirm the Telegram link held for the person (their account's username was not the roster's)."""
    from services.roster import handlers  # NATS and the store's writers: for this command only

    settings = Settings()
    clock = clock_for(settings.clock_file)

    try:
        confirmed, note = asyncio.run(_write_then_publish(settings, clock, partial(handlers.confirm_link, email=email)))
    except (LookupError, handlers.NothingToConfirm) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    username = f"@{confirmed.telegram_username}" if confirmed.telegram_username else "(no username)"
    typer.echo(f"{confirmed.name} is linked to Telegram account {confirmed.telegram_user_id} {username}; "
               "they are told so")
    typer.echo(note)


@app.command()
def scan(
    at: datetime | None = typer.Option(None, help="scan as of this instant (ISO 8601, UTC if no zone)"),
    confirm_jump: bool = typer.Option(
        False, "--confirm-jump",
        help="scan even if the clock (or --at) is more than CMCOORD_ROSTER_SCAN_MAX_JUMP_HOURS past the last scan"),
) -> None:
    """Run one rotation scan now (the service also runs it on an interval)."""
    from services.roster import handlers  # with NATS: what announces the facts

    settings = Settings()
    clock: Clock = clock_for(settings.clock_file)
    if at is not None:
        clock = ManualClock(at if at.tzinfo else at.replace(tzinfo=UTC))

    async def run() -> tuple[handlers.ScanResult, str]:
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

    try:
        result, note = asyncio.run(run())
    except handlers.ClockJumpRefused as refused:
        typer.echo(f"{refused}; nothing was announced or recorded.", err=True)
        typer.echo("If the clock is right (the roster was not scanning for that long), run it again with "
                   "--confirm-jump.", err=True)
        raise typer.Exit(3) from refused
    counts: dict[str, int] = {}
    for event in result.announced:
        counts[event.type] = counts.get(event.type, 0) + 1
    typer.echo(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to announce")
    if result.reopened:
        typer.echo(f"{len(result.reopened)} announcement(s) made for a later day taken back: "
                   "they are announced again when their day comes")
    typer.echo(note)


@app.command()
def counterparts(file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Import counterpart contacts (columns: country, unit, function, channel[, classification])."""
    settings = Settings()
    rows = list(csv.DictReader(io.StringIO(file.read_text(encoding="utf-8-sig"))))
    errors = []
    clean = []
    for line, row in enumerate(rows, start=2):
        country = resolve_country(row.get("country", ""))
        classification = (row.get("classification") or "restricted").strip().lower()
        if country is None:
            errors.append(f"line {line}: unknown country {row.get('country')!r}")
        elif not (row.get("unit") and row.get("function") and row.get("channel")):
            errors.append(f"line {line}: unit, function and channel are required")
        elif classification not in ("public", "community", "restricted"):
            errors.append(f"line {line}: classification must be public, community or restricted")
        else:
            clean.append((country, row["unit"].strip(), row["function"].strip(), row["channel"].strip(), classification))
    if errors:
        typer.echo("\n".join(errors) + f"\n{len(errors)} error(s); nothing was written", err=True)
        raise typer.Exit(1)

    async def run() -> None:
        from sqlmodel import select

        clock = clock_for(settings.clock_file)  # the shared (training) clock too
        db = await _open(settings, clock)
        try:
            async with db.unit_of_work() as uow:
                for country, unit, function, channel, classification in clean:
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

    asyncio.run(run())
    typer.echo(f"{len(clean)} counterpart contact(s) stored")


@app.command()
def sample(
    people: int = typer.Option(60, min=1, help="how many people"),
    today: str | None = typer.Option(None, help="anchor date for the dates (YYYY-MM-DD); default today"),
    seed: int = typer.Option(2020),
) -> None:
    """Print a synthetic roster CSV (fictional people, real places)."""
    anchor = date.fromisoformat(today) if today else SystemClock().now().date()
    typer.echo(generate(people=people, today=anchor, seed=seed), nl=False)


@app.command("migrate")
def migrate_store(revision: str = typer.Option("head", help="the revision to upgrade to")) -> None:
    """Upgrade the roster store's tables (Alembic; its own version table)."""
    from services.roster.models import ROSTER_TABLES
    from shared.migrations import upgrade_store

    at = upgrade_store(Settings().db_url, package="services.roster", service="roster", tables=ROSTER_TABLES, revision=revision)
    typer.echo(f"roster store at revision {at}")
