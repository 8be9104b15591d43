"""`cmcoord notify send` and `cmcoord notify send-status`: the CMCS desk's ad-hoc messages.

`send` asks the roster who is deployed in the region (or leaves a role's holders to notify),
then publishes the notification requests (`notify.notification.requested`, with ids derived from
the message's reference: sent again, they change nothing); notify delivers them under its usual
policies (quiet hours unless --urgent, the daily cap, re-sent up to three times while
unacknowledged, never escalated). `send-status` counts the message's notifications in the notify store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from shared.roles import ROLES

if TYPE_CHECKING:
    from services.notify.config import Settings
    from services.notify.messages import MessageFigures


def register(app: typer.Typer) -> None:
    app.command("send")(send)
    app.command("send-status")(send_status)


class Refused(Exception):
    """Nothing was sent; the message says why."""


async def _send(settings: Settings, *, region: str | None, role: str | None, everyone: bool, text: str, urgent: bool,
                sender: str) -> tuple[str, int | None]:
    """The reference and how many people were asked for (None: notify resolves a role or everyone)."""
    from nats.errors import Error as NatsError

    from shared import adhoc
    from shared.bus import Bus, QueryError
    from shared.events import Envelope

    try:
        bus = await Bus.open(settings.nats_url, source="notify", instance="cli", patience=3.0, auth=settings.nats_auth())
    except (NatsError, OSError, TimeoutError) as err:
        raise Refused(f"NATS not reachable at {settings.nats_url} ({err or type(err).__name__}): nothing was sent") from err
    try:
        ref = adhoc.new_reference()
        audience = "everyone" if everyone else f"{role.replace('_', ' ')}s in {region}" if role else f"everyone in {region}"
        body = adhoc.message_text(sender=sender, audience=audience, text=text, ref=ref)
        people = None
        if region is not None and role is None:
            try:
                found = await adhoc.region_members(bus, region, timeout=settings.query_timeout_seconds)
            except (QueryError, NatsError, TimeoutError) as err:
                raise Refused(f"the roster did not answer ({err or type(err).__name__}): nothing was sent") from err
            if not found:
                raise Refused(f"nobody is deployed in {region} today: nothing was sent")
            people = len(found)
        else:
            found = []
        now = datetime.now(UTC)
        for event_id, request in adhoc.requests(ref=ref, text=body, urgent=urgent, region=region, role=role,
                                                everyone=everyone, person_ids=found):
            await bus.publish(Envelope.wrap(request, source="notify", occurred_at=now, id=event_id))
        return ref, people
    finally:
        await bus.close()


def send(
    region: str = typer.Option(None, help="an OCHA region, e.g. ROWCA: everyone deployed there"),
    role: str = typer.Option(None, help=f"only this role's holders in the region ({', '.join(ROLES)})"),
    everyone: bool = typer.Option(False, "--everyone", help="every member with a linked Telegram account"),
    text: str = typer.Option(..., help="the message (up to 3,000 characters)"),
    urgent: bool = typer.Option(False, "--urgent", help="not held by the recipients' quiet hours, nor by the daily cap"),
    sender: str = typer.Option("the CMCS desk", "--from", help="who it is from, as the recipients read it"),
) -> None:
    """Send a message to a region (or a role in it), or to everyone; prints its reference for send-status."""
    import asyncio

    from services.notify.config import Settings
    from shared import adhoc
    from shared.regions import resolve_region

    if everyone == bool(region):
        raise typer.BadParameter("give either --region or --everyone", param_hint="--region")
    code = None
    if region:
        code = resolve_region(region)
        if code is None:
            raise typer.BadParameter(f"unknown region {region!r}", param_hint="--region")
    if role is not None and (role not in ROLES or everyone):
        raise typer.BadParameter(f"one of {', '.join(ROLES)}, with --region", param_hint="--role")
    if not text.strip() or len(text) > adhoc.TEXT_LIMIT:
        raise typer.BadParameter(f"write 1 to {adhoc.TEXT_LIMIT} characters", param_hint="--text")
    try:
        ref, people = asyncio.run(_send(Settings(), region=code, role=role, everyone=everyone, text=text,
                                        urgent=urgent, sender=sender.strip() or "the CMCS desk"))
    except Refused as refused:
        typer.echo(f"error: {refused}", err=True)
        raise typer.Exit(1) from None
    whom = f"{people} people in {code}" if people is not None else (
        "every member with a linked Telegram account" if everyone else f"the {role} holders in {code}")
    typer.echo(f"Sent to {whom}{' (urgent)' if urgent else ''}.")
    typer.echo(f"Reference: {ref}  (cmcoord notify send-status {ref})")
    typer.echo(ref)


async def _status(settings: Settings, reference: str) -> MessageFigures | None:
    from services.notify.messages import message_figures
    from services.notify.store import open_store
    from shared.clock import clock_for

    db = open_store(settings.db_url, clock=clock_for(settings.clock_file))
    try:
        async with db.read() as session:
            return await message_figures(session, reference)
    finally:
        await db.dispose()


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "-"


def send_status(
    reference: str = typer.Argument(..., help="the reference `notify send` printed, e.g. M-7KQ2M9XA"),
    fmt: str = typer.Option("table", "--format", help="table or json"),
) -> None:
    """How many got the message, acknowledged it, are still pending or could not be reached; with names."""
    import asyncio

    from services.notify.config import Settings
    from shared import adhoc

    ref = adhoc.clean_reference(reference)
    if ref is None:
        raise typer.BadParameter(f"{reference!r} is not a message reference (M- and 8 characters)")
    found = asyncio.run(_status(Settings(), ref))  # no store there: StoreMissing, told by `cmcoord` (shared/cli.py)
    if found is None:
        typer.echo(f"error: no message {ref} (notify may not have received it yet)", err=True)
        raise typer.Exit(1)
    if fmt == "json":
        typer.echo(json.dumps(found.as_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(f"{found.reference}  {found.region or 'several regions'}{'  urgent' if found.urgent else ''}  "
               f"created {found.created_at:%Y-%m-%d %H:%M} UTC")
    typer.echo(f"recipients {found.total}, sent {found.sent}, acknowledged {len(found.acknowledged)}, "
               f"pending {len(found.pending)}, unreachable {len(found.unreachable)}"
               + (f", expired {len(found.expired)}" if found.expired else ""))
    typer.echo(f"acknowledged: {_names(found.acknowledged)}")
    typer.echo(f"pending: {_names(found.pending)}")
    typer.echo(f"unreachable: {_names(found.unreachable)}")
    if found.expired:
        typer.echo(f"expired: {_names(found.expired)}")
