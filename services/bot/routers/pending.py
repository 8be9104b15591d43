"""/pending: what still waits for my answer, with its buttons again."""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.callbacks import NotificationReply
from services.bot.filters import IsRegistered
from services.bot.notify_client import NotifyClient, NotifyUnavailable
from shared.contracts.roster import PersonCard

SHOWN = 10


def build_pending_router(*, notify: NotifyClient) -> Router:
    router = Router(name="pending")
    router.message.filter(IsRegistered())

    @router.message(Command("pending"))
    async def pending(message: Message, person: PersonCard) -> None:
        try:
            items = await notify.pending(person.person_id)
        except NotifyUnavailable:
            await message.answer(_("I cannot reach the notifications right now. Please try again in a moment."))
            return
        if not items:
            await message.answer(_("Nothing is waiting for your answer."))
            return
        lines = [_("<b>Waiting for your answer</b>")]
        if any(item.caught_up for item in items[:SHOWN]):  # kept for them until they linked Telegram
            lines.append(_("Marked ⟲: sent while you were not yet registered here."))
        keyboard = InlineKeyboardBuilder()
        for number, item in enumerate(items[:SHOWN], start=1):
            first_line = item.text.splitlines()[0]
            mark = " ⟲" if item.caught_up else ""
            lines.append(f"{number}.{mark} {escape(first_line[:160])}")
            for button in item.buttons:
                keyboard.button(text=f"{number}. {button.label}",
                                callback_data=NotificationReply(n=item.notification_id.hex, r=button.reply))
        keyboard.adjust(2)
        await message.answer("\n".join(lines), reply_markup=keyboard.as_markup())

    return router
