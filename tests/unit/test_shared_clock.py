"""The clock shared through a file: every reader sees a shift at once, time goes on between shifts."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.clock import SharedClock, SystemClock, clock_for, shift_shared_clock


def test_readers_of_one_file_share_its_time_and_see_each_shift(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    first, second = SharedClock(path), SharedClock(path)
    before = datetime.now(UTC)
    assert before <= first.now() <= datetime.now(UTC)  # no file yet: the system clock
    shift_shared_clock(path, timedelta(days=3, hours=2))
    for clock in (first, second):
        now = clock.now()
        assert before + timedelta(days=3, hours=2) <= now <= datetime.now(UTC) + timedelta(days=3, hours=2)
    shift_shared_clock(path, timedelta(days=4))
    assert first.now() - datetime.now(UTC) > timedelta(days=3, hours=23)
    assert [p.name for p in tmp_path.iterdir()] == ["clock"]  # written atomically, no leftovers


def test_without_a_clock_file_services_use_the_system_clock(tmp_path: Path) -> None:
    assert isinstance(clock_for(None), SystemClock)
    assert isinstance(clock_for(tmp_path / "clock"), SharedClock)
