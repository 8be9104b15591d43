"""`cmcoord clock`: the training clock every service of `cmcoord up --speed N` reads.

A training session shows in minutes what takes weeks in the field: a rotation, a
regional call, an after action review. `cmcoord up --demo --speed 60` makes a real
minute a simulated hour; `cmcoord clock advance 3d` skips ahead. In production the
services read the system clock and these commands refuse."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shared.clock import MAX_SPEED, read_shared_clock, set_shared_clock

if TYPE_CHECKING:
    from shared.settings import CommonSettings

CLOCK_FILE = "clock"  # in the home folder, for `cmcoord up --speed`
UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")

app = typer.Typer(no_args_is_help=True, help="The training clock of `cmcoord up --speed N`: show it, skip ahead, "
                  "change its speed.")


def parse_duration(text: str) -> timedelta:
    """'3d', '1d12h', '90m', '2w' -> a duration; anything else is refused with the accepted forms."""
    compact = text.replace(" ", "").lower()
    parts = DURATION.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise typer.BadParameter(f"{text!r} is not a duration: write it like 3d, 12h, 1d12h, 90m or 2w")
    return sum((timedelta(**{UNITS[unit]: float(number)}) for number, unit in parts), timedelta(0))


def training_clock_file(settings: CommonSettings | None = None) -> Path:
    """The clock file the running services read: CMCOORD_CLOCK_FILE, else the one `cmcoord up --speed`
    keeps in the home folder. None of them: the services run on the system clock, and this says so."""
    from shared.settings import CommonSettings  # pydantic: read when a command runs, not for --help

    settings = settings or CommonSettings()
    path = settings.clock_file or settings.home / CLOCK_FILE
    if not path.exists():
        typer.echo(f"No training clock at {path.resolve()}: the services run on the system clock. Start a training "
                   "session with `cmcoord up --demo --speed 60` (or set CMCOORD_HOME to its folder).", err=True)
        raise typer.Exit(2)
    return path


def _say(path: Path) -> None:
    setting = read_shared_clock(path)
    now = setting.at(datetime.now(UTC))
    typer.echo(f"{now:%Y-%m-%d %H:%M:%S} UTC (simulated), {setting.speed:g}x real time")


@app.command()
def show() -> None:
    """The services' time now and its speed."""
    _say(training_clock_file())


@app.command()
def advance(duration: str = typer.Argument(..., help="how far: 3d, 12h, 1d12h, 90m, 2w")) -> None:
    """Move every service's time forward (never back: what happened stays in the past)."""
    path = training_clock_file()
    set_shared_clock(path, advance=parse_duration(duration))
    _say(path)


@app.command()
def speed(factor: float = typer.Argument(..., help=f"1 is real time, 60 a minute per hour, at most {MAX_SPEED:g}")
          ) -> None:
    """Run every service's time this many times faster than real time, from now on."""
    if not 0 < factor <= MAX_SPEED:
        raise typer.BadParameter(f"the speed must be above 0 and at most {MAX_SPEED:g}")
    path = training_clock_file()
    set_shared_clock(path, speed=factor)
    _say(path)
