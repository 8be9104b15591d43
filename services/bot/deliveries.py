"""Notifications from notify: sent once per (notification, attempt), answered by a button.

The Telegram call happens outside any database transaction. Only after
Telegram accepted the message is the delivery recorded, together with its
`bot.delivery.sent` event (outbox). A kill -9 between the two can repeat that
one send; Telegram offers no idempotency key, so such a repeat is possible but
limited to sends in flight.
"""

from __future__ import annotations

from html import escape
from typing import Any

import structlog
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import CallbackQuery
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlmodel import select

from services.bot.callbacks import NotificationReply
from services.bot.models import Delivery
from shared import events
from shared.clock import Clock
from shared.events import Envelope
from shared.store import Database

log = structlog.get_logger("bot")
SOURCE = "bot"


async def _recorded(db: Database, event: events.DeliverTelegram) -> Delivery | None:
    async with db.read() as session:
        return (await session.exec(select(Delivery).where(
            Delivery.notification_id == event.notification_id, Delivery.attempt == event.attempt))).first()


async def on_deliver(envelope: Envelope, event: events.DeliverTelegram, *, bot: Bot, db: Database, clock: Clock) -> None:
    if await _recorded(db, event) is not None:
        log.info("delivery_already_done")
        return
    keyboard = InlineKeyboardBuilder()
    for button in event.buttons:
        keyboard.button(text=button.label, callback_data=NotificationReply(n=event.notification_id.hex, r=button.reply))
    failed: str | None = None
    message_id: int | None = None
    try:
        sent = await bot.send_message(event.chat_id, escape(event.text),
                                      reply_markup=keyboard.as_markup() if event.buttons else None)
        message_id = sent.message_id
    except TelegramForbiddenError:
        failed = "blocked"
    except TelegramBadRequest as err:
        failed = f"refused: {err.message}"[:200]
    async with db.unit_of_work(source=SOURCE, clock=clock, correlation_id=envelope.correlation_id) as uow:
        uow.session.add(Delivery(notification_id=event.notification_id, attempt=event.attempt, person_id=event.person_id,
                                 chat_id=event.chat_id, message_id=message_id, failed=failed, at=clock.now()))
        if failed is None:
            assert message_id is not None
            uow.emit(events.DeliverySent(notification_id=event.notification_id, attempt=event.attempt,
                                         person_id=event.person_id, message_id=message_id))
        else:
            uow.emit(events.DeliveryFailed(notification_id=event.notification_id, attempt=event.attempt,
                                           person_id=event.person_id, reason=failed))
    log.info("delivery_done", notification_id=str(event.notification_id), failed=failed)


def build_replies_router(*, db: Database, clock: Clock) -> Router:
    router = Router(name="notification-replies")

    @router.callback_query(NotificationReply.filter(F.r.regexp(r"^[a-z_]{1,16}$")))
    async def replied(callback: CallbackQuery, callback_data: NotificationReply, person: dict[str, Any] | None) -> None:
        async with db.read() as session:
            deliveries = (await session.exec(select(Delivery).where(
                Delivery.notification_id == _uuid(callback_data.n), Delivery.failed.is_(None)))).all()  # type: ignore[union-attr]
        mine = [d for d in deliveries if d.chat_id == callback.from_user.id]
        if not mine:  # someone else's notification, or made-up data: no effect
            log.warning("notification_reply_refused", reason="not the recipient")
            await callback.answer("This button is not for you.")
            return
        delivery = mine[0]
        async with db.unit_of_work(source=SOURCE, clock=clock) as uow:
            rows = (await uow.session.exec(select(Delivery).where(
                Delivery.notification_id == delivery.notification_id, Delivery.replied.is_(None)))).all()  # type: ignore[union-attr]
            if rows:  # the first answer counts; pressing again changes nothing
                for row in rows:
                    row.replied = callback_data.r
                    uow.session.add(row)
                uow.emit(events.NotificationReplied(notification_id=delivery.notification_id, person_id=delivery.person_id,
                                                    reply=callback_data.r, replied_at=clock.now()))
        await callback.answer("Thank you: recorded.")
        if callback.message is not None:
            await callback.message.edit_reply_markup(reply_markup=None)  # type: ignore[union-attr]

    return router


def _uuid(hex_: str) -> Any:
    import uuid

    try:
        return uuid.UUID(hex=hex_)
    except ValueError:
        return uuid.UUID(int=0)
