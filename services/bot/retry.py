"""Every Bot API call rides out Telegram's flood control and transient failures."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetUpdates, SendDocument, SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType

from services.bot import gate
from services.bot.gate import SendGate

log = structlog.get_logger("bot")


class RetryRequests(BaseRequestMiddleware):
    """429: wait `retry_after` and send again (Telegram did not take it).
    5xx and network errors: back off and send again, a few times; a network
    error may hide a send Telegram did take, so such retries are counted."""

    def __init__(self, *, attempts: int = 8, max_backoff: float = 8.0, gate: SendGate | None = None) -> None:
        self.attempts = attempts
        self.max_backoff = max_backoff
        self.gate = gate
        self.ambiguous_retries = 0

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):  # the polling loop has its own policy
            return await make_request(bot, method)
        new_message = isinstance(method, SendMessage | SendDocument) and isinstance(method.chat_id, int)
        backoff = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                if new_message and self.gate is not None:
                    if attempt == 1 and gate.slot_taken.get():
                        await self.gate.spaced(method.chat_id)  # type: ignore[attr-defined]
                    else:
                        await self.gate.acquire(method.chat_id)  # type: ignore[attr-defined]
                return await make_request(bot, method)
            except TelegramRetryAfter as err:
                if attempt == self.attempts:
                    raise
                log.info("telegram_flood_wait", method=method.__api_method__, retry_after=err.retry_after)
                if self.gate is not None:
                    self.gate.pause(err.retry_after)  # Telegram's flood wait holds for every send
                await asyncio.sleep(err.retry_after)  # as Telegram asks
            except (TelegramServerError, TelegramNetworkError) as err:
                if attempt == self.attempts:
                    raise
                if isinstance(err, TelegramNetworkError):
                    self.ambiguous_retries += 1
                log.warning("telegram_retry", method=method.__api_method__, error=type(err).__name__, detail=str(err)[:200])
                await asyncio.sleep(backoff)  # back-off before the retry
                backoff = min(backoff * 2, self.max_backoff)
        raise AssertionError("unreachable")


def install(bot: Bot, **kwargs: Any) -> RetryRequests:
    middleware = RetryRequests(**kwargs)
    bot.session.middleware(middleware)
    return middleware
