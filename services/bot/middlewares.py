from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from services.bot.roster_client import RosterClient


class IdentityMiddleware(BaseMiddleware):
    """Looks up who is writing: data["person"] is their roster card, or None.
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
