"""The bot's handlers of notify's commands: a notification sent once per (notification, attempt),
the copies of an alert closed. (A press of a delivered message's button: routers/replies.py.)

The Telegram call happens outside any database transaction: first the send
waits for its slot under Telegram's limits (urgent ones first), then it is
marked in flight (committed), then Telegram is called, then the delivery is
recorded with its `bot.delivery.sent` event (outbox). A kill -9 between the
marker and the record can repeat that one send (Telegram offers no idempotency
key); the marker makes such a repeat known and counted (`Delivery.sends`), and
only sends in flight at the kill can repeat: at 30 a second, a few at most.

Telegram's refusals: a user who blocked the bot (403) or never started it (400
"chat not found") makes the delivery `failed` with that reason, and notify
tells the desk. A server error (5xx, or an HTML page from Telegram's edge that
aiogram cannot decode) that outlasts the session's retries is transient: the
command is delivered again later, never dead-lettered.

An alert to a role reaches each holder as a copy; when one acknowledges, notify
closes the others (`notify.notification.closed`) and each delivered copy is
rewritten to say who acknowledged and when, its buttons gone. A copy whose matter is
over with nobody's answer (`notify.notification.expired`) is rewritten the same way, to
say no answer is needed any more. Telegram's "message is not modified" means it was done already; a message deleted, too old or in a
chat that is gone is left as it is: neither is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from functools import cache
from html import escape
from typing import Any

import structlog
from aiogram import Bot
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest, TelegramForbiddenError, TelegramServerError
from aiogram.types import BufferedInputFile
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from nats.js.errors import ObjectNotFoundError
from prometheus_client import Histogram
from sqlalchemy import bindparam, update
from sqlmodel import col, select

from services.bot import gate
from services.bot.callbacks import NotificationReply
from services.bot.edits import rewrite, unbutton
from services.bot.gate import SendGate
from services.bot.i18n import Languages
from shared.i18n import DEFAULT
from services.bot.models import Delivery
from shared import events
from shared.bus import TransientError, delivery_count
from shared.clock import Clock
from shared.documents import Documents
from shared.events import Envelope
from shared.store import Database, Work, upsert_for

log = structlog.get_logger("bot")
CAPTION_MAX = 1024  # Telegram's limit for a document's caption
MESSAGE_MAX = 4096  # ... and for a message's text


async def _done(db: Database, event: events.DeliverTelegram) -> bool:
    async with db.read() as session:
        row = (await session.exec(select(Delivery).where(
            Delivery.notification_id == event.notification_id, Delivery.attempt == event.attempt))).first()
    return row is not None and (row.message_id is not None or row.failed is not None)


_DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
# built once (a fan-out writes two per send); a parameter of the WHERE clause is named apart from the columns set
_RECORD = update(_DELIVERY).where(
    _DELIVERY.c.notification_id == bindparam("of_notification"), _DELIVERY.c.attempt == bindparam("of_attempt"),
).values(message_id=bindparam("message_id"), failed=bindparam("failed"), at=bindparam("at"))


@cache
def _marker(dialect: str) -> Any:
    """The in-flight marker's statement, for the store's dialect."""
    columns = ("notification_id", "attempt", "person_id", "chat_id", "at", "replies")
    marked = upsert_for(dialect, _DELIVERY).values(**{name: bindparam(name) for name in columns}, sends=1)
    return marked.on_conflict_do_update(
        index_elements=[_DELIVERY.c.notification_id, _DELIVERY.c.attempt], set_={"sends": _DELIVERY.c.sends + 1},
        where=_DELIVERY.c.message_id.is_(None) & _DELIVERY.c.failed.is_(None)).returning(_DELIVERY.c.sends)


async def _begin(db: Database, event: events.DeliverTelegram, clock: Clock) -> bool:
    """Mark the send in flight (committed before the Telegram call); False if it
    was done already. A marker left by a crash means Telegram may have taken the
    message: the send is repeated, and counted. One statement: the marker written,
    or the one a crash left counted, unless the send was done."""
    values = {"notification_id": event.notification_id, "attempt": event.attempt, "person_id": event.person_id,
              "chat_id": event.chat_id, "at": clock.now(), "replies": " ".join(b.reply for b in event.buttons)}
    sends: int | None = await db.transact(
        lambda w: w.conn.execute(_marker(w.conn.dialect.name), values).scalar_one_or_none())
    if sends is not None and sends > 1:
        log.warning("delivery_repeated_after_crash", sends=sends)
    return sends is not None


def _record(w: Work, event: events.DeliverTelegram, *, message_id: int | None, failed: str | None,
            at: datetime) -> None:
    """The send's outcome and its event (`bot.delivery.sent` or `.failed`), in one transaction."""
    w.conn.execute(_RECORD, {"of_notification": event.notification_id, "of_attempt": event.attempt,
                             "message_id": message_id, "failed": failed, "at": at})
    if failed is None:
        assert message_id is not None
        w.emit(events.DeliverySent(notification_id=event.notification_id, attempt=event.attempt,
                                   person_id=event.person_id, message_id=message_id))
    else:
        w.emit(events.DeliveryFailed(notification_id=event.notification_id, attempt=event.attempt,
                                     person_id=event.person_id, reason=failed))


async def _document(event: events.DeliverTelegram, documents: Documents | None) -> bytes | None:
    if event.document is None or documents is None:
        return None
    try:
        return await documents.get(event.document)
    except ObjectNotFoundError:  # the text still goes; the file is named in the log
        log.warning("document_missing", document=event.document)
        return None


async def on_deliver(envelope: Envelope, event: events.DeliverTelegram, *, bot: Bot, db: Database, clock: Clock,
                     send_gate: SendGate | None = None, documents: Documents | None = None,
                     latency: Histogram | None = None, forget: Callable[[int], None] | None = None) -> None:
    if event.kind in events.LINK_CHANGED_KINDS and forget is not None:
        forget(event.chat_id)  # the roster (un)linked this account: its kept card goes before it is told
    keyboard = InlineKeyboardBuilder()
    for button in event.buttons:
        keyboard.button(text=button.label, callback_data=NotificationReply(n=event.notification_id.hex, r=button.reply))
    failed: str | None = None
    message_id: int | None = None
    # a redelivery that was done takes no turn from the others. A first delivery was never handled: it
    # skips the read (in a fan-out a thousand of them at once, before an urgent one fetched after them);
    # a command notify published twice is still caught by _begin, which does not send what was done.
    if delivery_count() != 1 and await _done(db, event):
        log.info("delivery_already_done")
        return
    file = await _document(event, documents)
    with nullcontext() if event.urgent else gate.bulk():  # urgent ones go before a bulk fan-out
        if send_gate is not None:
            await send_gate.acquire(event.chat_id)  # the slot first: a send waiting for it is not in flight
        if not await _begin(db, event, clock):
            log.info("delivery_already_done")
            return
        markup = keyboard.as_markup() if event.buttons else None
        try:
            with gate.with_slot_taken() if send_gate is not None else nullcontext():
                if file is not None:
                    sent = await bot.send_document(event.chat_id, BufferedInputFile(file, filename=str(event.document)),
                                                   caption=escape(event.text)[:CAPTION_MAX], reply_markup=markup)
                else:
                    sent = await bot.send_message(event.chat_id, escape(event.text), reply_markup=markup)
            message_id = sent.message_id
        except TelegramForbiddenError:  # blocked, or the account deleted: as good as blocked
            failed = "blocked"
        except TelegramBadRequest as err:
            failed = "chat not found" if "chat not found" in err.message.lower() else f"refused: {err.message}"[:200]
        except (TelegramServerError, ClientDecodeError) as err:  # Telegram unwell past the retries: later, again
            raise TransientError(f"Telegram server error: {type(err).__name__}", delay=5.0) from err
    at = clock.now()
    await db.transact(lambda w: _record(w, event, message_id=message_id, failed=failed, at=at),
                      correlation_id=envelope.correlation_id)
    if latency is not None and failed is None:
        latency.observe(max(0.0, (clock.now() - envelope.occurred_at).total_seconds()))
    log.info("delivery_done", notification_id=str(event.notification_id), failed=failed)


def acknowledged_note(event: events.NotificationClosed) -> str:
    who = _("Acknowledged by {name}, {time} UTC").format(name=escape(event.acknowledged_by),
                                                         time=f"{event.acknowledged_at.astimezone(UTC):%H:%M}")
    return f"✓ <i>{who}</i>"


def expired_note(event: events.NotificationExpired) -> str:
    closed = _("No answer is needed any more (closed at {time} UTC)").format(
        time=f"{event.closed_at.astimezone(UTC):%H:%M}")
    return f"<i>{closed}</i>"


def closed_text(text: str, note: str) -> str:
    """The copy as delivered (`text`), then `note`: who acknowledged it, or that no answer is needed."""
    body = escape(text)
    if len(body) + len(note) + 20 > MESSAGE_MAX:
        body = body[: max(0, MESSAGE_MAX - len(note) - 20)]
        if body.rfind("&") > body.rfind(";"):  # never cut inside an entity (&amp;)
            body = body[: body.rfind("&")]
        body += "…"
    return f"{body}\n\n{note}"


async def on_closed(envelope: Envelope, event: events.NotificationClosed, *, bot: Bot, db: Database,
                    languages: Languages) -> None:
    """Another recipient acknowledged: each message of this copy shows who did, without buttons (a file's
    caption stays, and who acknowledged follows it, once)."""
    with languages.using(await languages.chosen(event.chat_id) or DEFAULT):
        note = acknowledged_note(event)
    await _close_copy(bot, db, event, note=note, note_after_file=True)


async def on_expired(envelope: Envelope, event: events.NotificationExpired, *, bot: Bot, db: Database,
                     languages: Languages) -> None:
    """Nobody answered and the matter is over: each message of this copy says no answer is needed, without
    buttons (a file only loses its buttons: a new message to say so would be noise)."""
    with languages.using(await languages.chosen(event.chat_id) or DEFAULT):
        note = expired_note(event)
    await _close_copy(bot, db, event, note=note, note_after_file=False)


async def _close_copy(bot: Bot, db: Database, event: events.NotificationClosed | events.NotificationExpired, *,
                      note: str, note_after_file: bool) -> None:
    async with db.read() as session:
        rows = list((await session.exec(select(Delivery).where(
            Delivery.notification_id == event.notification_id, col(Delivery.message_id).is_not(None)))).all())
    if not rows:  # held, folded or never accepted: nothing on the screen to change
        log.info("closed_nothing_delivered", notification_id=str(event.notification_id))
        return
    text = closed_text(event.text, note)
    rewritten = 0
    for row in rows:
        assert row.message_id is not None
        try:
            if event.document:
                rewritten += await unbutton(bot, row.chat_id, row.message_id)
            else:
                rewritten += await rewrite(bot, row.chat_id, row.message_id, text)
        except TelegramBadRequest as err:  # refused for good: asking again would be refused again
            log.warning("closed_rewrite_refused", notification_id=str(event.notification_id), error=err.message[:200])
        except (TelegramServerError, ClientDecodeError) as err:
            raise TransientError(f"Telegram server error: {type(err).__name__}", delay=5.0) from err
    if event.document and rewritten and note_after_file:
        try:
            await bot.send_message(event.chat_id, note)
        except (TelegramBadRequest, TelegramForbiddenError) as err:
            log.warning("closed_note_refused", notification_id=str(event.notification_id), error=str(err)[:200])
    log.info("closed_rewritten", notification_id=str(event.notification_id), messages=len(rows), rewritten=rewritten)
