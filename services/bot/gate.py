"""Telegram's message limits kept on our side: at most `per_second` new messages
in any second for the bot, evenly spaced, one per `chat_interval` per chat. Waiting sends are
served urgent first: answers to people in the bot and urgent notifications go
before a bulk fan-out. A 429 from Telegram pauses every send for its
`retry_after` (its flood wait is per bot)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# Sends are urgent unless the caller says otherwise (a bulk notification).
urgency: ContextVar[bool] = ContextVar("send_urgency", default=True)
# The caller took the send's slot itself (`SendGate.acquire`) just before the call: its first
# attempt goes at once, a retry waits for a new slot.
slot_taken: ContextVar[bool] = ContextVar("send_slot_taken", default=False)


@contextmanager
def _setting(var: ContextVar[bool], value: bool) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def bulk() -> AbstractContextManager[None]:
    return _setting(urgency, False)


def with_slot_taken() -> AbstractContextManager[None]:
    return _setting(slot_taken, True)


@dataclass(eq=False)
class _Waiter:
    chat_id: int
    turn: asyncio.Future[None]


class SendGate:
    """Sends wait here for their turn. One dispatcher hands out the turns, one at a time:
    to the first urgent send whose chat may have another message now, else to the first
    bulk one; a thousand waiting sends cost no more than one."""

    def __init__(self, *, per_second: float = 28, chat_interval: float = 1.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.chat_interval = chat_interval
        self.clock = clock
        self._sent: deque[float] = deque()
        self._last: dict[int, float] = {}
        self._paused_until = 0.0
        self._next_at = 0.0  # sends are spaced evenly: a burst would reach Telegram as one
        self._spaced_until = 0.0
        self._called: dict[int, float] = {}
        # waiting sends in arrival order, urgent ones apart: a turn goes to the first of either that may go
        # now, found in a step or two (a thousand bulk sends to a thousand chats: the first one)
        self._urgent: list[_Waiter] = []
        self._bulk: list[_Waiter] = []
        self._changed = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return len(self._urgent) + len(self._bulk)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)

    def _bot_wait(self, now: float) -> float:
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        wait = self._paused_until - now
        if self.per_second > 0:
            wait = max(wait, self._next_at - now)
            if len(self._sent) >= self.per_second:
                wait = max(wait, 1.0 - (now - self._sent[0]))
        return max(0.0, wait)

    def _chat_wait(self, chat_id: int, now: float) -> float:
        last = self._last.get(chat_id)
        if last is None or self.chat_interval <= 0:
            return 0.0
        return max(0.0, self.chat_interval - (now - last))

    def _wait(self, chat_id: int, now: float) -> float:
        return max(self._bot_wait(now), self._chat_wait(chat_id, now))

    def _record(self, chat_id: int, now: float) -> None:
        self._sent.append(now)
        self._last[chat_id] = now
        if self.per_second > 0:
            # the schedule keeps its beat when a turn is handed out a little late (a busy loop),
            # instead of losing that time on every send; a second never holds more than per_second
            interval = 1.0 / self.per_second
            self._next_at = (self._next_at if self._next_at >= now - interval else now) + interval
        if len(self._last) > 50_000:  # forget chats quiet for a while
            self._last = {c: t for c, t in self._last.items() if now - t < self.chat_interval}

    async def acquire(self, chat_id: int) -> None:
        """Wait for this send's turn (urgent unless inside `bulk()`)."""
        waiter = _Waiter(chat_id, asyncio.get_running_loop().create_future())
        queue = self._urgent if urgency.get() else self._bulk
        queue.append(waiter)
        self._changed.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="send-gate")
        try:
            await waiter.turn
        finally:
            if not waiter.turn.done() or waiter.turn.cancelled():  # given up while waiting
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)

    async def spaced(self, chat_id: int) -> None:
        """Just before the call to Telegram of a send that had its turn: what it did between
        the turn and now (a database write) may have brought it closer to its neighbours. No
        two calls start closer than the pace (1/per_second), nor two to one chat closer than
        `chat_interval`."""
        if self.per_second <= 0 and self.chat_interval <= 0:
            return
        now = self.clock()
        start = max(now, self._spaced_until if self.per_second > 0 else now,
                    self._called.get(chat_id, now - self.chat_interval) + self.chat_interval)
        self._spaced_until = start + (1.0 / self.per_second if self.per_second > 0 else 0.0)
        self._called[chat_id] = start
        if len(self._called) > 50_000:  # forget chats quiet for a while
            self._called = {c: t for c, t in self._called.items() if now - t < self.chat_interval}
        if start > now:
            await asyncio.sleep(start - now)

    async def _nap(self, seconds: float) -> None:
        """Sleep until `seconds` pass or a new send arrives (it may be ready sooner)."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=max(seconds, 0.001))

    def _first_ready(self, queue: list[_Waiter], now: float) -> _Waiter | None:
        """The first send of `queue` that may go now (its chat's interval passed)."""
        return next((w for w in queue if not w.turn.done() and self._chat_wait(w.chat_id, now) <= 0), None)

    async def _dispatch(self) -> None:
        while self._urgent or self._bulk:
            now = self.clock()
            wait = self._bot_wait(now)
            if wait > 0:
                await self._nap(wait)
                continue
            queue, chosen = self._urgent, self._first_ready(self._urgent, now)
            if chosen is None:
                queue, chosen = self._bulk, self._first_ready(self._bulk, now)
            if chosen is None:
                await self._nap(min(self._chat_wait(w.chat_id, now) for w in (*self._urgent, *self._bulk)))
                continue
            queue.remove(chosen)
            self._record(chosen.chat_id, now)
            chosen.turn.set_result(None)
