"""What notify consumes, in one table: durable name -> the stream it reads and, by event type,
the handler applied in the consumer's transaction and what is looked up before it
(services/notify/handlers/), with the roster client and the rules bound.

- the bot's reports (sent, failed, replied, departures moved, calls): a batch to a transaction;
- roster facts, notification requests and submitted AARs: who to tell is asked of the roster
  first (a network call, outside any transaction), then the notifications are created with the
  event's idempotency record in one transaction;
- with e-mail on, its own deliver commands: the mail is sent first (outside any transaction),
  then recorded (services/notify/mail.py).
"""

from __future__ import annotations

from functools import partial

from services.notify.handlers import facts, reports
from services.notify.mail import Mailer
from services.notify.policy import Rules
from services.notify.recipients import Roster
from services.notify.store import DEFAULT_RULES
from shared import events
from shared.store import Consumes, Database


def consumers(*, db: Database, roster: Roster, rules: Rules = DEFAULT_RULES,
              mailer: Mailer | None = None) -> dict[str, Consumes]:
    creates = partial(facts.on_found, rules=rules)
    mail = {"notify--on_deliver_email": Consumes("NOTIFY", {events.DeliverEmail: mailer.record},
                                                 lookup={events.DeliverEmail: mailer.send})} if mailer else {}
    return mail | {
        "notify--on_facts": Consumes("ROSTER", {
            events.PostGapped: creates,
            events.PostFilled: facts.on_filled,
            events.DeploymentEndingSoon: partial(facts.on_ending_soon, rules=rules),
            events.DeploymentEnded: partial(facts.on_ended, rules=rules),
            events.HandoverRecorded: partial(facts.on_handover_recorded, rules=rules),
            events.DeploymentAssigned: partial(facts.on_assigned, rules=rules),
            events.TelegramLinked: partial(facts.on_linked, rules=rules),
            events.TelegramUnlinked: partial(facts.on_unlinked, rules=rules),
            events.TelegramLinkHeld: creates,
        }, lookup={
            events.PostGapped: partial(facts.find_gapped, roster=roster),
            events.DeploymentEndingSoon: partial(facts.find_ending_soon, roster=roster),
            events.DeploymentEnded: partial(facts.find_ended, roster=roster),
            events.HandoverRecorded: partial(facts.find_successors, roster=roster, db=db),
            events.DeploymentAssigned: partial(facts.find_successor_of, roster=roster),
            events.TelegramLinked: partial(facts.find_linked, roster=roster),
            events.TelegramUnlinked: partial(facts.find_unlinked, roster=roster),
            events.TelegramLinkHeld: partial(facts.find_link_held, roster=roster),
        }),
        "notify--on_requests": Consumes(
            "NOTIFY", {events.NotificationRequested: partial(facts.on_requested, rules=rules),
                       events.NotificationsSettled: facts.on_settled},
            lookup={events.NotificationRequested: partial(facts.find_requested, roster=roster)}),
        "notify--on_lessons": Consumes("LESSONS", {events.AarCompleted: facts.on_aar_completed}),
        # the bot's reports settle what they change in their transaction and leave nothing due; a fan-out's,
        # 30 a second, are applied about fifteen to a transaction (at most half a second later than each
        # could be: a fifth of notify's CPU per delivered message, measured against a tenth of a second)
        "notify--on_bot_reports": Consumes("BOT", {
            events.CallAgendaAdded: reports.on_agenda_added,
            events.CallSubscriptionChanged: reports.on_subscription_changed,
            events.CallSummarySent: reports.on_summary_sent,
            events.DeliverySent: reports.on_delivery_sent,
            events.DeliveryFailed: partial(reports.on_delivery_failed, rules=rules),
            events.NotificationReplied: reports.on_replied,
            events.DepartureChanged: reports.on_departure_changed,
        }, prefetch=reports.prefetch_notifications, batched=True, wakes=False, linger=0.5),
    }
