"""Every Bot API call rides out Telegram's flood control and transient failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, cast

import structlog
from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import AnswerCallbackQuery, GetUpdates, SendDocument, SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType

from services.bot import gate
from services.bot.gate import SendGate

log = structlog.get_logger("bot")
# Telegram's answer to a callback query answered already (by this bot before a restart, or by the other
# poller of a rollout) or pressed too long ago: the press itself is handled all the same.
QUERY_GONE = "query is too old and response timeout expired or query id is invalid"


class RetryRequests(BaseRequestMiddleware):
    """429: wait `retry_after` and send again (Telegram did not take it).
    5xx and network errors: back off and send again, a few times; a network
    error may hide a send Telegram did take, so such retries are counted.
    An HTML error page from Telegram's edge (a 502 or 504 that aiogram cannot
    decode: `ClientDecodeError`) is a 5xx from a proxy: retried the same way,
    and counted as ambiguous (the server behind it may have taken the call).

    Once `stop()` is called (SIGTERM), nothing waits any more: a call not yet
    made fails at once, a call in progress is not retried, and a wait for a
    flood wait or a back-off ends early. What did not go is redelivered (a
    notification) or replayed from the inbox (an answer) by the next start.

    A callback query that Telegram says is answered already or too old counts as
    answered: a press replayed after a restart or a rollout goes on to its work."""

    def __init__(self, *, attempts: int = 8, max_backoff: float = 8.0, gate: SendGate | None = None) -> None:
        self.attempts = attempts
        self.max_backoff = max_backoff
        self.gate = gate
        self.ambiguous_retries = 0
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        self.stopping.set()

    async def _pause(self, seconds: float) -> bool:
        """Sleep `seconds`; False if the bot started stopping meanwhile."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    def _refused(self, method: TelegramMethod[Any]) -> TelegramNetworkError:
        return TelegramNetworkError(method=method, message="not sent: the bot is stopping")

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        if self.stopping.is_set():
            raise self._refused(method)
        polling = isinstance(method, GetUpdates)  # (not narrowing `method`: the call keeps its type)
        if polling:  # the polling loop has its own policy
            return await make_request(bot, method)
        new_message = isinstance(method, SendMessage | SendDocument) and isinstance(method.chat_id, int)
        backoff = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                if new_message and self.gate is not None:
                    if attempt == 1 and gate.slot_taken.get():
                        await self._until_stopping(self.gate.spaced(method.chat_id), method)  # type: ignore[attr-defined]
                    else:
                        await self._until_stopping(self.gate.acquire(method.chat_id), method)  # type: ignore[attr-defined]
                return await make_request(bot, method)
            except TelegramBadRequest as err:
                if not (isinstance(method, AnswerCallbackQuery) and QUERY_GONE in err.message.lower()):
                    raise
                log.info("callback_query_gone", detail=err.message[:200])
                return cast(Response[TelegramType], True)
            except TelegramRetryAfter as err:
                if attempt == self.attempts or self.stopping.is_set():
                    raise
                log.info("telegram_flood_wait", method=method.__api_method__, retry_after=err.retry_after)
                if self.gate is not None:
                    self.gate.pause(err.retry_after)  # Telegram's flood wait holds for every send
                if not await self._pause(err.retry_after):  # as Telegram asks, unless stopping
                    raise
            except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as err:
                if attempt == self.attempts or self.stopping.is_set():
                    raise
                if isinstance(err, TelegramNetworkError | ClientDecodeError):
                    self.ambiguous_retries += 1
                log.warning("telegram_retry", method=method.__api_method__, error=type(err).__name__, detail=str(err)[:200])
                if not await self._pause(backoff):  # back-off before the retry, unless stopping
                    raise
                backoff = min(backoff * 2, self.max_backoff)
        raise AssertionError("unreachable")

    async def _until_stopping(self, waiting: Awaitable[None], method: TelegramMethod[Any]) -> None:
        """A wait for the send's turn, given up when the bot starts stopping."""
        turn = asyncio.ensure_future(waiting)
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({turn, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            given_up = not turn.done()
            if given_up:
                turn.cancel()
        if given_up:
            raise self._refused(method)
        turn.result()


def install(bot: Bot, **kwargs: Any) -> RetryRequests:
    middleware = RetryRequests(**kwargs)
    bot.session.middleware(middleware)
    return middleware
