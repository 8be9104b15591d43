"""What notify consumes.

- the bot's reports (sent, failed, replied): applied in the consumer's
  transaction, batches at a time;
- roster facts and notification requests: first who to tell is asked of the
  roster (a network call, outside any transaction), then the notifications are
  created with the event's idempotency record in one transaction. A roster that
  does not answer makes the event come back later (nak), nothing is lost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import structlog
from nats.errors import Error as NatsError
from sqlmodel import select

from services.notify import campaigns, handlers
from services.notify import store as st
from services.notify.campaigns import Ask, Audience
from services.notify.models import HandoverSeen, Succession
from services.notify.policy import PER_PERSON_KINDS, Rules
from services.notify.recipients import Recipient, Roster
from services.notify.store import DEFAULT_RULES, Request
from shared import adhoc, events
from shared.bus import Bus, ConsumerRunner, PermanentError, QueryError, TransientError
from shared.clock import Clock
from shared.events import Envelope
from shared.store import Apply, Database, Transactional, UnitOfWork

log = structlog.get_logger("notify")
AAR_KINDS = ("aar.reminder", "aar.overdue")  # lessons' requests about an AAR


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


# The bot's reports, applied batches at a time in the consumer's transaction.
BOT_REPORTS: dict[type[events.Event], Apply] = {
    events.CallAgendaAdded: handlers.on_agenda_added,
    events.CallSubscriptionChanged: handlers.on_subscription_changed,
    events.CallSummarySent: handlers.on_summary_sent,
    events.DeliverySent: handlers.on_delivery_sent,
    events.DeliveryFailed: handlers.on_delivery_failed,
    events.NotificationReplied: handlers.on_replied,
    events.DepartureChanged: handlers.on_departure_changed,
}


class FactsConsumer:
    """Roster facts and notification requests -> notifications."""

    durable = "notify--on_facts"

    def __init__(self, *, db: Database, clock: Clock, roster: Roster, wake: Callable[[], None],
                 rules: Rules = DEFAULT_RULES) -> None:
        self.db, self.clock, self.roster, self.wake = db, clock, roster, wake
        self.rules = rules

    async def _roster(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except (QueryError, NatsError, TimeoutError) as err:
            raise TransientError(f"roster did not answer: {err}", delay=2.0) from err

    async def _who(self, audience: Audience) -> list[Recipient]:
        if audience.chat_id is not None:  # one person, at this chat (an account the roster no longer links)
            found = await self._roster(self.roster.people(audience.person_ids))
            person = found[0] if found else Recipient(person_id=audience.person_ids[0], name="", telegram_user_id=None,
                                                      timezone="UTC", regions=())
            return [replace(person, telegram_user_id=audience.chat_id)]
        if audience.person_ids:
            return await self._roster(self.roster.people(audience.person_ids))
        if audience.everyone:
            return await self._roster(self.roster.everyone())
        assert audience.role is not None
        found = await self._roster(self.roster.holders(audience.role, audience.region))
        if not found and audience.or_role is not None:
            found = await self._roster(self.roster.holders(audience.or_role))
        return list(found)

    async def _create(self, envelope: Envelope, asks: Sequence[Ask],
                      then: Callable[[UnitOfWork], Awaitable[None]] | None = None) -> None:
        # each audience is asked of the roster once, all at once (a campaign's messages share their recipient)
        audiences = list(dict.fromkeys(ask.audience for ask in asks))
        answers = dict(zip(audiences, await asyncio.gather(*(self._who(a) for a in audiences)), strict=True))
        # an audience by role is one alert to its holders: the first acknowledgement closes it for all
        resolved = [(replace(ask.request, group=True) if ask.audience.role and not ask.audience.person_ids
                     and ask.request.kind not in PER_PERSON_KINDS else ask.request,
                     answers[ask.audience]) for ask in asks]
        async with self.db.unit_of_work(correlation_id=envelope.correlation_id) as uow:
            if not await uow.claim(self.durable, envelope.id):
                return
            await st.create_all(uow, resolved, now=self.clock.now(), rules=self.rules)
            if then is not None:
                await then(uow)
        self.wake()

    async def on_requested(self, envelope: Envelope, e: events.NotificationRequested) -> None:
        if not (e.person_ids or e.role or e.everyone):
            raise PermanentError("a notification request names people, a role, or everyone")
        refused = bot_refusal(e) if envelope.source == "bot" else None
        if refused:
            raise PermanentError(refused)
        request = Request(kind=e.kind, about=e.about, occurrence=e.occurrence, text=e.text, buttons=tuple(e.buttons),
                          urgent=e.urgent, region=e.region, document=e.document)
        # a region without an adviser: the CMCS desk instead, as for notify's own escalations
        fallback = "cmcs_desk" if e.role == "regional_adviser" else None
        await self._create(envelope, [Ask(request, Audience(person_ids=tuple(e.person_ids), role=e.role,
                                                             region=e.region, everyone=e.everyone,
                                                             or_role=fallback))])

    async def on_aar_completed(self, envelope: Envelope, e: events.AarCompleted) -> None:
        """A submitted AAR: its reminders and overdue notices still open are no longer useful."""
        async def settle(uow: UnitOfWork) -> None:
            await st.expire_open(uow, kinds=AAR_KINDS, about=str(e.aar_id), reason="AAR submitted",
                                 now=self.clock.now())

        await self._create(envelope, [], then=settle)

    async def on_gapped(self, envelope: Envelope, e: events.PostGapped) -> None:
        await self._create(envelope, campaigns.post_gapped(e))

    async def on_filled(self, envelope: Envelope, e: events.PostFilled) -> None:
        async def settle(uow: UnitOfWork) -> None:
            await st.expire_open(uow, kinds=["post.gapped"], about=str(e.post_id), reason="post filled",
                                 now=self.clock.now())

        await self._create(envelope, [], then=settle)

    async def on_ending_soon(self, envelope: Envelope, e: events.DeploymentEndingSoon) -> None:
        async with self.db.read() as session:
            written = await session.get(HandoverSeen, e.deployment_id) is not None
        await self._create(envelope, [] if written else campaigns.handover_campaign(e))

    async def on_assigned(self, envelope: Envelope, e: events.DeploymentAssigned) -> None:
        """A successor on a post still held: introductions, and the note if it exists."""
        asks: list[Ask] = []
        succession: Succession | None = None
        if e.planned_end >= self.clock.now().date():
            holders = await self._roster(self.roster.post_holders(e.post_id))
            outgoing = [h for h in holders if h.person.person_id != e.person_id and h.deployment.start < e.start]
            if outgoing:
                held = max(outgoing, key=lambda h: h.deployment.planned_end)
                out_id, out_dep = held.person.person_id, held.deployment
                people = {r.person_id: r for r in await self._who(Audience(person_ids=(out_id, e.person_id)))}
                if out_id in people and e.person_id in people:
                    asks = campaigns.introductions(e, outgoing=people[out_id], incoming=people[e.person_id],
                                                   outgoing_end=out_dep.planned_end,
                                                   post_title=out_dep.title, station=out_dep.duty_station)
                    succession = Succession(outgoing_deployment_id=out_dep.deployment_id,
                                            incoming_person_id=e.person_id, incoming_deployment_id=e.deployment_id,
                                            post_id=e.post_id, recorded_at=self.clock.now())
                    note = await self._roster(self.roster.handover_note(succession.outgoing_deployment_id))
                    if note is not None:
                        asks.append(campaigns.note_for_successor(
                            outgoing_deployment_id=succession.outgoing_deployment_id, note=note,
                            outgoing_name=people[out_id].name, incoming=e.person_id))

        async def remember(uow: UnitOfWork) -> None:
            if succession is not None and await uow.session.get(
                    Succession, (succession.outgoing_deployment_id, succession.incoming_person_id)) is None:
                uow.session.add(succession)

        await self._create(envelope, asks, then=remember)

    async def on_handover_recorded(self, envelope: Envelope, e: events.HandoverRecorded) -> None:
        async with self.db.read() as session:
            successors = (await session.exec(
                select(Succession).where(Succession.outgoing_deployment_id == e.deployment_id))).all()
        asks: list[Ask] = []
        if successors:
            note = await self._roster(self.roster.handover_note(e.deployment_id))
            author = await self._who(Audience(person_ids=(e.person_id,)))
            if note is not None:
                asks = [campaigns.note_for_successor(outgoing_deployment_id=e.deployment_id, note=note,
                                                     outgoing_name=author[0].name if author else "your predecessor",
                                                     incoming=s.incoming_person_id) for s in successors]

        async def settle(uow: UnitOfWork) -> None:
            await st.handover_seen(uow, e, self.clock.now())
            await st.expire_open(uow, kinds=campaigns.HANDOVER_OPEN_KINDS, about=str(e.deployment_id),
                                 reason="handover note written", now=self.clock.now())

        await self._create(envelope, asks, then=settle)

    async def on_ended(self, envelope: Envelope, e: events.DeploymentEnded) -> None:
        async with self.db.read() as session:
            written = await session.get(HandoverSeen, e.deployment_id) is not None
        asks: list[Ask] = []
        if not written:
            officer = await self._who(Audience(person_ids=(e.person_id,)))
            asks = campaigns.handover_missing(e, officer[0].name if officer else "An officer")

        async def settle(uow: UnitOfWork) -> None:
            await st.expire_open(uow, kinds=(*campaigns.HANDOVER_OPEN_KINDS, "handover.departure"),
                                 about=str(e.deployment_id), reason="deployment ended", now=self.clock.now())

        await self._create(envelope, asks, then=settle)

    def _settle_held(self, person_id: uuid.UUID, reason: str) -> Callable[[UnitOfWork], Awaitable[None]]:
        """A link held for the desk is settled: its alert stops reminding the desk."""
        async def settle(uow: UnitOfWork) -> None:
            await st.expire_open(uow, kinds=[events.TELEGRAM_LINK_HELD_KIND], about=str(person_id), reason=reason,
                                 now=self.clock.now())

        return settle

    async def on_unlinked(self, envelope: Envelope, e: events.TelegramUnlinked) -> None:
        """The account that lost its roster link is told, at once (urgent: quiet hours do not hold it)."""
        await self._create(envelope, [campaigns.telegram_unlinked(e, envelope.id)],
                           then=self._settle_held(e.person_id, "link revoked") if e.reason == "revoked" else None)

    async def on_link_held(self, envelope: Envelope, e: events.TelegramLinkHeld) -> None:
        """The CMCS desk decides on a link from an account whose username is not the roster's."""
        found = await self._who(Audience(person_ids=(e.person_id,)))
        await self._create(envelope, [campaigns.telegram_link_held(e, found[0] if found else None, envelope.id)])

    async def on_linked(self, envelope: Envelope, e: events.TelegramLinked) -> None:
        """A link the desk confirmed is told to the account (one made by an invitation, the bot told already);
        then what was kept for the person while they had no link is caught up (`store.catch_up`)."""
        settle_held = self._settle_held(e.person_id, "link confirmed" if e.confirmed_by_desk else "linked")

        async def settle(uow: UnitOfWork) -> None:
            await settle_held(uow)
            await st.catch_up(uow, person_id=e.person_id, chat_id=e.telegram_user_id, now=self.clock.now(),
                              rules=self.rules)

        await self._create(envelope, [campaigns.telegram_link_confirmed(e, envelope.id)] if e.confirmed_by_desk else [],
                           then=settle)

    def handlers(self) -> dict[type[events.Event], Callable[[Envelope, Any], Awaitable[None]]]:
        return {
            events.PostGapped: self.on_gapped,
            events.PostFilled: self.on_filled,
            events.DeploymentEndingSoon: self.on_ending_soon,
            events.DeploymentEnded: self.on_ended,
            events.HandoverRecorded: self.on_handover_recorded,
            events.DeploymentAssigned: self.on_assigned,
            events.TelegramLinked: self.on_linked,
            events.TelegramUnlinked: self.on_unlinked,
            events.TelegramLinkHeld: self.on_link_held,
        }


def build_consumers(*, bus: Bus, db: Database, clock: Clock, roster: Roster, wake: Callable[[], None],
                    max_deliver: int, rules: Rules = DEFAULT_RULES,
                    ) -> list[ConsumerRunner]:
    facts = FactsConsumer(db=db, clock=clock, roster=roster, wake=wake, rules=rules)
    reports = Transactional(db=db, consumer="notify--on_bot_reports", apply=BOT_REPORTS)

    async def reports_batch(items: Sequence[tuple[Envelope, events.Event]]) -> None:
        await reports.many(items)
        wake()

    common: dict[str, Any] = {"bus": bus, "max_deliver": max_deliver}
    return [
        ConsumerRunner(stream="ROSTER", durable=facts.durable, handlers=facts.handlers(), **common),
        ConsumerRunner(stream="NOTIFY", durable="notify--on_requests",
                       handlers={events.NotificationRequested: facts.on_requested}, **common),
        ConsumerRunner(stream="LESSONS", durable="notify--on_lessons",
                       handlers={events.AarCompleted: facts.on_aar_completed}, **common),
        ConsumerRunner(stream="BOT", durable="notify--on_bot_reports", handlers={cls: reports.one for cls in BOT_REPORTS},
                       batch_handler=reports_batch, **common),
    ]



