from __future__ import annotations

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
