"""Run a service app until SIGTERM or SIGINT, then stop it gracefully.

An app may also say it can no longer work (`async def failure() -> str`, e.g.
the bot whose store stayed unwritable): it is then stopped and the process
exits with code 1, for its supervisor (`cmcoord up`, the orchestrator) to
restart it. A stop that overruns `STOP_DEADLINE_S` is cut short, also with
code 1: an orchestrator kills a process that ignores SIGTERM for long.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

import structlog

log = structlog.get_logger("runner")

STOP_DEADLINE_S = 9.0  # within the 10 s a supervisor grants after SIGTERM


class App(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def run_until_signalled(app: App, *, stop_deadline: float = STOP_DEADLINE_S) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    signalled = asyncio.ensure_future(stop.wait())
    waits: set[asyncio.Future[object]] = {signalled}
    failure_check = getattr(app, "failure", None)
    failing = asyncio.ensure_future(failure_check()) if failure_check is not None else None
    if failing is not None:
        waits.add(failing)
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    failed = failing is not None and failing.done() and not signalled.done()
    for waiting in waits:
        waiting.cancel()
    if failed:
        assert failing is not None
        log.error("service_failed_exiting", reason=failing.result())
    else:
        log.info("stopping")
    try:
        await asyncio.wait_for(app.stop(), timeout=stop_deadline)
    except TimeoutError:
        log.error("stop_overran_exiting", deadline_seconds=stop_deadline)
        raise SystemExit(1) from None
    if failed:
        raise SystemExit(1)
