"""Notification state changes, each stored with its transition row and event in one transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time

import structlog
from sqlmodel import col, select

from services.notify.models import HandoverSeen, Notification, Transition
from services.notify.policy import (
    OPEN_STATES,
    KindPolicy,
    next_step,
    policy_for,
    quiet_release,
    zone,
)
from services.notify.recipients import Recipient
from shared import events
from shared.events import ReplyButton, deterministic_id
from shared.store import UnitOfWork

log = structlog.get_logger("notify")
SOURCE = "notify"
ACKNOWLEDGE = (ReplyButton(label="Acknowledge", reply="ack"),)
DUE_LOCAL_TIME = time(9, 0)  # campaign messages timed by date go out at 09:00 local


def notification_id(kind: str, about: str, person_id: uuid.UUID, occurrence: str) -> uuid.UUID:
    return deterministic_id("notification", kind, about, person_id, occurrence)


@dataclass(frozen=True)
class Request:
    """What to tell; `due_at` None means now. `region` is the matter's (a gapped
    post's region), else the recipient's own."""

    kind: str
    about: str
    occurrence: str
    text: str
    buttons: Sequence[ReplyButton] = ACKNOWLEDGE
    urgent: bool = False
    region: str | None = None
    due_at: datetime | None = None
    due_on: date | None = None  # or: on this day at `DUE_LOCAL_TIME` in the recipient's time zone
    exclude: frozenset[uuid.UUID] = field(default_factory=frozenset)
    document: str | None = None  # a file of the DOCUMENTS object store, sent with the text

    def due_for(self, recipient: Recipient, now: datetime) -> datetime:
        if self.due_on is not None:
            local = datetime.combine(self.due_on, DUE_LOCAL_TIME, tzinfo=zone(recipient.timezone))
            return max(now, local.astimezone(now.tzinfo))
        return self.due_at or now


def transition(uow: UnitOfWork, n: Notification, to_state: str, reason: str, now: datetime, *,
               new: bool = False) -> None:
    from_state = None if new else n.state
    uow.session.add(Transition(notification_id=n.id, from_state=from_state, to_state=to_state, at=now,
                               reason=reason[:200]))
    uow.emit(events.NotificationTransitioned(
        notification_id=n.id, kind=n.kind, about=n.subject, occurrence=n.occurrence, person_id=n.person_id,
        region=n.region, from_state=from_state, to_state=to_state, reason=reason[:200], at=now))
    n.state = to_state
    n.version += 1  # a scheduled step read before this change will not claim the row
    uow.session.add(n)


async def create(uow: UnitOfWork, request: Request, recipients: Iterable[Recipient], *, now: datetime,
                 policies: dict[str, KindPolicy] | None = None) -> list[Notification]:
    """New notifications for those who do not have this one yet; the rest is untouched."""
    return await create_all(uow, [(request, recipients)], now=now, policies=policies)


async def create_all(uow: UnitOfWork, asks: Iterable[tuple[Request, Iterable[Recipient]]], *, now: datetime,
                     policies: dict[str, KindPolicy] | None = None) -> list[Notification]:
    """`create` for several requests at once (a campaign): one look for those that exist already."""
    wanted = {notification_id(request.kind, request.about, r.person_id, request.occurrence): (request, r)
              for request, recipients in asks for r in recipients if r.person_id not in request.exclude}
    if not wanted:
        return []
    existing = set((await uow.session.exec(select(Notification.id).where(col(Notification.id).in_(list(wanted))))).all())
    created = []
    for nid, (request, r) in wanted.items():
        if nid in existing:
            continue
        policy = policy_for(request.kind, policies)
        n = Notification(
            id=nid, kind=request.kind, subject=request.about, occurrence=request.occurrence, person_id=r.person_id,
            person_name=r.name, chat_id=r.telegram_user_id, timezone=r.timezone, region=request.region or r.region,
            text=request.text, buttons=json.dumps([b.model_dump() for b in request.buttons]),
            urgent=request.urgent or policy.urgent, created_at=now, document=request.document,
        )
        transition(uow, n, "queued", "requested", now, new=True)
        if r.telegram_user_id is None:
            n.failed_reason = "no Telegram link"
            transition(uow, n, "failed", "no Telegram link", now)
            n.due_at, n.due_action = now, "tell_desk"
        else:
            n.due_at, n.due_action = request.due_for(r, now), "send"
            if n.due_at <= now:  # due now: the first send goes out with the creation, not a step later
                send(uow, n, "send", now, policies)
        created.append(n)
    return created


def send(uow: UnitOfWork, n: Notification, action: str, now: datetime,
         policies: dict[str, KindPolicy] | None = None) -> None:
    """(Re)send now, or hold until the recipient's quiet hours end (non-urgent kinds);
    then the notification's next step is scheduled."""
    release = None if n.urgent else quiet_release(now, n.timezone)
    if release is not None:
        n.due_at, n.due_action = release, action
        log.info("held_for_quiet_hours", notification_id=str(n.id), until=release.isoformat())
        return
    assert n.chat_id is not None
    n.attempts += 1
    n.first_sent_at = n.first_sent_at or now
    buttons = [ReplyButton.model_validate(b) for b in json.loads(n.buttons)]
    uow.emit(events.DeliverTelegram(notification_id=n.id, attempt=n.attempts, person_id=n.person_id,
                                    chat_id=n.chat_id, kind=n.kind, text=n.text, buttons=buttons, urgent=n.urgent,
                                    document=n.document),
             id=deterministic_id("deliver", n.id, n.attempts))
    schedule_next(n, policies)


def schedule_next(n: Notification, policies: dict[str, KindPolicy] | None = None) -> None:
    assert n.first_sent_at is not None
    plan = next_step(policy=policy_for(n.kind, policies), first_sent_at=n.first_sent_at, attempts=n.attempts,
                     escalation_level=n.escalation_level)
    n.due_at, n.due_action = plan.at, plan.action


async def expire_open(uow: UnitOfWork, *, kinds: Sequence[str], about: str, reason: str, now: datetime,
                      keep_occurrence: str | None = None) -> int:
    """Close the open notifications of these kinds about this subject (the matter is settled);
    those whose occurrence starts with `keep_occurrence` stay (a campaign re-timed to that date)."""
    rows = (await uow.session.exec(select(Notification).where(
        col(Notification.kind).in_(kinds), Notification.subject == about,
        col(Notification.state).in_(OPEN_STATES)).with_for_update())).all()
    for n in rows:
        if keep_occurrence is not None and n.occurrence.startswith(keep_occurrence):
            continue
        n.due_at, n.due_action = None, None
        transition(uow, n, "expired", reason, now)
    return len(rows)


# --- what the bot reports -----------------------------------------------------


async def locked(uow: UnitOfWork, notification_id: uuid.UUID) -> Notification | None:
    """The row, locked until commit on PostgreSQL (SQLite's write transaction already is)."""
    return (await uow.session.exec(
        select(Notification).where(col(Notification.id) == notification_id).with_for_update())).first()


async def on_delivery_sent(uow: UnitOfWork, event: events.DeliverySent, now: datetime) -> None:
    n = await locked(uow, event.notification_id)
    if n is None:
        return
    if n.sent_at is None:
        n.sent_at = now
    if n.state == "queued":
        transition(uow, n, "sent", f"Telegram accepted attempt {event.attempt}", now)
    uow.session.add(n)


async def on_delivery_failed(uow: UnitOfWork, event: events.DeliveryFailed, now: datetime) -> None:
    n = await locked(uow, event.notification_id)
    if n is None or n.state not in OPEN_STATES:
        return
    n.failed_reason = event.reason[:200]
    transition(uow, n, "failed", event.reason, now)
    n.due_at, n.due_action = now, "tell_desk"


async def on_replied(uow: UnitOfWork, event: events.NotificationReplied, now: datetime) -> None:
    n = await locked(uow, event.notification_id)
    if n is None or n.person_id != event.person_id or n.state not in OPEN_STATES:
        return
    n.reply, n.acknowledged_at = event.reply, event.replied_at
    n.due_at, n.due_action = None, None
    transition(uow, n, "acknowledged", f"pressed {event.reply}", now)


async def on_departure_changed(uow: UnitOfWork, event: events.DepartureChanged, now: datetime) -> None:
    """The campaign timed from the old end date stops; the roster's next ending_soon starts the new one."""
    await expire_open(uow, kinds=("handover.prompt", "handover.reminder", "handover.departure"),
                      about=str(event.deployment_id), reason=f"departure moved to {event.planned_end}", now=now,
                      keep_occurrence=str(event.planned_end))


async def handover_seen(uow: UnitOfWork, event: events.HandoverRecorded, now: datetime) -> None:
    if await uow.session.get(HandoverSeen, event.deployment_id) is None:
        uow.session.add(HandoverSeen(deployment_id=event.deployment_id, post_id=event.post_id,
                                     person_id=event.person_id, note_id=event.note_id, recorded_at=now))
