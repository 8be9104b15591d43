from __future__ import annotations

import time
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject, User
from aiogram.utils.i18n import gettext as _

from services.bot.roster_client import RosterClient


class IdentityMiddleware(BaseMiddleware):
    """Looks up who is writing: data["person"] is their roster card (a PersonCard), or None.
    Binds the log context to the update (never the message text)."""

    def __init__(self, roster: RosterClient) -> None:
        self.roster = roster

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        structlog.contextvars.bind_contextvars(telegram_user_id=user.id if user else None)
        data["person"] = await self.roster.person(user.id) if user else None
        return await handler(event, data)


class Throttle:
    """A token bucket per Telegram user (private chat): `burst` messages at once,
    then `rate` per second. The poller drops a flooding user's extra messages
    (telling them once per burst); nobody else waits, since nothing here sleeps."""

    def __init__(self, *, rate: float = 1.0, burst: int = 5, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[int, tuple[float, float, bool]] = {}  # user -> (tokens, at, warned)

    def allow(self, user_id: int) -> tuple[bool, bool]:
        """(allowed, tell the user to slow down)"""
        now = self.clock()
        tokens, at, warned = self._buckets.get(user_id, (float(self.burst), now, False))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[user_id] = (tokens - 1, now, False)
            return True, False
        self._buckets[user_id] = (tokens, now, True)
        return False, not warned


TELEGRAM_MAX_TEXT = 4096
KEPT_CONTROLS = {"\n", "\t"}


def readable(text: str) -> str:
    """Text without control characters (but newlines and tabs) and without
    invisible format characters (zero-width spaces and joiners, direction marks, BOM)."""
    return "".join(ch for ch in text if ch in KEPT_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cf"))


class InputGuard(BaseMiddleware):
    """Odd input gets a clear answer before any handler sees it: text over
    Telegram's 4,096 characters, or text of invisible characters only. Control
    and zero-width characters are removed from the rest, so "Ma\u200bli" finds Mali."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Message) or event.text is None:
            return await handler(event, data)
        text = event.text
        if len(text) > TELEGRAM_MAX_TEXT:
            await event.answer(_("That message is too long for me: {length} characters, and I read at most 4,096. "
                                 "Please send it in shorter parts.").format(length=f"{len(text):,}"))
            return None
        clean = readable(text)
        if not clean.strip():
            await event.answer(_("I could not read that message: it holds only invisible or control characters. "
                                 "/help lists what I can do."))
            return None
        if clean != text:
            event = event.model_copy(update={"text": clean, "entities": None})
        return await handler(event, data)
