"""Every service's periodic work, on one scheduler (APScheduler's `AsyncIOScheduler`).

A job runs once at start, then every `tick_seconds` (coalesced: a late tick runs once;
one pass at a time; a tick later than its grace is skipped, the next one comes), or at
once when woken (`wake()`: a consumer that made work due). A wake during a pass runs
another pass right after it. A pass that fails (the store, NATS or the roster away) is
logged and the next tick tries again. `stop()` starts no new pass and lets the pass in
hand finish (or cancels it, for a job that says its pass may be cut short).

The scheduler keeps real time whatever the service's clock says: a job reads the
service's clock for what is due. Replicas each run their jobs; each job makes that
safe itself (a claim on the rows it acts on, or deterministic event ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = structlog.get_logger("periodic")


class Periodic:
    """A service's periodic work: `run_pass()` is the job, scheduled by `Scheduler.add`;
    `wake()` asks for a pass now (nothing before it is scheduled: its first pass comes at start)."""

    name = "periodic"

    def __init__(self, *, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self.job: Job | None = None
        self._stopping = asyncio.Event()  # set when the scheduler stops: a long pass may end early

    async def run_pass(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        if self.job is not None:
            self.job.wake()


class Job:
    """One scheduled job: its passes, one at a time, each failure logged as `<name>_failed`."""

    def __init__(self, scheduler: Scheduler, name: str, run: Callable[[], Awaitable[object]], *,
                 cancel_at_stop: bool) -> None:
        self.scheduler, self.name, self.run, self.cancel_at_stop = scheduler, name, run, cancel_at_stop
        self.passes = 0  # passes run (failed ones too)
        self.failures = 0
        self._in_hand: asyncio.Task[None] | None = None
        self._again = False

    def wake(self) -> None:
        """A pass now; during a pass, another right after it."""
        if self._in_hand is not None:
            self._again = True
        elif self.scheduler.running:
            self.scheduler.aps.modify_job(self.name, next_run_time=datetime.now(UTC))

    async def _tick(self) -> None:  # what APScheduler runs
        if not self.scheduler.running:  # started as the scheduler stopped: no new pass
            return
        self._in_hand = asyncio.current_task()
        try:
            while True:
                self._again = False
                try:
                    await self.run()
                except Exception:  # the store, NATS or the roster away: the next tick tries again
                    self.failures += 1
                    log.exception(f"{self.name}_failed")
                self.passes += 1
                if not (self._again and self.scheduler.running):
                    return
        except asyncio.CancelledError:
            if self.scheduler.running or not self.cancel_at_stop:
                raise
            log.info(f"{self.name}_cut_short_at_stop")  # what it had not committed is done at the next start
        finally:
            self._in_hand = None

    async def stopped(self) -> None:
        """Once the pass in hand (if any) has finished, or was cancelled for a job that allows it."""
        task = self._in_hand
        if task is None or task is asyncio.current_task():
            return
        if self.cancel_at_stop:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})


class Scheduler:
    """The service's jobs on one AsyncIOScheduler: interval jobs with coalesce, one
    instance at a time and a misfire grace time of one interval."""

    def __init__(self) -> None:
        # What APScheduler says is routine here (a tick skipped while a pass is in hand, a late tick
        # coalesced); a pass's own failure is logged by `Job`.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        self.aps = AsyncIOScheduler(timezone="UTC")
        self.jobs: dict[str, Job] = {}
        self.work: list[Periodic] = []
        self.running = False

    def every(self, seconds: float, run: Callable[[], Awaitable[object]], *, name: str,
              cancel_at_stop: bool = False) -> Job:
        """`run` once at start, then every `seconds` (or when woken)."""
        job = Job(self, name, run, cancel_at_stop=cancel_at_stop)
        self.aps.add_job(job._tick, "interval", seconds=seconds, id=name, replace_existing=True, coalesce=True,
                         max_instances=1, misfire_grace_time=max(int(seconds), 1), next_run_time=datetime.now(UTC))
        self.jobs[name] = job
        return job

    def add(self, work: Periodic) -> Job:
        work.job = self.every(work.tick_seconds, work.run_pass, name=work.name)
        self.work.append(work)
        return work.job

    def start(self) -> None:
        self.running = True
        self.aps.start()

    async def stop(self) -> None:
        """No new pass; the passes in hand finish (a job that allows it is cut short)."""
        if not self.running:
            return
        self.running = False
        self.aps.pause()
        for work in self.work:
            work._stopping.set()
        await asyncio.gather(*(job.stopped() for job in self.jobs.values()))
        self.aps.shutdown(wait=False)
