"""Notify handlers: what the bot reports (deliveries sent, failed, replied; departures moved;
call agendas, subscriptions and summaries), applied to notifications and calls; and the roster's
facts, notification requests and submitted AARs, made into notifications or settling them.

An event handler is `async def on_x(event, *, uow, clock)`, applied once per event in the
consumer's unit of work (services/notify/consumers.py); the event's envelope is `uow.cause`.
Who to tell is asked of the roster before that transaction, by the event's lookup
(`find_x(event, *, cause, clock, roster)`, a network call); its answer reaches the handler as
`found`. A roster that does not answer makes the event come back later: nothing is lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import structlog
from nats.errors import Error as NatsError
from sqlmodel import select

from services.notify import campaigns
from services.notify.calls import agenda_full, call_about, changes_of, invited, schedule_of
from services.notify.campaigns import Audience
from services.notify.models import CallAgendaItem, CallSubscriber, CallSummary, HandoverSeen, Succession
from services.notify.policy import OPEN_STATES, PER_PERSON_KINDS, Rules, zone
from services.notify.recipients import Recipient, Roster
from services.notify.schedule import last_held, next_occurrence, title
from services.notify.store import (
    DAILY_SUMMARY,
    DEFAULT_RULES,
    Request,
    acknowledge,
    catch_up,
    close_after,
    create_all,
    expire_open,
    fail,
    folded_into,
    handover_seen,
    locked,
    transition,
)
from shared import adhoc, events
from shared.bus import PermanentError, QueryError, TransientError
from shared.clock import Clock
from shared.events import Envelope
from shared.regions import resolve_region
from shared.store import Database, UnitOfWork

log = structlog.get_logger("notify")


async def on_delivery_sent(event: events.DeliverySent, *, uow: UnitOfWork, clock: Clock) -> None:
    now = uow.cause.occurred_at  # when Telegram accepted it, as the bot recorded it, not when notify heard
    n = await locked(uow, event.notification_id)
    if n is None:
        return
    if n.sent_at is None:
        n.sent_at = now
    if n.state in ("queued", "folded"):
        transition(uow, n, "sent", f"Telegram accepted attempt {event.attempt}", now)
    uow.session.add(n)


async def on_delivery_failed(event: events.DeliveryFailed, *, uow: UnitOfWork, clock: Clock) -> None:
    now = clock.now()
    n = await locked(uow, event.notification_id)
    if n is None or n.state not in OPEN_STATES:
        return
    await fail(uow, n, event.reason, now)


async def on_replied(event: events.NotificationReplied, *, uow: UnitOfWork, clock: Clock) -> None:
    now = clock.now()
    n = await locked(uow, event.notification_id)
    if n is None or n.person_id != event.person_id or n.state not in OPEN_STATES:
        return
    acknowledge(uow, n, event.reply, event.replied_at, now)
    answered = [n]
    if n.kind == DAILY_SUMMARY:  # "acknowledge all": every message the summary listed
        for folded in await folded_into(uow, n):
            acknowledge(uow, folded, event.reply, event.replied_at, now)
            answered.append(folded)
    for done in answered:
        await close_after(uow, done, now)


async def on_departure_changed(event: events.DepartureChanged, *, uow: UnitOfWork, clock: Clock) -> None:
    """The campaign timed from the old end date stops; the roster's next ending_soon starts the new one."""
    now = clock.now()
    await expire_open(uow, kinds=("handover.prompt", "handover.reminder", "handover.departure"),
                      about=str(event.deployment_id), reason=f"departure moved to {event.planned_end}", now=now,
                      keep_occurrence=str(event.planned_end))


async def on_agenda_added(e: events.CallAgendaAdded, *, uow: UnitOfWork, clock: Clock) -> None:
    """The item goes to the region's next call as of when it was added."""
    region = resolve_region(e.region)
    if region is None:
        return  # the bot checks the region; an unknown one has no call to add to
    schedule = await schedule_of(uow.session, region)
    upcoming = next_occurrence(schedule, await changes_of(uow.session, region), now=e.added_at)
    if upcoming is None:
        return
    full = await agenda_full(uow.session, upcoming, e.person_id)
    if full is not None:  # the bot refuses first; this holds against a flood that outran it
        log.warning("agenda_item_refused", region=region, reason=full)
        return
    uow.session.add(CallAgendaItem(region=region, occurrence=upcoming.key, person_id=e.person_id, text=e.text,
                                   added_at=e.added_at, event_id=uow.cause.id))
    await uow.session.flush()  # the next item of the same batch counts this one


async def on_subscription_changed(e: events.CallSubscriptionChanged, *, uow: UnitOfWork, clock: Clock) -> None:
    region = resolve_region(e.region)
    if region is None:
        return
    row = await uow.session.get(CallSubscriber, (region, e.person_id))
    if e.subscribed and row is None:
        uow.session.add(CallSubscriber(region=region, person_id=e.person_id, since=e.at))
    elif not e.subscribed and row is not None:
        await uow.session.delete(row)


async def on_summary_sent(e: events.CallSummarySent, *, uow: UnitOfWork, clock: Clock) -> None:
    """The summary is kept and goes to those reminded of the call that last took place (within two weeks).
    With no such call, or nobody to send it to, nothing is kept or sent (the bot asked first and said so)."""
    region = resolve_region(e.region)
    if region is None:
        return
    schedule = await schedule_of(uow.session, region)
    o = last_held(schedule, await changes_of(uow.session, region), now=e.sent_at)
    if o is None:
        log.warning("call_summary_without_call", region=region)
        return
    reminded = await invited(uow.session, o)
    people = {n.person_id: Recipient(person_id=n.person_id, name=n.person_name, telegram_user_id=n.chat_id,
                                     timezone=n.timezone, regions=(region,)) for n in reminded
              if n.person_id != e.person_id}
    if not people:
        log.warning("call_summary_without_audience", region=region, call=call_about(o))
        return
    uow.session.add(CallSummary(region=region, occurrence=o.key, person_id=e.person_id, text=e.text,
                                sent_at=e.sent_at, event_id=uow.cause.id))
    asks = [(Request(kind="call.summary", about=call_about(o), occurrence="summary", region=region,
                     text=f"Summary of the {title(region)} of {o.start.astimezone(zone(p.timezone)):%d %B}:\n{e.text}"), [p])
            for p in people.values()]
    await create_all(uow, asks, now=clock.now())


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
    holders = await _asked(roster.holders(audience.role, audience.region))
    if not holders and audience.or_role is not None:
        holders = await _asked(roster.holders(audience.or_role))
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
    if e.role is not None or e.document is not None or e.buttons != [adhoc.ACKNOWLEDGE]:
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
    request = Request(kind=e.kind, about=e.about, occurrence=e.occurrence, text=e.text, buttons=tuple(e.buttons),
                      urgent=e.urgent, region=e.region, document=e.document)
    # a region without an adviser: the CMCS desk instead, as for notify's own escalations
    fallback = "cmcs_desk" if e.role == "regional_adviser" else None
    return await find(roster, [campaigns.Ask(request, Audience(person_ids=tuple(e.person_ids), role=e.role,
                                                               region=e.region, everyone=e.everyone,
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
        outgoing_deployment_id=e.deployment_id, note=note, outgoing_name=author[0].name if author else "your predecessor",
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


async def on_found(e: events.Event, *, uow: UnitOfWork, clock: Clock, found: Found, rules: Rules = DEFAULT_RULES) -> None:
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
    then what was kept for the person while they had no link is caught up (`store.catch_up`)."""
    await create_all(uow, found.asks, now=clock.now(), rules=rules)
    await _settle_held(uow, e.person_id, "link confirmed" if e.confirmed_by_desk else "linked", clock)
    await catch_up(uow, person_id=e.person_id, chat_id=e.telegram_user_id, now=clock.now(), rules=rules)
