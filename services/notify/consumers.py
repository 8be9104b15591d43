"""What notify consumes, in one table: durable name -> the stream it reads and, by event type,
the handler applied in the consumer's transaction and what is looked up before it
(services/notify/handlers.py), with the roster client and the rules bound.

- the bot's reports (sent, failed, replied, departures moved, calls): a batch to a transaction;
- roster facts, notification requests and submitted AARs: who to tell is asked of the roster
  first (a network call, outside any transaction), then the notifications are created with the
  event's idempotency record in one transaction.
"""

from __future__ import annotations

from functools import partial

from services.notify import handlers as h
from services.notify.policy import Rules
from services.notify.recipients import Roster
from services.notify.store import DEFAULT_RULES
from shared import events
from shared.store import Consumes, Database


def consumers(*, db: Database, roster: Roster, rules: Rules = DEFAULT_RULES) -> dict[str, Consumes]:
    creates = partial(h.on_found, rules=rules)
    return {
        "notify--on_facts": Consumes("ROSTER", {
            events.PostGapped: creates,
            events.PostFilled: h.on_filled,
            events.DeploymentEndingSoon: partial(h.on_ending_soon, rules=rules),
            events.DeploymentEnded: partial(h.on_ended, rules=rules),
            events.HandoverRecorded: partial(h.on_handover_recorded, rules=rules),
            events.DeploymentAssigned: partial(h.on_assigned, rules=rules),
            events.TelegramLinked: partial(h.on_linked, rules=rules),
            events.TelegramUnlinked: partial(h.on_unlinked, rules=rules),
            events.TelegramLinkHeld: creates,
        }, lookup={
            events.PostGapped: partial(h.find_gapped, roster=roster),
            events.DeploymentEndingSoon: partial(h.find_ending_soon, roster=roster),
            events.DeploymentEnded: partial(h.find_ended, roster=roster),
            events.HandoverRecorded: partial(h.find_successors, roster=roster, db=db),
            events.DeploymentAssigned: partial(h.find_successor_of, roster=roster),
            events.TelegramLinked: partial(h.find_linked, roster=roster),
            events.TelegramUnlinked: partial(h.find_unlinked, roster=roster),
            events.TelegramLinkHeld: partial(h.find_link_held, roster=roster),
        }),
        "notify--on_requests": Consumes(
            "NOTIFY", {events.NotificationRequested: creates},
            lookup={events.NotificationRequested: partial(h.find_requested, roster=roster)}),
        "notify--on_lessons": Consumes("LESSONS", {events.AarCompleted: h.on_aar_completed}),
        "notify--on_bot_reports": Consumes("BOT", {
            events.CallAgendaAdded: h.on_agenda_added,
            events.CallSubscriptionChanged: h.on_subscription_changed,
            events.CallSummarySent: h.on_summary_sent,
            events.DeliverySent: h.on_delivery_sent,
            events.DeliveryFailed: h.on_delivery_failed,
            events.NotificationReplied: h.on_replied,
            events.DepartureChanged: h.on_departure_changed,
        }, batched=True),
    }
