"""Anything no other router took: a helpful answer, never silence."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from services.bot.routers.texts import NOT_REGISTERED
from shared.contracts.roster import PersonCard


def build_fallback_router() -> Router:
    router = Router(name="fallback")

    @router.message()
    async def anything(message: Message, person: PersonCard | None) -> None:
        if person is None:
            await message.answer(str(NOT_REGISTERED))
        else:
            await message.answer(_("I did not understand that. /help lists what I can do."))

    @router.callback_query()
    async def stale_button(callback: CallbackQuery, person: PersonCard | None) -> None:
        await callback.answer(_("This button is no longer valid."), show_alert=False)

    return router
