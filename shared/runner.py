"""Run a service app until SIGTERM or SIGINT, then stop it gracefully."""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

import structlog

log = structlog.get_logger("runner")


class App(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def run_until_signalled(app: App) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    await stop.wait()
    log.info("stopping")
    await app.stop()
