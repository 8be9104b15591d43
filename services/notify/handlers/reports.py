"""What the bot reports, applied to notifications and calls: deliveries sent, failed and
replied to, departures moved, call agendas, subscriptions and summaries.

An event handler is `async def on_x(event, *, uow, clock)`, applied once per event in the
consumer's unit of work, a batch at a time (services/notify/consumers.py); the event's envelope
is `uow.cause`."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from services.notify.calls import agenda_full, call_about, changes_of, invited, schedule_of
from services.notify.handlers.notifications import (answer, create_all, expire_open, fail, has_buttons, transition,
                                                     unbutton_late)
from services.notify.models import CallAgendaItem, CallSubscriber, CallSummary, Notification
from services.notify.policy import OPEN_STATES, Rules
from services.notify.recipients import Recipient
from services.notify.schedule import last_held, next_occurrence
from services.notify.store import DEFAULT_RULES, Request, lock_all, locked
from shared import events, notices
from shared.clock import Clock
from shared.regions import resolve_region
from shared.store import UnitOfWork

log = structlog.get_logger("notify")


async def prefetch_notifications(uow: UnitOfWork, batch: Sequence[events.Event]) -> list[Notification]:
    """The notifications a batch's reports of sends, failures and replies change, locked in one query
    (a fan-out's reports come 30 a second: not one query each)."""
    return await lock_all(uow, {e.notification_id for e in batch
                                if isinstance(e, events.DeliverySent | events.DeliveryFailed | events.NotificationReplied)})


async def on_delivery_sent(event: events.DeliverySent, *, uow: UnitOfWork, clock: Clock) -> None:
    now = uow.cause.occurred_at  # when Telegram accepted it, as the bot recorded it, not when notify heard
    n = await locked(uow, event.notification_id)
    if n is None:
        return
    if n.sent_at is None:
        n.sent_at = now
    if n.state in ("queued", "folded"):
        transition(uow, n, "sent", f"Telegram accepted attempt {event.attempt}", now)
    elif n.state == "expired" and n.chat_id is not None and has_buttons(n):
        await unbutton_late(uow, n)  # closed before this report came: its buttons answer nothing now
    uow.session.add(n)


async def on_delivery_failed(event: events.DeliveryFailed, *, uow: UnitOfWork, clock: Clock,
                             rules: Rules = DEFAULT_RULES) -> None:
    now = clock.now()
    n = await locked(uow, event.notification_id)
    if n is None or n.state not in OPEN_STATES:
        return
    await fail(uow, n, event.reason, now, rules)


async def on_replied(event: events.NotificationReplied, *, uow: UnitOfWork, clock: Clock) -> None:
    now = clock.now()
    n = await locked(uow, event.notification_id)
    if n is None or n.person_id != event.person_id or n.state not in OPEN_STATES:
        return
    await answer(uow, n, event.reply, event.replied_at, now, via="telegram")


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
                                     timezone=n.timezone, regions=(region,), locale=n.locale, email=n.email)
              for n in reminded
              if n.person_id != e.person_id}
    if not people:
        log.warning("call_summary_without_audience", region=region, call=call_about(o))
        return
    uow.session.add(CallSummary(region=region, occurrence=o.key, person_id=e.person_id, text=e.text,
                                sent_at=e.sent_at, event_id=uow.cause.id))
    notice, text = notices.english("call.summary", call=region, start=o.start, text=e.text)
    summary = Request(kind="call.summary", about=call_about(o), occurrence="summary", region=region, text=text,
                      notice=notice)
    await create_all(uow, [(summary, list(people.values()))], now=clock.now())
