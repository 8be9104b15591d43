"""/lang: English, French or Arabic, whatever the Telegram app's language. A member's choice goes to the
roster too (bot.profile.updated), so that what the services tell them is written in it."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.callbacks import LanguagePick
from services.bot.edits import show
from services.bot.i18n import Languages
from shared import events
from shared.clock import Clock
from shared.contracts.roster import PersonCard
from shared.i18n import LANGUAGES
from shared.store import Database


def confirmation(languages: Languages, code: str) -> str:
    with languages.using(code):
        return _("From now on I write to you in English. /help lists what I can do.")


async def tell_roster(db: Database, clock: Clock, person: PersonCard | None, locale: str) -> None:
    """The roster learns the language a member reads (nobody's, for someone not linked)."""
    if person is None:
        return
    async with db.unit_of_work() as uow:
        uow.emit(events.ProfileUpdated(person_id=person.person_id, locale=locale,  # type: ignore[arg-type]
                                       updated_at=clock.now()))


def build_language_router(*, db: Database, clock: Clock) -> Router:
    router = Router(name="language")

    @router.message(Command("lang"))
    async def lang(message: Message, command: CommandObject, languages: Languages, person: PersonCard | None) -> None:
        assert message.from_user is not None
        wanted = (command.args or "").strip().lower()
        if wanted in LANGUAGES:
            await languages.choose(message.from_user.id, wanted)
            await tell_roster(db, clock, person, wanted)
            await message.answer(confirmation(languages, wanted))
            return
        keyboard = InlineKeyboardBuilder()
        for code, name in LANGUAGES.items():
            keyboard.button(text=name, callback_data=LanguagePick(code=code))
        await message.answer(_("Choose your language:"), reply_markup=keyboard.as_markup())

    @router.callback_query(LanguagePick.filter(F.code.in_(LANGUAGES)))
    async def picked(callback: CallbackQuery, callback_data: LanguagePick, languages: Languages,
                     person: PersonCard | None) -> None:
        await callback.answer()
        await languages.choose(callback.from_user.id, callback_data.code)
        await tell_roster(db, clock, person, callback_data.code)
        await show(callback, confirmation(languages, callback_data.code))  # picked again: not modified, no error

    return router
