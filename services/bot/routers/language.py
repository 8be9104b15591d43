"""/lang: English, French or Arabic, whatever the Telegram app's language. A member's choice goes to the
roster too (bot.profile.updated), so that what the services tell them is written in it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message, TelegramObject
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

log = structlog.get_logger("bot")


def confirmation(languages: Languages, code: str) -> str:
    with languages.using(code):
        return _("From now on I write to you in English. /help lists what I can do.")


class ReaderLanguage(BaseMiddleware):
    """The roster learns the language each member reads the bot in, and hears again when it changes:
    at a member's first update after a start (a choice made before the roster kept it, an app whose
    language changed), on /lang, and when an account is linked. Nothing for someone not linked, nor
    when neither a choice nor the app says (the roster's languages decide then)."""

    def __init__(self, *, db: Database, clock: Clock, languages: Languages) -> None:
        self.db, self.clock, self.languages = db, clock, languages
        self._told: dict[uuid.UUID, str] = {}

    async def tell(self, person: PersonCard | None, locale: str | None) -> None:
        if person is None or locale is None or self._told.get(person.person_id) == locale:
            return
        async with self.db.unit_of_work() as uow:
            uow.emit(events.ProfileUpdated(person_id=person.person_id, locale=locale,  # type: ignore[arg-type]
                                           updated_at=self.clock.now()))
        self._told[person.person_id] = locale

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        person: PersonCard | None = data.get("person")
        if person is not None and person.person_id not in self._told:
            try:  # a language the user never chose and their app does not give is not told as English
                known = await self.languages.known_for(data.get("event_from_user"))
                if known is not None:
                    await self.tell(person, known)
            except Exception as err:  # the bot's store away: the update is answered all the same, told next time
                log.warning("reader_language_not_told", error=type(err).__name__)
        return await handler(event, data)


def build_language_router(*, reader: ReaderLanguage) -> Router:
    router = Router(name="language")

    @router.message(Command("lang"))
    async def lang(message: Message, command: CommandObject, languages: Languages, person: PersonCard | None) -> None:
        assert message.from_user is not None
        wanted = (command.args or "").strip().lower()
        if wanted in LANGUAGES:
            await languages.choose(message.from_user.id, wanted)
            await reader.tell(person, wanted)
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
        await reader.tell(person, callback_data.code)
        await show(callback, confirmation(languages, callback_data.code))  # picked again: not modified, no error

    return router
