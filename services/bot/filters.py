from __future__ import annotations

from typing import Any

from aiogram.filters import BaseFilter
from aiogram.types import TelegramObject


class IsRegistered(BaseFilter):
    """Passes for Telegram users linked to a roster person (set by IdentityMiddleware)."""

    async def __call__(self, event: TelegramObject, person: dict[str, Any] | None = None) -> bool:
        return person is not None
