"""`cmcoord up --demo` left alone, as a new user leaves it: nobody has linked Telegram, the
desk included. An hour passes on the stack's shared clock; nothing feeds on itself."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from services.notify.models import DeskNotice, Notification
from tests.helpers import eventually
from tests.soak.stack import Stack, idle_cpu_percent, log_exceptions

pytestmark = pytest.mark.field  # the demo left alone for minutes: `make test-field` (CI runs it), apart from `make test`


async def test_the_demo_left_alone_stays_quiet(tmp_path: Path) -> None:
    stack = Stack.demo(tmp_path / "home", CMCOORD_ROSTER_SCAN_INTERVAL_SECONDS="1")
    await stack.start()
    try:
        for _ in range(14):  # seventy minutes, five at a time: the desk's gathering window passes
            now = stack.shift(timedelta(minutes=5))
            await eventually(lambda n=now: stack.caught_up(n), timeout=60, what="caught up with the clock")
        cpu = await idle_cpu_percent(stack.pids(), 5)
        async with stack.dbs["notify"].read() as session:
            states = dict((await session.exec(select(Notification.state, func.count()).group_by(
                Notification.state))).all())
            unreached = (await session.exec(select(func.count(func.distinct(Notification.person_id))).where(
                Notification.state.in_(["unlinked", "failed"]), Notification.depth == 0))).one()
            notices = (await session.exec(select(func.count()).select_from(DeskNotice))).one()
            about_others = (await session.exec(select(Notification.kind, Notification.depth).where(
                Notification.depth > 0))).all()
        # everything to people without Telegram is kept for them: never tried, never failed
        assert states.get("failed", 0) == 0 and states.get("unlinked", 0) > 0, states
        assert notices == unreached  # the desk hears of each person once, not of each message
        # one summary to each desk member and adviser, and nothing about the summaries
        assert {kind for kind, _ in about_others} == {"delivery.unreached"} and {d for _, d in about_others} == {1}
        assert len(about_others) <= 12
        assert cpu["notify"] < 5, cpu
        assert sum(p.stat().st_size for p in stack.home.glob("notify.db*")) < 5_000_000
        assert log_exceptions(stack.home) == []
    finally:
        await stack.stop()
