"""A service's background loop: one pass now, then every `tick_seconds` or as soon as
woken; a pass that fails (the store, NATS or the roster away) is logged and the next
tick tries again; `stop()` lets the pass in hand finish."""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger("periodic")


class Periodic:
    name = "periodic"

    def __init__(self, *, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_pass(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_pass()
            except Exception:  # the store, NATS or the roster away: the next tick tries again
                log.exception(f"{self.name}_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
