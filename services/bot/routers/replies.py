"""The buttons of a delivered notification: a press is the recipient's answer (notify's
`bot.notification.replied`), taken once, and only for a reply the message's buttons offered
(kept with the delivery). Some answers also open a conversation: the handover prompt's "write
it now", the departure question's "change", an AAR reminder's "write it now"."""

from __future__ import annotations

import uuid

import structlog
from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _
from sqlmodel import col, select

from services.bot.callbacks import NotificationReply
from services.bot.edits import pressed, set_buttons
from services.bot.lessons_client import LessonsClient
from services.bot.models import Delivery
from services.bot.routers import aar, departure, handover
from shared import events
from shared.clock import Clock
from shared.contracts.roster import PersonCard
from shared.store import Database

log = structlog.get_logger("bot")
WRITE_HANDOVER = "handover"  # a button answering this also opens the /handover conversation
CHANGE_DATE = "change_date"  # ... this one asks for the new departure date
WRITE_AAR = "aar"  # ... this one opens /aar (an AAR reminder's "write it now")


def offered(delivery: Delivery, reply: str) -> bool:
    """Whether the delivered message's buttons offered `reply` (a delivery sent before
    they were kept takes any, as it always did)."""
    return delivery.replies is None or reply in delivery.replies.split()


def build_replies_router(*, db: Database, clock: Clock, lessons: LessonsClient | None = None) -> Router:
    router = Router(name="notification-replies")

    @router.callback_query(NotificationReply.filter(F.r.regexp(r"^[a-z_]{1,16}$")))
    async def replied(callback: CallbackQuery, callback_data: NotificationReply, person: PersonCard | None,
                      state: FSMContext) -> None:
        try:
            notification_id = uuid.UUID(hex=callback_data.n)
        except ValueError:
            notification_id = None
        async with db.unit_of_work() as uow:
            rows = [] if notification_id is None else list((await uow.session.exec(select(Delivery).where(
                Delivery.notification_id == notification_id, col(Delivery.failed).is_(None)))).all())
            mine = [d for d in rows if d.chat_id == callback.from_user.id]
            allowed = any(offered(d, callback_data.r) for d in mine)  # on any copy it was sent on
            # the first answer counts, on whichever copy it was given; pressing again, or on a copy
            # delivered after it (a re-notification that crossed the answer), changes nothing
            if allowed and not any(d.replied is not None for d in rows):
                for row in rows:
                    row.replied = callback_data.r
                    uow.session.add(row)
                uow.emit(events.NotificationReplied(notification_id=mine[0].notification_id,
                                                    person_id=mine[0].person_id, reply=callback_data.r,
                                                    replied_at=clock.now()))
        if not mine:  # someone else's notification, or made-up data: no effect
            log.warning("notification_reply_refused", reason="not the recipient")
            await callback.answer(_("This button is not for you."))
            return
        if not allowed:  # made-up data: an answer the message never offered
            log.warning("notification_reply_refused", reason="not a button of the message")
            await callback.answer(_("That answer is not one of this message's buttons: nothing was recorded."),
                                  show_alert=True)
            return
        await callback.answer(_("Thank you: recorded."))
        message = pressed(callback)
        if not await set_buttons(callback, None):  # a message too old to edit: say so in a new one
            await message.answer(_("Thank you: your answer is recorded."))
        if callback_data.r == WRITE_HANDOVER and person is not None:  # the prompt's "write it now"
            await handover.begin(message, state, person)
        elif callback_data.r == CHANGE_DATE and person is not None:  # the departure question's "change"
            await departure.ask(message, state, person)
        elif callback_data.r == WRITE_AAR and person is not None and lessons is not None:  # "write it now"
            await aar.begin(message, state, person, lessons=lessons)

    return router
