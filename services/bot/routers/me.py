"""/me and /help."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import BotCommand, Message

from services.bot.filters import IsRegistered
from services.bot.render import contact_card
from services.bot.routers.start import NOT_REGISTERED

COMMANDS = [
    BotCommand(command="contacts", description="Who to call: /contacts Mali, ROWCA, WFP or a name"),
    BotCommand(command="me", description="My post, end date and hats"),
    BotCommand(command="help", description="What this bot does"),
]
HELP = (
    "<b>CMCoord Hub</b>\n"
    "/contacts <i>country, region, organisation or name</i>: who to call\n"
    "/me: your post, end date, other hats and flags\n"
    "/help: this message"
)


def build_me_router() -> Router:
    router = Router(name="me")

    @router.message(Command("help"))
    async def help_(message: Message, person: dict[str, Any] | None) -> None:
        await message.answer(HELP if person is not None else NOT_REGISTERED)

    @router.message(Command("me"), IsRegistered())
    async def me(message: Message, person: dict[str, Any]) -> None:
        await message.answer("<b>You</b>\n" + contact_card(person))

    return router
