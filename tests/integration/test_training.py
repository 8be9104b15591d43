"""A training session: `cmcoord up --demo --speed N` and `cmcoord clock`, as a trainer runs them.

Every service follows the fast clock, a jump made with `cmcoord clock advance` is taken
by the rotation scan (not refused as a misset clock), and within a few real minutes the
demo roster brings a rotation (handover prompts), a regional call (its reminders planned
for those on Telegram) and an after action review owed."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from services.lessons.models import Aar
from services.notify.calls import call_about
from services.notify.models import CallPlanned, Notification
from services.notify.schedule import default_schedules, occurrences
from services.roster.models import ScanClock
from tests.helpers import REPO, eventually
from tests.soak.stack import Stack, log_exceptions

pytestmark = [pytest.mark.field, pytest.mark.timeout(600)]

SPEED = 600  # ten simulated minutes a real second
FAST_TICKS = {
    "CMCOORD_ROSTER_SCAN_INTERVAL_SECONDS": "0.5",
    "CMCOORD_NOTIFY_CALL_TICK_SECONDS": "0.5",
    "CMCOORD_LESSONS_TICK_SECONDS": "0.5",
}


async def clock_cli(stack: Stack, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in stack.env.items() if k != "CMCOORD_CLOCK_FILE"}  # found in the home, as a trainer's shell
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shared.cli", "clock", *args, env=env, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def last_scan(stack: Stack) -> datetime | None:
    async with stack.dbs["roster"].read() as session:
        return (await session.exec(select(ScanClock.last_scan_at))).first()


async def scanned_after(stack: Stack, instant: datetime) -> bool:
    scanned = await last_scan(stack)
    return scanned is not None and scanned >= instant


def minutes_until(stack: Stack, instant: datetime) -> int:
    return max(1, int((instant - stack.clock.now()).total_seconds() // 60))


async def count(stack: Stack, service: str, *where: object, model: type = Notification) -> int:
    async with stack.dbs[service].read() as session:
        return (await session.exec(select(func.count()).select_from(model).where(*where))).one()


async def test_a_training_session_brings_a_rotation_a_call_and_an_aar_in_minutes(tmp_path: Path) -> None:
    stack = Stack.demo(tmp_path / "home", **FAST_TICKS)
    stack.env.pop("CMCOORD_CLOCK_FILE")  # as a trainer starts it: `up --speed` keeps the clock in the home folder
    stack.up_args = ("--speed", str(SPEED))
    await stack.start()
    try:
        started = stack.clock.now()
        # every service follows the fast clock: an hour of the roster's scans passes in seconds
        await eventually(lambda: scanned_after(stack, started + timedelta(hours=1)), timeout=60,
                         what="the rotation scan an hour later, simulated")

        aars_before = await count(stack, "lessons", model=Aar)
        # skip to the day before the first regional call: its reminders are planned
        ahead = {"after": started + timedelta(days=2), "before": started + timedelta(days=20)}
        first = min((o for schedule in default_schedules() for o in occurrences(schedule, [], **ahead)),
                    key=lambda o: o.start)
        code, out = await clock_cli(stack, "advance", f"{minutes_until(stack, first.start - timedelta(hours=20))}m")
        assert code == 0 and "simulated" in out, out
        jumped = stack.clock.now()
        await eventually(lambda: scanned_after(stack, jumped), timeout=60, what="a scan after the jump")
        await eventually(lambda: count(stack, "notify", col(CallPlanned.about) == call_about(first),
                                       col(CallPlanned.kind) == "call.reminder", model=CallPlanned),
                         timeout=60, what=f"the reminders of the {first.region} call planned")

        # then past the end of the deployments the demo roster ends within two weeks: AARs are owed
        code, out = await clock_cli(stack, "advance", f"{minutes_until(stack, started + timedelta(days=16))}m")
        assert code == 0, out
        later = stack.clock.now()
        await eventually(lambda: scanned_after(stack, later), timeout=60, what="a scan after the second jump")

        async def rotation_and_aars() -> bool:
            prompts = await count(stack, "notify", col(Notification.kind) == "handover.prompt")
            return bool(prompts) and await count(stack, "lessons", model=Aar) > aars_before

        await eventually(rotation_and_aars, timeout=120, what="handover prompts and new AARs owed")
        code, out = await clock_cli(stack, "speed", "1")
        assert code == 0 and "1x real time" in out, out
    finally:
        await stack.stop()

    roster_log = (tmp_path / "home" / "logs" / "roster.log").read_text()
    assert "rotation_scan_clock_jump_refused" not in roster_log  # a trainer's jump is no misset clock
    assert log_exceptions(tmp_path / "home") == []

