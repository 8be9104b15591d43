"""/lang: English, French or Arabic, whatever the Telegram app's language."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.callbacks import LanguagePick
from services.bot.edits import show
from services.bot.i18n import LANGUAGES, Languages


def confirmation(languages: Languages, code: str) -> str:
    with languages.using(code):
        return _("From now on I write to you in English. /help lists what I can do.")


def build_language_router() -> Router:
    router = Router(name="language")

    @router.message(Command("lang"))
    async def lang(message: Message, command: CommandObject, languages: Languages) -> None:
        assert message.from_user is not None
        wanted = (command.args or "").strip().lower()
        if wanted in LANGUAGES:
            await languages.choose(message.from_user.id, wanted)
            await message.answer(confirmation(languages, wanted))
            return
        keyboard = InlineKeyboardBuilder()
        for code, name in LANGUAGES.items():
            keyboard.button(text=name, callback_data=LanguagePick(code=code))
        await message.answer(_("Choose your language:"), reply_markup=keyboard.as_markup())

    @router.callback_query(LanguagePick.filter(F.code.in_(LANGUAGES)))
    async def picked(callback: CallbackQuery, callback_data: LanguagePick, languages: Languages) -> None:
        await callback.answer()
        await languages.choose(callback.from_user.id, callback_data.code)
        await show(callback, confirmation(languages, callback_data.code))  # picked again: not modified, no error

    return router
