"""A notification's life, each change stored with its transition row and its event
(`notify.notification.transitioned`; `bot.deliver.telegram` for a send; for a delivered copy that
closes, `notify.notification.closed` (someone acknowledged) or `notify.notification.expired` (its
matter is over)) in the caller's unit of work: created for whom the roster
named, sent or held for quiet hours or folded past the daily cap, failed or kept for a person
without Telegram, expired when its matter is settled, acknowledged, caught up on linking.
The handlers (reports, facts) and the jobs (due steps, call reminders) change notifications
only through these."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import structlog
from sqlalchemy import func, update
from sqlmodel import col, select

from services.notify.models import DailySent, DeskNotice, HandoverSeen, Notification, Transition
from services.notify.policy import (
    DAILY_SUMMARY,
    OPEN_STATES,
    SUMMARY_KINDS,
    Owed,
    Rules,
    catch_up_plan,
    local_day,
    next_step,
    quiet_release,
    summary_due,
)
from services.notify.recipients import Recipient
from services.notify.store import (
    ACKNOWLEDGE_ALL,
    CLOSABLE_STATES,
    DEFAULT_RULES,
    Request,
    day_counts,
    folded_into,
    load_day_counts,
    notification_id,
)
from services.notify.texts import bullets, fit
from shared import adhoc, events, notices
from shared.events import TEXT_MAX, ReplyButton, deterministic_id
from shared.notices import button_label
from shared.store import UnitOfWork

log = structlog.get_logger("notify")
EMAIL = "email"  # the due step of a message e-mailed on its day to someone without Telegram


def transition(uow: UnitOfWork, n: Notification, to_state: str, reason: str, now: datetime, *,
               new: bool = False, via: str | None = None) -> None:
    from_state = None if new else n.state
    uow.session.add(Transition(notification_id=n.id, from_state=from_state, to_state=to_state, at=now,
                               reason=reason[:200]))
    uow.emit(events.NotificationTransitioned(
        notification_id=n.id, kind=n.kind, about=n.subject, occurrence=n.occurrence, person_id=n.person_id,
        region=n.region, from_state=from_state, to_state=to_state, reason=reason[:200],
        reply=n.reply if to_state == "acknowledged" else None, via=via, at=now))
    n.state = to_state
    n.version += 1  # a scheduled step read before this change will not claim the row
    uow.session.add(n)


async def create(uow: UnitOfWork, request: Request, recipients: Iterable[Recipient], *, now: datetime,
                 rules: Rules = DEFAULT_RULES, depth: int = 0) -> list[Notification]:
    """New notifications for those who do not have this one yet; the rest is untouched."""
    return await create_all(uow, [(request, recipients)], now=now, rules=rules, depth=depth)


def _region(request: Request, r: Recipient) -> str | None:
    """The matter's region, else the recipient's; an ad-hoc message's is its audience's only (None: to
    everyone), as its figures say, so that a region's adviser sees the figures of their region's messages only."""
    return request.region if request.kind == adhoc.KIND else request.region or r.region


async def create_all(uow: UnitOfWork, asks: Iterable[tuple[Request, Iterable[Recipient]]], *, now: datetime,
                     rules: Rules = DEFAULT_RULES, depth: int = 0) -> list[Notification]:
    """`create` for several requests at once (a campaign): one look for those that exist already.
    `depth`: 0 for a fact, 1 for an alert about a notification, 2 for one about a failed alert."""
    wanted = {notification_id(request.kind, request.about, r.person_id, request.occurrence): (request, r)
              for request, recipients in asks for r in recipients if r.person_id not in request.exclude}
    if not wanted:
        return []
    existing = set((await uow.session.exec(select(Notification.id).where(col(Notification.id).in_(list(wanted))))).all())
    await load_day_counts(uow, {(r.person_id, local_day(now, r.timezone)) for nid, (_, r) in wanted.items()
                                 if nid not in existing and r.telegram_user_id is not None})
    created = []
    for nid, (request, r) in wanted.items():
        if nid in existing:
            continue
        policy = rules.policy(request.kind)
        n = Notification(
            id=nid, kind=request.kind, subject=request.about, occurrence=request.occurrence, person_id=r.person_id,
            person_name=r.name, chat_id=r.telegram_user_id, timezone=r.timezone, region=_region(request, r),
            text=fit(request.text_for(r)), buttons=json.dumps([b.model_dump() for b in request.buttons_for(r)]),
            urgent=request.urgent or policy.urgent, created_at=now, document=request.document_for(r), depth=depth,
            group_id=request.group_id, locale=r.locale, email=r.email,
        )
        transition(uow, n, "queued", "requested", now, new=True)
        if r.telegram_user_id is None:  # never tried on Telegram; the desk hears of the person once
            n.owed_at = request.due_for(r, now)  # kept for when they link (`catch_up`)
            await unreachable(uow, n, "no Telegram link", now, to_state="unlinked", rules=rules, email_at=n.owed_at)
        else:
            n.due_at, n.due_action = request.due_for(r, now), "send"
            if n.due_at <= now:  # due now: the first send goes out with the creation, not a step later
                await send(uow, n, "send", now, rules)
        created.append(n)
    return created


async def send(uow: UnitOfWork, n: Notification, action: str, now: datetime, rules: Rules = DEFAULT_RULES) -> None:
    """(Re)send now, or hold until the recipient's quiet hours end (non-urgent kinds), or,
    past the person's daily cap, fold it into their daily summary; then the notification's
    next step is scheduled."""
    release = None if n.urgent else quiet_release(now, n.timezone)
    if release is not None:
        n.due_at, n.due_action = release, action
        log.info("held_for_quiet_hours", notification_id=str(n.id), until=release.isoformat())
        return
    assert n.chat_id is not None
    if not n.urgent and n.kind not in SUMMARY_KINDS and not await _within_cap(uow, n, now, rules):
        await _fold(uow, n, now, rules)
        return
    n.attempts += 1
    n.first_sent_at = n.first_sent_at or now
    buttons = [ReplyButton.model_validate(b) for b in json.loads(n.buttons)]
    uow.emit(events.DeliverTelegram(notification_id=n.id, attempt=n.attempts, person_id=n.person_id,
                                    chat_id=n.chat_id, kind=n.kind, text=fit(n.text), buttons=buttons,
                                    urgent=n.urgent, document=n.document),
             id=deterministic_id("deliver", n.id, n.attempts))
    schedule_next(n, rules)


async def _within_cap(uow: UnitOfWork, n: Notification, now: datetime, rules: Rules) -> bool:
    """Counts this send against the person's day; False when the day's cap is reached."""
    day = local_day(now, n.timezone)
    counts = day_counts(uow)
    counted = counts.get((n.person_id, day)) or await uow.session.get(DailySent, (n.person_id, day))
    if counted is None:
        counted = DailySent(person_id=n.person_id, day=day)
    counts[(n.person_id, day)] = counted  # the next send in this transaction finds it, written at commit
    if counted.count >= rules.daily_cap:
        return False
    counted.count += 1
    uow.session.add(counted)
    return True


async def _fold(uow: UnitOfWork, n: Notification, now: datetime, rules: Rules) -> None:
    """Over the cap: listed in the person's summary of the day (one per day), which goes at
    `summary_at` local; the notification stays open and answerable (/pending), and its later
    steps (re-notify, escalation) follow as if it had been sent now."""
    day = local_day(now, n.timezone)
    n.folded_on = day
    n.attempts += 1  # the summary carries it: later steps count from here, as after a send
    n.first_sent_at = n.first_sent_at or now
    if n.state != "folded":
        transition(uow, n, "folded", f"over the daily cap of {rules.daily_cap}", now)
    schedule_next(n, rules)
    summary_id = notification_id(DAILY_SUMMARY, str(n.person_id), n.person_id, day)
    if await uow.session.get(Notification, summary_id) is None:
        summary = Notification(
            id=summary_id, kind=DAILY_SUMMARY, subject=str(n.person_id), occurrence=day, person_id=n.person_id,
            person_name=n.person_name, chat_id=n.chat_id, timezone=n.timezone, region=n.region,
            text="(written when it is sent)", created_at=now, locale=n.locale,
            buttons=json.dumps([ReplyButton(label=button_label(ACKNOWLEDGE_ALL.label, n.locale), reply="ack")
                                .model_dump()]),
            depth=n.depth, due_at=summary_due(now, n.timezone, rules.summary_at), due_action="send")
        transition(uow, summary, "queued", "messages over the daily cap", now, new=True)
        await uow.session.flush()


async def daily_summary_text(uow: UnitOfWork, summary: Notification) -> str | None:
    """What the person's summary lists: the day's folded messages still open; None if none is."""
    folded = await folded_into(uow, summary)
    if not folded:
        return None
    heading = notices.say("summary.daily", summary.locale, n=len(folded)) + "\n"
    return heading + bullets([f.text.split("\n", 1)[0] for f in folded], budget=TEXT_MAX - len(heading))


def schedule_next(n: Notification, rules: Rules = DEFAULT_RULES) -> None:
    assert n.first_sent_at is not None
    plan = next_step(policy=rules.policy(n.kind), first_sent_at=n.first_sent_at, attempts=n.attempts,
                     escalation_level=n.escalation_level)
    n.due_at, n.due_action = plan.at, plan.action


async def fail(uow: UnitOfWork, n: Notification, reason: str, now: datetime, rules: Rules = DEFAULT_RULES) -> None:
    """Telegram cannot take it (blocked, refused): failed, e-mailed when that is possible, and the desk
    hears of the person once."""
    await unreachable(uow, n, reason, now, to_state="failed", rules=rules)


async def unreachable(uow: UnitOfWork, n: Notification, reason: str, now: datetime, *, to_state: str,
                      rules: Rules = DEFAULT_RULES, email_at: datetime | None = None) -> None:
    """Not delivered on Telegram, for good (`failed`) or until the person links it (`unlinked`): it goes
    by e-mail when notify has a mail server and the person an address (mail.py; the links in it answer
    as the buttons would), at `email_at` when that is later (a campaign's reminder on its day, not all
    of them at once), and the desk hears of the person once, in its daily summary, with the channels
    tried. A summary that does not reach its reader is not reported in turn: noise stops there."""
    n.failed_reason = reason[:200]
    n.due_at, n.due_action = None, None
    transition(uow, n, to_state, reason, now)
    if n.kind in SUMMARY_KINDS:
        log.warning("summary_not_delivered", notification_id=str(n.id), kind=n.kind, reason=reason[:200])
        return
    channels = reason[:100]
    if rules.email:
        if n.email and email_at is not None and email_at > now:
            n.due_at, n.due_action = email_at, EMAIL
        elif n.email:
            email(uow, n)
        channels += "; e-mailed" if n.email else "; no e-mail address"
    await notice(uow, key=f"unreached:{n.person_id}", region=n.region, line=f"{n.person_name} ({channels})",
                 depth=n.depth, now=now)


def email(uow: UnitOfWork, n: Notification) -> None:
    """The command to notify's mailer (mail.py), once per state and attempt: a message mailed while its
    person had no Telegram link, then sent there and refused, asks again (and the mailer, seeing it
    mailed already, sends nothing twice); the same id twice would be refused by the outbox."""
    uow.emit(events.DeliverEmail(notification_id=n.id, reason=(n.failed_reason or "")[:200]),
             id=deterministic_id("deliver-email", n.id, n.state, n.attempts))


async def notice(uow: UnitOfWork, *, key: str, region: str | None, line: str, depth: int, now: datetime,
                 counted: bool = True) -> None:
    """Something for the desk's next summary; the same key again only counts (a new line is told again).
    `counted` False: the same occurrence said anew (a mail refused after it was counted as e-mailed)."""
    row = await uow.session.get(DeskNotice, key)
    if row is None:
        row = DeskNotice(key=key, region=region, line=line[:400], depth=depth, first_at=now, last_at=now)
    else:
        row.count += counted
        row.last_at = now
        row.depth = max(row.depth, depth)
        if row.line != line[:400]:
            row.line, row.told_at = line[:400], None
    uow.session.add(row)
    await uow.session.flush()


async def expire_open(uow: UnitOfWork, *, kinds: Sequence[str], about: str, reason: str, now: datetime,
                      keep_occurrence: str | None = None) -> int:
    """Close the open notifications of these kinds about this subject (the matter is settled), the
    escalations about them, and those kept for a person without Telegram (nothing is owed them any more);
    those whose occurrence starts with `keep_occurrence` stay (a campaign re-timed to that date). A copy
    already delivered loses its buttons: a press would answer nothing."""
    rows = (await uow.session.exec(select(Notification).where(
        col(Notification.kind).in_(kinds), Notification.subject == about,
        col(Notification.state).in_(CLOSABLE_STATES)).with_for_update())).all()
    closed = []
    for n in rows:
        if keep_occurrence is not None and n.occurrence.startswith(keep_occurrence):
            continue
        closed.append(n)
    for c in [*closed, *await escalations_about(uow, [n.id for n in closed])]:
        close_copy(uow, c, reason, now)
    return len(closed)


def close_copy(uow: UnitOfWork, c: Notification, reason: str, now: datetime, *,
               acknowledged: tuple[str, datetime] | None = None) -> None:
    """`c` expires; a copy on someone's screen loses its buttons (the bot rewrites it to say who
    acknowledged, or, with no `acknowledged` (who, when), that no answer is needed any more)."""
    c.due_at, c.due_action = None, None
    # on screen as far as notify knows: Telegram's acceptance was reported. A copy whose report had not come
    # when the matter closed is rewritten when it comes (unbutton_late): one rewrite, never one before the
    # message exists
    on_screen = c.sent_at is not None and c.chat_id is not None and c.state != "unlinked"
    transition(uow, c, "expired", reason, now)
    if not on_screen:
        return
    if acknowledged is not None or has_buttons(c):  # a message with nothing to press stays as it was read
        unbutton(uow, c, closed_at=now, acknowledged=acknowledged)


def has_buttons(c: Notification) -> bool:
    return c.buttons not in ("", "[]")


def _copy(c: Notification) -> dict[str, Any]:
    assert c.chat_id is not None
    return {"notification_id": c.id, "person_id": c.person_id, "chat_id": c.chat_id, "text": fit(c.text),
            "document": c.document is not None}


def unbutton(uow: UnitOfWork, c: Notification, *, closed_at: datetime,
             acknowledged: tuple[str, datetime] | None = None, report: uuid.UUID | None = None) -> None:
    """The bot rewrites `c`'s messages on screen without their buttons, saying who acknowledged
    (`acknowledged`: who, when) or that no answer is needed any more (closed at `closed_at`). Once per
    copy; a `report` of a send heard after the close asks once more, for the message it sent."""
    assert c.chat_id is not None
    again = () if report is None else (report,)
    if acknowledged is None:
        uow.emit(events.NotificationExpired(**_copy(c), closed_at=closed_at),
                 id=deterministic_id("expired", c.id, *again))
    else:
        by, at = acknowledged
        uow.emit(events.NotificationClosed(**_copy(c), acknowledged_by=by[:200], acknowledged_at=at),
                 id=deterministic_id("closed", c.id, *again))


async def unbutton_late(uow: UnitOfWork, c: Notification) -> None:
    """`c` was closed before notify heard that Telegram accepted it (the report was on its way, or the
    send waited for its turn: the send gate, a retry), so its message is there with buttons that answer
    nothing now: the bot rewrites it as the copies on screen at the close were, saying who acknowledged
    (another holder of the same alert) or that no answer is needed. Each report of such a send asks once
    (the event that caused it fixes the id); editing twice changes nothing."""
    by = None if c.group_id is None else (await uow.session.exec(select(Notification).where(
        Notification.group_id == c.group_id, Notification.state == "acknowledged",
        col(Notification.acknowledged_at).is_not(None)).order_by(col(Notification.acknowledged_at)).limit(1))).first()
    if by is not None and by.acknowledged_at is not None:  # closed by that answer
        who = (by.person_name or "a recipient", by.acknowledged_at)
        unbutton(uow, c, closed_at=by.acknowledged_at, acknowledged=who, report=uow.cause.id)
        return
    closed_at = (await uow.session.exec(select(func.max(Transition.at)).where(
        Transition.notification_id == c.id, Transition.to_state == "expired"))).first()
    unbutton(uow, c, closed_at=closed_at or uow.cause.occurred_at, report=uow.cause.id)


async def escalations_about(uow: UnitOfWork, ids: Sequence[uuid.UUID]) -> list[Notification]:
    """The open escalations about these notifications, and the escalations about those (locked):
    what stops with them. Depth is bounded, so is this."""
    found: list[Notification] = []
    about = list(ids)
    for _ in range(4):
        if not about:
            break
        step = list((await uow.session.exec(select(Notification).where(
            Notification.kind == "escalation", col(Notification.subject).in_([str(i) for i in about]),
            col(Notification.state).in_(CLOSABLE_STATES)).with_for_update())).all())
        found += step
        about = [f.id for f in step]
    return found


def acknowledge(uow: UnitOfWork, n: Notification, reply: str, replied_at: datetime, now: datetime, *,
                via: str) -> None:
    n.reply, n.acknowledged_at = reply, replied_at
    n.due_at, n.due_action = None, None
    transition(uow, n, "acknowledged", f"pressed {reply}", now, via=via)


async def answer(uow: UnitOfWork, n: Notification, reply: str, replied_at: datetime, now: datetime, *,
                 via: str) -> None:
    """A person's answer to a notification (`via` its button in Telegram, or its link in a mail):
    acknowledged, with every message a daily summary listed ("acknowledge all"), and what each closes."""
    acknowledge(uow, n, reply, replied_at, now, via=via)
    answered = [n]
    if n.kind == DAILY_SUMMARY:
        for folded in await folded_into(uow, n):
            acknowledge(uow, folded, reply, replied_at, now, via=via)
            answered.append(folded)
    for done in answered:
        await close_after(uow, done, now)


async def close_after(uow: UnitOfWork, n: Notification, now: datetime) -> list[Notification]:
    """An acknowledgement is the end of the matter: the other copies of the same alert (its
    role's other holders), and every escalation about any of them, and escalations about
    those, stop, held ones and those kept for a person without Telegram included. Each copy
    already delivered is rewritten by the bot to say who acknowledged. Returns what it closed."""
    assert n.acknowledged_at is not None
    by, at = n.person_name or "a recipient", n.acknowledged_at
    reason = f"acknowledged by {by} at {at:%d %b %H:%M} UTC"
    closed: list[Notification] = []
    if n.group_id is not None:
        closed += (await uow.session.exec(select(Notification).where(
            Notification.group_id == n.group_id, col(Notification.id) != n.id,
            col(Notification.state).in_(CLOSABLE_STATES)).with_for_update())).all()
    closed += await escalations_about(uow, [n.id, *(c.id for c in closed)])
    for c in closed:
        close_copy(uow, c, reason, now, acknowledged=(by, at))
    if closed:
        log.info("closed_by_acknowledgement", notification_id=str(n.id), closed=len(closed))
    return closed


async def catch_up(uow: UnitOfWork, *, person_id: uuid.UUID, chat_id: int, now: datetime,
                   rules: Rules = DEFAULT_RULES) -> dict[str, int]:
    """A person linked Telegram: what was kept for them goes to `chat_id`, once, newest state
    only (`policy.catch_up_plan`); sends follow the usual rules (quiet hours, the daily cap,
    urgent kinds). The desk's "could not reach" line about them is dropped, and what is still
    open goes on (re-sends) at this chat, not at an account the roster no longer links."""
    await uow.session.exec(update(Notification)  # type: ignore[call-overload]
                           .where(col(Notification.person_id) == person_id, col(Notification.chat_id) != chat_id,
                                  col(Notification.state).in_(OPEN_STATES),
                                  # told to one account on purpose (the one that lost the link): stays there
                                  col(Notification.kind).not_in(events.LINK_CHANGED_KINDS))
                           .values(chat_id=chat_id, version=Notification.version + 1))
    kept = list((await uow.session.exec(select(Notification).where(
        Notification.person_id == person_id, Notification.state == "unlinked")
        .order_by(col(Notification.created_at)).with_for_update())).all())
    notice_row = await uow.session.get(DeskNotice, f"unreached:{person_id}")
    if notice_row is not None:
        await uow.session.delete(notice_row)
    if not kept:
        return {"sent": 0, "later": 0, "expired": 0}
    escalated = {n.subject for n in kept if n.kind == "escalation"}
    still_open = set()
    if escalated:
        ids = []
        for subject in escalated:
            try:
                ids.append(uuid.UUID(subject))
            except ValueError:
                continue
        still_open = {str(i) for i in (await uow.session.exec(select(Notification.id).where(
            col(Notification.id).in_(ids), col(Notification.state).in_(OPEN_STATES)))).all()}
    by_id = {n.id: n for n in kept}
    plan = catch_up_plan([Owed(id=n.id, kind=n.kind, subject=n.subject, occurrence=n.occurrence,
                               owed_at=_aware(n.owed_at or n.created_at)) for n in kept], now,
                         settled=frozenset(escalated - still_open), overrides=rules.policies)
    counts = {"sent": 0, "later": 0, "expired": 0}
    for verdict in plan:
        n = by_id[verdict.owed.id]  # type: ignore[index]
        if not verdict.send:
            transition(uow, n, "expired", verdict.reason, now)
            counts["expired"] += 1
            continue
        n.chat_id, n.failed_reason = chat_id, None
        n.text = _days_left_now(n, now)
        transition(uow, n, "queued", f"Telegram linked: {verdict.reason}", now)
        n.due_at, n.due_action = max(verdict.owed.owed_at, now), "send"
        if n.due_at <= now:
            await send(uow, n, "send", now, rules)
            counts["sent"] += 1
        else:
            counts["later"] += 1
    log.info("caught_up_on_linking", person_id=str(person_id), **counts)
    return counts


DAYS_LEFT = re.compile(r"\((\d+) days\)")


def _days_left_now(n: Notification, now: datetime) -> str:
    """A handover prompt sent late says how many days are left now, not when it was written
    (its occurrence is the planned end)."""
    if n.kind != "handover.prompt":
        return n.text
    try:
        end = date.fromisoformat(n.occurrence)
    except ValueError:
        return n.text
    left = (end - date.fromisoformat(local_day(now, n.timezone))).days
    return DAYS_LEFT.sub(f"({left} day{'s' if left != 1 else ''})", n.text, count=1)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def handover_seen(uow: UnitOfWork, event: events.HandoverRecorded, now: datetime) -> None:
    if await uow.session.get(HandoverSeen, event.deployment_id) is None:
        uow.session.add(HandoverSeen(deployment_id=event.deployment_id, post_id=event.post_id,
                                     person_id=event.person_id, note_id=event.note_id, recorded_at=now))
