"""Telegram's message limits kept on our side: at most `per_second` new messages
in any second for the bot, evenly spaced, one per `chat_interval` per chat. Waiting sends are
served urgent first: answers to people in the bot and urgent notifications go
before a bulk fan-out. A 429 from Telegram pauses every send for its
`retry_after` (its flood wait is per bot)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Sends are urgent unless the caller says otherwise (a bulk notification).
urgency: ContextVar[bool] = ContextVar("send_urgency", default=True)


@contextmanager
def bulk() -> Iterator[None]:
    token = urgency.set(False)
    try:
        yield
    finally:
        urgency.reset(token)


class SendGate:
    def __init__(self, *, per_second: float = 29, chat_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.chat_interval = chat_interval
        self.clock = clock
        self._sent: deque[float] = deque()
        self._last: dict[int, float] = {}
        self._paused_until = 0.0
        self._next_at = 0.0  # sends are spaced evenly: a burst would reach Telegram as one
        self._urgent_waiting = 0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    def _wait(self, chat_id: int, now: float) -> float:
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        wait = self._paused_until - now
        if self.per_second > 0:
            wait = max(wait, self._next_at - now)
            if len(self._sent) >= self.per_second:
                wait = max(wait, 1.0 - (now - self._sent[0]))
        last = self._last.get(chat_id)
        if last is not None and self.chat_interval > 0:
            wait = max(wait, self.chat_interval - (now - last))
        return max(0.0, wait)

    async def acquire(self, chat_id: int) -> None:
        urgent = urgency.get()
        self._urgent_waiting += urgent
        try:
            while True:
                async with self._lock:
                    now = self.clock()
                    wait = self._wait(chat_id, now)
                    if wait <= 0 and (urgent or not self._urgent_waiting):
                        self._sent.append(now)
                        self._last[chat_id] = now
                        if self.per_second > 0:
                            self._next_at = max(now, self._next_at) + 1.0 / self.per_second
                        if len(self._last) > 50_000:  # forget chats quiet for a while
                            self._last = {c: t for c, t in self._last.items() if now - t < self.chat_interval}
                        return
                await asyncio.sleep(wait if wait > 0 else 0.005)  # a bulk send yields to urgent ones
        finally:
            self._urgent_waiting -= urgent
