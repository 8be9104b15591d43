"""/start: registration with an invitation token, or how to get one."""

from __future__ import annotations

import time
from collections import deque
from html import escape

from aiogram import Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from services.bot.filters import is_member
from services.bot.i18n import Languages
from services.bot.roster_client import RosterClient
from services.bot.routers.language import ReaderLanguage
from services.bot.routers.texts import NOT_REGISTERED, liaison_help
from shared.bus import QueryError
from shared.contracts.roster import PersonCard


INVALID = __("That invitation link is not valid. Check that you opened the whole link, or ask for a new one.")
REFUSED = {
    "400": INVALID,
    "404": INVALID,
    "409": __("That invitation was already used, or this Telegram account belongs to someone else. "
              "Ask for a new link."),
    "410": __("That invitation has expired (links last 7 days). Ask the CMCS desk for a new one."),
    "403": __("That invitation no longer works: a newer one was sent to you, or the CMCS desk withdrew it. "
              "Open the latest link you received, or ask the CMCS desk for a new one."),
}
HELD = "202"  # not a refusal: the roster holds the link for the CMCS desk to confirm


class Attempts:
    """Wrong tokens per Telegram user in a sliding window: brute force gets nowhere."""

    def __init__(self, *, limit: int = 5, window_s: float = 600) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[int, deque[float]] = {}

    def blocked(self, user_id: int) -> bool:
        failures = self._failures.get(user_id)
        now = time.monotonic()
        while failures and now - failures[0] > self.window_s:
            failures.popleft()
        return failures is not None and len(failures) >= self.limit

    def failed(self, user_id: int) -> None:
        self._failures.setdefault(user_id, deque()).append(time.monotonic())


def build_start_router(*, roster: RosterClient, attempts: Attempts, reader: ReaderLanguage) -> Router:
    router = Router(name="start")

    @router.message(CommandStart(deep_link=True))
    async def start_with_token(message: Message, command: CommandObject, person: PersonCard | None,
                               languages: Languages) -> None:
        assert message.from_user is not None
        user_id = message.from_user.id
        if attempts.blocked(user_id):
            await message.answer(_("Too many wrong invitation links. Please wait a few minutes and try again."))
            return
        token = (command.args or "").strip()
        try:
            card = await roster.register(token, user_id, message.from_user.username)
        except QueryError as err:
            if err.code == HELD:
                await message.answer(_("Thank you. This Telegram account's username is not the one the CMCS roster "
                                       "has for you, so the CMCS desk will confirm the link first. I will tell you "
                                       "here as soon as it is done."))
                return
            if err.code not in REFUSED:
                raise
            attempts.failed(user_id)
            await message.answer(str(REFUSED[err.code]))
            return
        await reader.tell(card, await languages.known_for(message.from_user))
        if card.liaison:
            await message.answer(_("Welcome, <b>{name}</b>. Your Telegram account is now linked: humanitarian "
                                   "notifications addressed to your organisation will come here.").format(
                name=escape(card.name)) + "\n\n" + liaison_help())
            return
        if not is_member(card):
            await message.answer(_("Welcome, <b>{name}</b>. Your Telegram account is now linked to the CMCoord "
                                   "roster. Your deployment has ended, so you can use /me, /aar, /handover and "
                                   "/pending.").format(name=escape(card.name)))
            return
        await message.answer(_("Welcome, <b>{name}</b>. Your Telegram account is now linked to the CMCoord roster.\n"
                               "Try /contacts Mali, /me or /help.").format(name=escape(card.name)))

    @router.message(CommandStart())
    async def start(message: Message, person: PersonCard | None) -> None:
        if person is None:
            await message.answer(str(NOT_REGISTERED))
        else:
            await message.answer(_("Welcome back, <b>{name}</b>. /help lists what I can do.").format(
                name=escape(person.name)))

    return router
