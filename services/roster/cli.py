"""`cmcoord roster ...`: import, directory, invitations, scans, samples. The work is in admin.py;
these commands parse, call it and print. They import what they run when they run (`--help` loads
typer alone)."""

from __future__ import annotations

import contextlib
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer

from shared.logging import configure_command_logging

app = typer.Typer(no_args_is_help=True, help="People, posts and deployments.")


@app.callback()
def _logging() -> None:
    configure_command_logging("roster-cli")


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
    import asyncio

    from services.roster import store
    from services.roster.admin import import_file
    from services.roster.config import Settings
    from services.roster.importer import CHANGE_KINDS, RosterFileError
    from services.roster.samples import generate
    from shared.clock import clock_for

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


@app.command()
def directory(
    region: str | None = typer.Option(None, help="OCHA region code or name, e.g. ROWCA"),
    country: str | None = typer.Option(None, help="ISO 3166 code or name"),
    fmt: str = typer.Option("csv", "--format", help="csv, hxl or json"),
) -> None:
    """The published directory of current deployments (recommendation #4). CSV and HXL cells that a
    spreadsheet would take for a formula start with a quote; HXL gives countries as ISO alpha-3."""
    import asyncio
    import json

    from services.roster.admin import directory_rows
    from services.roster.config import Settings
    from services.roster.directory import directory_table
    from shared.clock import clock_for
    from shared.countries import resolve_country
    from shared.regions import resolve_region

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
    typer.echo(directory_table(rows, hxl=fmt == "hxl"), nl=False)


@app.command()
def liaison(
    email: str = typer.Argument(..., help="the liaison's e-mail"),
    name: str | None = typer.Option(None, help="as the liaison signs, e.g. 'Cdt Keita' (needed for a new one)"),
    organisation: str | None = typer.Option(None, help="the party, e.g. 'FAMa' (needed for a new one)"),
    phone: str | None = typer.Option(None, help="for the officer who calls them"),
    timezone: str | None = typer.Option(None, help="an IANA zone, e.g. Africa/Bamako (default UTC)"),
    telegram: str | None = typer.Option(None, help="their Telegram username: a link opened from another account "
                                                   "waits for the desk (confirm-link)"),
) -> None:
    """Put a party's liaison on the roster, or change what is given: told humanitarian notifications
    (cmcoord hns4d party add --liaison EMAIL) and answering them, never a member of the community: the
    bot shows a liaison nothing of the roster. Then `cmcoord roster invite EMAIL` for their Telegram link."""
    import asyncio

    from services.roster.admin import NotALiaison, add_liaison
    from services.roster.config import Settings
    from shared.clock import clock_for

    settings = Settings()
    try:
        _, created = asyncio.run(add_liaison(email=email, name=name, organisation=organisation, phone=phone,
                                             timezone=timezone, telegram=telegram, settings=settings,
                                             clock=clock_for(settings.clock_file)))
    except NotALiaison as err:
        typer.echo(f"cannot: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"{'added' if created else 'updated'}: {email}, a party's liaison; invite them with "
               f"`cmcoord roster invite {email}`")


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
    import asyncio

    from services.roster.admin import AlreadyRegistered, invitation_link, invite_person, invite_unlinked
    from services.roster.config import Settings
    from shared.clock import clock_for

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
    typer.echo(invitation_link(settings=settings, token=token))
    # the token alone, last, so a script takes it with `tail -n 1` and nobody cuts it out of the link
    typer.echo("the token, to send as /start <token> (the sandbox has no t.me links):")
    typer.echo(token)


def _region_option(region: str | None) -> str | None:
    from shared.regions import resolve_region

    if region is None:
        return None
    code = resolve_region(region)
    if code is None:
        raise typer.BadParameter(f"unknown region {region!r}", param_hint="--region")
    return code


@app.command()
def unlinked(region: str | None = typer.Option(None, help="only this region (code or name, e.g. ROWCA)")) -> None:
    """Who has no Telegram account linked, among those with a deployment (running, to come, or ended
    within the membership grace): name, e-mail, post, region, and where their invitation stands.
    `cmcoord roster invite --unlinked --out FILE` invites them all."""
    import asyncio

    from services.roster.admin import unlinked_rows
    from services.roster.config import Settings
    from shared.clock import clock_for

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


@app.command()
def revoke(email: str = typer.Argument(..., help="the roster email of the person")) -> None:
    """Unlink the person's Telegram account at once (it is told), and stop their unused invitations."""
    import asyncio
    from functools import partial

    from services.roster import handlers
    from services.roster.admin import write_then_publish
    from services.roster.config import Settings
    from shared.clock import clock_for

    settings = Settings()
    clock = clock_for(settings.clock_file)

    try:
        revoked, note = asyncio.run(write_then_publish(settings=settings, clock=clock,
                                                       write=partial(handlers.revoke_link, email=email)))
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
    import asyncio
    from functools import partial

    from services.roster import handlers
    from services.roster.admin import write_then_publish
    from services.roster.config import Settings
    from shared.clock import clock_for

    settings = Settings()
    clock = clock_for(settings.clock_file)

    try:
        confirmed, note = asyncio.run(write_then_publish(settings=settings, clock=clock,
                                                         write=partial(handlers.confirm_link, email=email)))
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
    import asyncio

    from services.roster import handlers
    from services.roster.admin import scan_now
    from services.roster.config import Settings
    from shared.clock import Clock, ManualClock, clock_for

    settings = Settings()
    clock: Clock = clock_for(settings.clock_file)
    if at is not None:
        clock = ManualClock(at if at.tzinfo else at.replace(tzinfo=UTC))
    try:
        result, note = asyncio.run(scan_now(settings=settings, clock=clock, confirm_jump=confirm_jump))
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
    import asyncio
    import csv
    import io

    from services.roster.admin import store_counterparts
    from services.roster.config import Settings
    from shared.clock import clock_for
    from shared.countries import resolve_country

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

    asyncio.run(store_counterparts(settings=settings, clock=clock_for(settings.clock_file), rows=clean))
    typer.echo(f"{len(clean)} counterpart contact(s) stored")


@app.command()
def sample(
    people: int = typer.Option(60, min=1, help="how many people"),
    today: str | None = typer.Option(None, help="anchor date for the dates (YYYY-MM-DD); default today"),
    seed: int = typer.Option(2020),
) -> None:
    """Print a synthetic roster CSV (fictional people, real places)."""
    from services.roster.samples import generate
    from shared.clock import SystemClock

    anchor = date.fromisoformat(today) if today else SystemClock().now().date()
    typer.echo(generate(people=people, today=anchor, seed=seed), nl=False)


@app.command("migrate")
def migrate_store(revision: str = typer.Option("head", help="the revision to upgrade to")) -> None:
    """Upgrade the roster store's tables (Alembic; its own version table)."""
    from services.roster.config import Settings
    from services.roster.models import ROSTER_TABLES
    from shared.migrations import upgrade_store

    at = upgrade_store(Settings().db_url, package="services.roster", service="roster", tables=ROSTER_TABLES, revision=revision)
    typer.echo(f"roster store at revision {at}")
