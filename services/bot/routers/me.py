"""/me and /help, and the command menu in each language."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import BotCommand, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from services.bot.filters import IsRegistered
from services.bot.render import contact_card
from services.bot.routers.start import NOT_REGISTERED

COMMANDS = {
    "contacts": __("Who to call: /contacts Mali, ROWCA, WFP or a name"),
    "me": __("My post, end date and hats"),
    "lang": __("Language: English, français, العربية"),
    "help": __("What this bot does"),
}


def commands() -> list[BotCommand]:
    """The command menu in the current language."""
    return [BotCommand(command=name, description=str(text)) for name, text in COMMANDS.items()]


def help_text() -> str:
    return _(
        "<b>CMCoord Hub</b>\n"
        "/contacts <i>country, region, organisation or name</i>: who to call\n"
        "/me: your post, end date, other hats and flags\n"
        "/lang: English, français or العربية\n"
        "/help: this message"
    )


def build_me_router() -> Router:
    router = Router(name="me")

    @router.message(Command("help"))
    async def help_(message: Message, person: dict[str, Any] | None) -> None:
        await message.answer(help_text() if person is not None else str(NOT_REGISTERED))

    @router.message(Command("me"), IsRegistered())
    async def me(message: Message, person: dict[str, Any]) -> None:
        await message.answer(_("<b>You</b>") + "\n" + contact_card(person))

    return router
