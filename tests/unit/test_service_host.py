"""The service host (start in order, stop in reverse, readiness in one place) and the
scheduler every service's periodic work runs on (a pass now when woken, a failed pass
retried, a stop that lets the pass in hand finish). A real event loop, a real SQLite
store and a real health server; no NATS (a host that has not entered it says so)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from shared.periodic import Periodic, Scheduler
from shared.service import ServiceHost
from shared.clock import SystemClock
from shared.settings import ServiceSettings
from shared.store import SHARED_TABLES, Database

DEADLINE = 5.0  # seconds: each wait below is for a condition, bounded by this


async def within(awaitable: asyncio.Future[object] | asyncio.Event) -> None:
    if isinstance(awaitable, asyncio.Event):
        await asyncio.wait_for(awaitable.wait(), DEADLINE)
    else:
        await asyncio.wait_for(awaitable, DEADLINE)


def make_host(tmp_path: Path, compose, checks=("nats", "store", "consumers", "queries")) -> ServiceHost[list[str]]:
    settings = ServiceSettings(home=tmp_path, health_port=0)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'host.db'}")
    return ServiceHost(service="testing", settings=settings, clock=SystemClock(), db=db, parts=[], compose=compose,
                       checks=checks)


async def readyz(host: ServiceHost[list[str]]) -> tuple[int, dict[str, object]]:
    assert host.health is not None
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{host.health.port}/readyz") as resp:
        return resp.status, await resp.json()


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def test_parts_start_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    async def compose(host: ServiceHost[list[str]]) -> None:
        order = host.parts
        await host.enter_store(SHARED_TABLES, package="shared")
        order.append("store")
        host.on_stop(lambda: _note(order, "stop store's user"))
        await host.enter_health()
        order.append("health")
        for part in ("consumers", "queries", "jobs"):
            order.append(part)
            host.on_stop(lambda part=part: _note(order, f"stop {part}"))

    host = make_host(tmp_path, compose)
    await host.start()
    assert host.parts == ["store", "health", "consumers", "queries", "jobs"]
    port = host.health.port
    assert not await refused(port)
    await host.stop()
    assert host.parts[5:] == ["stop jobs", "stop queries", "stop consumers", "stop store's user"]
    assert await refused(port)  # the health server stopped too (after the parts entered after it)


async def _note(order: list[str], what: str) -> None:
    order.append(what)


async def test_a_failing_start_stops_what_it_entered(tmp_path: Path) -> None:
    async def compose(host: ServiceHost[list[str]]) -> None:
        await host.enter_store(SHARED_TABLES, package="shared")
        await host.enter_health()
        host.on_stop(lambda: _note(host.parts, "stopped consumers"))
        raise RuntimeError("the query service could not start")

    host = make_host(tmp_path, compose)
    with pytest.raises(RuntimeError, match="query service"):
        await host.start()
    assert host.parts == ["stopped consumers"]
    assert host.health is not None and await refused(host.health.port)
    await host.stop()  # a stop after a failed start has nothing left to do
    assert host.parts == ["stopped consumers"]


async def test_readiness_is_what_was_entered_plus_the_services_own_checks(tmp_path: Path) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    updates = {"taking": False}

    async def taking_updates() -> bool:
        return updates["taking"]

    async def compose(host: ServiceHost[list[str]]) -> None:
        await host.enter_store(SHARED_TABLES, package="shared")
        await host.enter_health()
        host.health.waiting = "a connection to NATS"
        host.check("updates", taking_updates)
        entered.set()
        await release.wait()  # the start is under way: NATS not entered yet

    host = make_host(tmp_path, compose, checks=("nats", "store", "updates"))
    starting = asyncio.ensure_future(host.start())
    await within(entered)
    status, body = await readyz(host)
    assert status == 503
    assert body["checks"] == {"nats": False, "store": True, "updates": False}
    assert body["waiting"] == "a connection to NATS" and body["outbox"] == {"pending": 0, "oldest_age_seconds": None}
    updates["taking"] = True
    assert await host.readiness() == {"nats": False, "store": True, "updates": True}  # NATS never entered
    release.set()
    await within(starting)
    await host.stop()


async def test_failure_is_the_first_watched_reason(tmp_path: Path) -> None:
    broken = asyncio.Event()

    async def intake() -> str:
        await broken.wait()
        return "update intake ended"

    async def compose(host: ServiceHost[list[str]]) -> None:
        host.watch(intake)

    host = make_host(tmp_path, compose)
    await host.start()
    failing = asyncio.ensure_future(host.failure())
    broken.set()
    await within(failing)
    assert failing.result() == "update intake ended"
    await host.stop()


# --- the scheduler ---------------------------------------------------------------------------------------
class Counting(Periodic):
    name = "counting"

    def __init__(self, *, tick_seconds: float = 3600, fail_first: int = 0) -> None:
        super().__init__(tick_seconds=tick_seconds)
        self.fail_first = fail_first
        self.calls = 0
        self.ran = asyncio.Condition()

    async def run_pass(self) -> None:
        self.calls += 1
        async with self.ran:
            self.ran.notify_all()
        if self.calls <= self.fail_first:
            raise ConnectionError("the store is away")

    async def reached(self, calls: int) -> None:
        async with self.ran:
            await asyncio.wait_for(self.ran.wait_for(lambda: self.calls >= calls), DEADLINE)


async def test_a_job_runs_at_start_and_at_once_when_woken() -> None:
    scheduler, work = Scheduler(), Counting(tick_seconds=3600)  # the next tick is an hour away
    work.wake()  # before the start: nothing to do (the start runs a pass)
    scheduler.add(work)
    scheduler.start()
    await work.reached(1)
    work.wake()
    await work.reached(2)
    await scheduler.stop()
    assert work.calls == 2 and work.job is not None and work.job.passes == 2


async def test_a_failed_pass_is_logged_and_the_next_tick_tries_again() -> None:
    scheduler, work = Scheduler(), Counting(tick_seconds=0.05, fail_first=1)
    scheduler.add(work)
    with capture_logs() as logs:
        scheduler.start()
        await work.reached(2)
    await scheduler.stop()
    assert work.job is not None and work.job.failures == 1 and work.job.passes >= 2
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["counting_failed"]


async def test_stop_lets_the_pass_in_hand_finish_and_starts_no_other() -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), []

    async def slow_pass() -> None:
        started.set()
        await release.wait()
        finished.append(True)

    scheduler = Scheduler()
    job = scheduler.every(3600, slow_pass, name="slow")
    scheduler.start()
    await within(started)
    job.wake()  # during the pass: another would follow it, but the stop comes first
    stopping = asyncio.ensure_future(scheduler.stop())
    done, _ = await asyncio.wait({stopping}, timeout=0.2)  # the stop waits on the pass (a check, not a sync)
    assert not done
    release.set()
    await within(stopping)
    assert finished == [True] and job.passes == 1
    job.wake()  # after the stop: nothing
    assert job.passes == 1


async def test_a_wake_during_a_pass_runs_another_right_after_it() -> None:
    started, release, second = asyncio.Event(), asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def pass_() -> None:
        calls.append(len(calls))
        started.set()
        if len(calls) == 1:
            await release.wait()
        else:
            second.set()

    scheduler = Scheduler()
    job = scheduler.every(3600, pass_, name="woken")  # the next tick is an hour away
    scheduler.start()
    await within(started)
    job.wake()
    release.set()
    await within(second)
    await scheduler.stop()
    assert calls == [0, 1] and job.passes == 2


async def test_a_job_that_may_be_cut_short_is_cancelled_at_stop() -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def prune() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    scheduler = Scheduler()
    scheduler.every(3600, prune, name="prune", cancel_at_stop=True)
    scheduler.start()
    await within(started)
    with capture_logs() as logs:
        await asyncio.wait_for(scheduler.stop(), DEADLINE)
    assert cancelled == [True]
    assert [e["event"] for e in logs] == ["prune_cut_short_at_stop"]
