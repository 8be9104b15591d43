"""The clock shared through a file: every reader sees a shift at once, time goes on between shifts."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shared.cli import app
from shared.clock import (
    ClockSetting,
    SharedClock,
    SystemClock,
    clock_for,
    read_shared_clock,
    set_shared_clock,
    shift_shared_clock,
)
from shared.clock_cli import parse_duration
from shared.store import Database


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


def test_a_training_clock_runs_at_its_speed_and_keeps_its_time_when_the_speed_changes(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    shift_shared_clock(path, timedelta(days=2))
    assert set_shared_clock(path, speed=60, real=start) == start + timedelta(days=2)
    setting = read_shared_clock(path)
    assert setting.at(start + timedelta(minutes=1)) == start + timedelta(days=2, hours=1)  # a minute is an hour
    later = start + timedelta(minutes=10)
    assert set_shared_clock(path, advance=timedelta(days=1), real=later) == start + timedelta(days=3, hours=10)
    assert set_shared_clock(path, speed=1, real=later) == start + timedelta(days=3, hours=10)  # back to real pace
    assert read_shared_clock(path).at(later + timedelta(minutes=1)) == start + timedelta(days=3, hours=10, minutes=1)
    assert SharedClock(path).now() - datetime.now(UTC) > timedelta(days=3)


def test_a_clock_file_says_plainly_what_it_holds_and_refuses_nonsense(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    set_shared_clock(path, speed=30, real=datetime(2026, 11, 28, tzinfo=UTC))
    assert path.read_text().split()[1:] == ["speed=30", "since=1795824000.000000"]
    assert ClockSetting.parse("3600") == ClockSetting(offset=timedelta(hours=1))  # the plain offset still reads
    assert ClockSetting.parse("") == ClockSetting()
    with pytest.raises(ValueError, match="speed"):
        ClockSetting.parse("0 speed=-1 since=0")
    with pytest.raises(ValueError, match="speed"):
        set_shared_clock(path, speed=0)


def test_durations_are_read_as_a_trainer_writes_them() -> None:
    assert parse_duration("3d") == timedelta(days=3)
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    for wrong in ("", "3", "3x", "-1d", "d3", "1d 2"):
        with pytest.raises(typer.BadParameter, match="is not a duration"):
            parse_duration(wrong)


def test_without_a_training_session_the_clock_commands_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("CMCOORD_HOME", str(tmp_path))
    monkeypatch.delenv("CMCOORD_CLOCK_FILE", raising=False)
    result = CliRunner().invoke(app, ["clock", "advance", "1d"])
    assert result.exit_code == 2
    assert "the services run on the system clock" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing created
    # the command's rule against making stores ends with it: this process (a test worker) may make one again
    Database(f"sqlite+aiosqlite:///{tmp_path / 'later.db'}")
