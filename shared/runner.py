"""Run a service host until SIGTERM or SIGINT, then stop it gracefully.

A host may also say it can no longer work (`failure()` returns a reason, e.g.
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

from shared.heap import freeze_long_lived

log = structlog.get_logger("runner")

STOP_DEADLINE_S = 9.0  # within the 10 s a supervisor grants after SIGTERM


class App(Protocol):  # a `shared.service.ServiceHost`
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def failure(self) -> str: ...


async def run_until_signalled(app: App, *, stop_deadline: float = STOP_DEADLINE_S) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    freeze_long_lived(full=True)  # what the service built to start (its modules, models, caches) is here to stay
    signalled = asyncio.ensure_future(stop.wait())
    failing = asyncio.ensure_future(app.failure())
    await asyncio.wait({signalled, failing}, return_when=asyncio.FIRST_COMPLETED)
    failed = failing.done() and not signalled.done()
    for waiting in (signalled, failing):
        waiting.cancel()
    if failed:
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
