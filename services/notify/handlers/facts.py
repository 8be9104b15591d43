"""The roster's facts, notification requests and submitted AARs, made into notifications or
settling them.

Who to tell is asked of the roster before the consumer's transaction, by the event's lookup
(`find_x(event, *, cause, clock, roster)`, a network call); its answer reaches the handler,
`on_x(event, *, uow, clock, found)`, as `found`. A roster that does not answer makes the event
come back later: nothing is lost."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import structlog
from nats.errors import Error as NatsError
from sqlalchemy import text
from sqlmodel import select

from services.notify import campaigns
from services.notify.campaigns import Audience
from services.notify.handlers.notifications import catch_up, create_all, expire_open, handover_seen
from services.notify.models import HandoverSeen, Settled, Succession
from services.notify.policy import PER_PERSON_KINDS, Rules
from services.notify.recipients import Recipient, Roster
from services.notify.store import DEFAULT_RULES, Request
from shared import adhoc, events
from shared.bus import OWNERS, PermanentError, QueryError, TransientError
from shared.clock import Clock
from shared.events import Envelope
from shared.regions import region_for_country
from shared.store import Database, UnitOfWork, upsert

log = structlog.get_logger("notify")

AAR_KINDS = ("aar.reminder", "aar.overdue")  # lessons' requests about an AAR
T = TypeVar("T")


@dataclass(frozen=True)
class Found:
    """A fact's notifications with who they go to, as the roster answered before the transaction;
    for a successor, the succession to remember."""

    asks: list[tuple[Request, list[Recipient]]] = field(default_factory=list)
    succession: Succession | None = None


async def _asked(call: Awaitable[T]) -> T:
    try:
        return await call
    except (QueryError, NatsError, TimeoutError) as err:
        raise TransientError(f"roster did not answer: {err}", delay=2.0) from err


async def who(roster: Roster, audience: Audience) -> list[Recipient]:
    """The people an audience names, as the roster answers now."""
    if audience.chat_id is not None:  # one person, at this chat (an account the roster no longer links)
        people = await _asked(roster.people(audience.person_ids))
        person = people[0] if people else Recipient(person_id=audience.person_ids[0], name="", telegram_user_id=None,
                                                    timezone="UTC", regions=())
        return [replace(person, telegram_user_id=audience.chat_id)]
    if audience.person_ids:
        return await _asked(roster.people(audience.person_ids))
    if audience.everyone:
        return await _asked(roster.everyone())
    assert audience.role is not None
    region = audience.region
    holders = await _asked(roster.holders(audience.role, region, audience.country))
    if not holders and audience.country is not None:
        # nobody of the role in the country: the region's (the country's, when the request named none);
        # a country in no region the project knows: on to the desk, never every holder in the world
        region = region or region_for_country(audience.country)
        holders = await _asked(roster.holders(audience.role, region)) if region is not None else []
    regional = region is not None or audience.country is None
    if not holders and audience.or_role is not None and (regional or audience.or_role != "regional_adviser"):
        # the desk is everyone's; an adviser is the region's
        holders = await _asked(roster.holders(audience.or_role,
                                              region if audience.or_role == "regional_adviser" else None))
    if not holders and audience.or_role == "regional_adviser":
        holders = await _asked(roster.holders("cmcs_desk"))
    return list(holders)


async def find(roster: Roster, asks: Sequence[campaigns.Ask], *, succession: Succession | None = None) -> Found:
    """Each audience asked of the roster once, all at once (a campaign's messages share their recipient).
    An audience by role is one alert to its holders: the first acknowledgement closes it for all."""
    audiences = list(dict.fromkeys(ask.audience for ask in asks))
    answers = dict(zip(audiences, await asyncio.gather(*(who(roster, a) for a in audiences)), strict=True))
    return Found(asks=[(replace(ask.request, group=True) if ask.audience.role and not ask.audience.person_ids
                        and ask.request.kind not in PER_PERSON_KINDS else ask.request,
                        answers[ask.audience]) for ask in asks], succession=succession)


def bot_refusal(e: events.NotificationRequested) -> str | None:
    """Why a request from the bot is refused, or None. The bot asks for one thing only (/send):
    an ad-hoc message with its Acknowledge button, to people by id in a region, or to everyone."""
    if e.kind != adhoc.KIND or adhoc.clean_reference(e.about) != e.about:
        return f"the bot may request {adhoc.KIND} notifications only, not {e.kind}"
    if e.role is not None or e.document is not None or e.documents or e.buttons != [adhoc.ACKNOWLEDGE]:
        return "an ad-hoc message from the bot has no role, no document and the Acknowledge button only"
    if not ((e.everyone and not e.person_ids and e.region is None)
            or (not e.everyone and e.person_ids and e.region is not None)):
        return "an ad-hoc message from the bot goes to people in a region, or to everyone"
    return None


async def find_requested(e: events.NotificationRequested, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    if not (e.person_ids or e.role or e.everyone):
        raise PermanentError("a notification request names people, a role, or everyone")
    refused = bot_refusal(e) if cause.source == "bot" else None
    if refused:
        raise PermanentError(refused)
    owner = e.kind.partition(".")[0]
    if owner in OWNERS and owner != cause.source:  # hns4d.review is hns4d's to ask: nobody else's
        raise PermanentError(f"{cause.source} may not ask for {e.kind}: not its notifications")
    # the notification's region: the country's, when the request named a country and no region
    region = e.region or (region_for_country(e.country) if e.role and e.country else None)
    request = Request(kind=e.kind, about=e.about, occurrence=e.occurrence, text=e.text, buttons=tuple(e.buttons),
                      urgent=e.urgent, region=region, document=e.document, documents=tuple(e.documents.items()),
                      notice=e.notice)
    # a region without an adviser: the CMCS desk instead, as for notify's own escalations; without an
    # officer (the post gapped): the region's adviser
    fallback = {"regional_adviser": "cmcs_desk", "cmcoord_officer": "regional_adviser"}.get(e.role or "")
    return await find(roster, [campaigns.Ask(request, Audience(person_ids=tuple(e.person_ids), role=e.role,
                                                               region=e.region, everyone=e.everyone,
                                                               country=e.country if e.role else None,
                                                               or_role=fallback))])


async def find_gapped(e: events.PostGapped, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    return await find(roster, campaigns.post_gapped(e))


async def find_ending_soon(e: events.DeploymentEndingSoon, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    return await find(roster, campaigns.handover_campaign(e))


async def find_ended(e: events.DeploymentEnded, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    officer = await who(roster, Audience(person_ids=(e.person_id,)))
    return await find(roster, campaigns.handover_missing(e, officer[0].name if officer else "An officer"))


async def find_successors(e: events.HandoverRecorded, *, cause: Envelope, clock: Clock, roster: Roster,
                          db: Database) -> Found:
    """The note written, for the successors notify knows of (read from its store, outside a transaction)."""
    async with db.read() as session:
        successors = (await session.exec(select(Succession.incoming_person_id).where(
            Succession.outgoing_deployment_id == e.deployment_id))).all()
    if not successors:
        return Found()
    note = await _asked(roster.handover_note(e.deployment_id))
    if note is None:
        return Found()
    author = await who(roster, Audience(person_ids=(e.person_id,)))
    return await find(roster, [campaigns.note_for_successor(
        outgoing_deployment_id=e.deployment_id, note=note,
        outgoing_name=author[0].name if author else "your predecessor",
        incoming=incoming) for incoming in successors])


async def find_successor_of(e: events.DeploymentAssigned, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    """A successor on a post still held: introductions, and the note if it exists."""
    if e.planned_end < clock.now().date():
        return Found()
    holders = await _asked(roster.post_holders(e.post_id))
    outgoing = [h for h in holders if h.person.person_id != e.person_id and h.deployment.start < e.start]
    if not outgoing:
        return Found()
    held = max(outgoing, key=lambda h: h.deployment.planned_end)
    out_id, out_dep = held.person.person_id, held.deployment
    people = {r.person_id: r for r in await who(roster, Audience(person_ids=(out_id, e.person_id)))}
    if out_id not in people or e.person_id not in people:
        return Found()
    asks = campaigns.introductions(e, outgoing=people[out_id], incoming=people[e.person_id],
                                   outgoing_end=out_dep.planned_end, post_title=out_dep.title,
                                   station=out_dep.duty_station)
    succession = Succession(outgoing_deployment_id=out_dep.deployment_id, incoming_person_id=e.person_id,
                            incoming_deployment_id=e.deployment_id, post_id=e.post_id, recorded_at=clock.now())
    note = await _asked(roster.handover_note(succession.outgoing_deployment_id))
    if note is not None:
        asks.append(campaigns.note_for_successor(outgoing_deployment_id=succession.outgoing_deployment_id, note=note,
                                                 outgoing_name=people[out_id].name, incoming=e.person_id))
    return await find(roster, asks, succession=succession)


async def find_unlinked(e: events.TelegramUnlinked, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    return await find(roster, [campaigns.telegram_unlinked(e, cause.id)])


async def find_link_held(e: events.TelegramLinkHeld, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    person = await who(roster, Audience(person_ids=(e.person_id,)))
    return await find(roster, [campaigns.telegram_link_held(e, person[0] if person else None, cause.id)])


async def find_linked(e: events.TelegramLinked, *, cause: Envelope, clock: Clock, roster: Roster) -> Found:
    return await find(roster, [campaigns.telegram_link_confirmed(e, cause.id)] if e.confirmed_by_desk else [])


async def on_found(e: events.Event, *, uow: UnitOfWork, clock: Clock, found: Found,
                   rules: Rules = DEFAULT_RULES) -> None:
    """The notifications the lookup found recipients for (a gapped post, a handover campaign, a request...)."""
    await create_all(uow, found.asks, now=clock.now(), rules=rules)


async def on_ending_soon(e: events.DeploymentEndingSoon, *, uow: UnitOfWork, clock: Clock, found: Found,
                         rules: Rules = DEFAULT_RULES) -> None:
    if await uow.session.get(HandoverSeen, e.deployment_id) is None:  # no campaign for a note written already
        await create_all(uow, found.asks, now=clock.now(), rules=rules)


async def on_ended(e: events.DeploymentEnded, *, uow: UnitOfWork, clock: Clock, found: Found,
                   rules: Rules = DEFAULT_RULES) -> None:
    if await uow.session.get(HandoverSeen, e.deployment_id) is None:  # "handover missing" only when it is
        await create_all(uow, found.asks, now=clock.now(), rules=rules)
    await expire_open(uow, kinds=(*campaigns.HANDOVER_OPEN_KINDS, "handover.departure"), about=str(e.deployment_id),
                      reason="deployment ended", now=clock.now())


async def on_filled(e: events.PostFilled, *, uow: UnitOfWork, clock: Clock) -> None:
    await expire_open(uow, kinds=["post.gapped"], about=str(e.post_id), reason="post filled", now=clock.now())


async def on_aar_completed(e: events.AarCompleted, *, uow: UnitOfWork, clock: Clock) -> None:
    """A submitted AAR: its reminders and overdue notices still open are no longer useful."""
    await expire_open(uow, kinds=AAR_KINDS, about=str(e.aar_id), reason="AAR submitted", now=clock.now())


async def on_settled(e: events.NotificationsSettled, *, uow: UnitOfWork, clock: Clock) -> None:
    """A sender's matter settled: its open notifications of these kinds about it close. A sender closes
    only its own kinds."""
    sender = uow.cause.source
    foreign = [kind for kind in e.kinds if not kind.startswith(f"{sender}.")]
    if foreign:
        raise PermanentError(f"{sender} may not settle {', '.join(foreign)}: not its notifications")
    now = clock.now()
    for kind in sorted(set(e.kinds)):  # kept: a request about it retried after this (the roster away) creates nothing
        await _one_at_a_time(uow, kind, e.about)
        await uow.session.exec(upsert(uow.session, Settled.__table__).values(  # type: ignore[call-overload, attr-defined]
            kind=kind, about=e.about, reason=e.reason[:200], settled_at=now).on_conflict_do_nothing())
    await expire_open(uow, kinds=e.kinds, about=e.about, reason=e.reason, now=now)


async def _one_at_a_time(uow: UnitOfWork, kind: str, about: str) -> None:
    """A request and the settle of the same matter, handled at once by two replicas on PostgreSQL, take
    turns: else the request, not seeing the settle, would create what the settle, not seeing it, left
    open. (SQLite has one writer at a time already.)"""
    if uow.session.get_bind().dialect.name == "postgresql":
        await uow.session.exec(text("SELECT pg_advisory_xact_lock(hashtext(:matter))"),  # type: ignore[call-overload]
                               params={"matter": f"notify.settled|{kind}|{about}"})


async def on_requested(e: events.NotificationRequested, *, uow: UnitOfWork, clock: Clock, found: Found,
                       rules: Rules = DEFAULT_RULES) -> None:
    """A sender's request, unless its matter was settled already: a request nak'ed while the roster was
    away comes back after the sender's later `settled`, and would otherwise ask what no longer waits."""
    await _one_at_a_time(uow, e.kind, e.about)
    settled = await uow.session.get(Settled, (e.kind, e.about))
    if settled is not None:
        log.info("request_settled_already", kind=e.kind, reason=settled.reason)
        return
    await create_all(uow, found.asks, now=clock.now(), rules=rules)


async def on_handover_recorded(e: events.HandoverRecorded, *, uow: UnitOfWork, clock: Clock, found: Found,
                               rules: Rules = DEFAULT_RULES) -> None:
    await create_all(uow, found.asks, now=clock.now(), rules=rules)
    await handover_seen(uow, e, clock.now())
    await expire_open(uow, kinds=campaigns.HANDOVER_OPEN_KINDS, about=str(e.deployment_id),
                      reason="handover note written", now=clock.now())


async def on_assigned(e: events.DeploymentAssigned, *, uow: UnitOfWork, clock: Clock, found: Found,
                      rules: Rules = DEFAULT_RULES) -> None:
    await create_all(uow, found.asks, now=clock.now(), rules=rules)
    s = found.succession
    if s is not None and await uow.session.get(Succession, (s.outgoing_deployment_id, s.incoming_person_id)) is None:
        uow.session.add(Succession(**s.model_dump()))


async def _settle_held(uow: UnitOfWork, person_id: uuid.UUID, reason: str, clock: Clock) -> None:
    """A link held for the desk is settled: its alert stops reminding the desk."""
    await expire_open(uow, kinds=[events.TELEGRAM_LINK_HELD_KIND], about=str(person_id), reason=reason, now=clock.now())


async def on_unlinked(e: events.TelegramUnlinked, *, uow: UnitOfWork, clock: Clock, found: Found,
                      rules: Rules = DEFAULT_RULES) -> None:
    """The account that lost its roster link is told, at once (urgent: quiet hours do not hold it)."""
    await create_all(uow, found.asks, now=clock.now(), rules=rules)
    if e.reason == "revoked":
        await _settle_held(uow, e.person_id, "link revoked", clock)


async def on_linked(e: events.TelegramLinked, *, uow: UnitOfWork, clock: Clock, found: Found,
                    rules: Rules = DEFAULT_RULES) -> None:
    """A link the desk confirmed is told to the account (one made by an invitation, the bot told already);
    then what was kept for the person while they had no link is caught up (`notifications.catch_up`)."""
    await create_all(uow, found.asks, now=clock.now(), rules=rules)
    await _settle_held(uow, e.person_id, "link confirmed" if e.confirmed_by_desk else "linked", clock)
    await catch_up(uow, person_id=e.person_id, chat_id=e.telegram_user_id, now=clock.now(), rules=rules)
