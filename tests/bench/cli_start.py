"""`cmcoord` start-up: how long a command takes before it does anything, and its memory.

Each command runs several times as a fresh process; the median wall time and the largest resident
set are reported. The baseline is a bare Typer application's `--help` (the floor any Typer CLI
pays), measured in the same run."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from tests.bench.common import result

REPO = Path(__file__).resolve().parents[2]
TARGET_S = 0.5
BARE = ("import typer\napp = typer.Typer(rich_markup_mode=None)\n"
        "@app.command()\ndef hello(name: str = 'x') -> None: ...\napp()\n")
COMMANDS = {  # the figure's name: the command line after `cmcoord`
    "cli_help_seconds": ("--help",),
    "cli_roster_help_seconds": ("roster", "--help"),
    "cli_lessons_help_seconds": ("lessons", "--help"),
    "cli_clock_show_seconds": ("clock", "show"),
}


# A small process runs each command and reports its peak resident set: measured from this one, a child's
# peak would count the pages it shares with the benchmark until it execs.
LAUNCHER = ("import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n")


def _once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(seconds, peak resident KB) of one run; a command that fails is not timed as a start."""
    out = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *argv], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    if out[2] != "0":
        raise RuntimeError(f"{' '.join(argv[3:])} exited with {out[2]}")
    return float(out[0]), int(out[1])


def _median(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, int]:
    done = [_once(argv, env) for _ in range(runs)]
    return statistics.median(t for t, _ in done), max(kb for _, kb in done)


def measure(home: Path, *, runs: int = 9) -> list[dict[str, object]]:
    from shared.clock import set_shared_clock
    from shared.clock_cli import CLOCK_FILE

    home.mkdir(parents=True, exist_ok=True)
    set_shared_clock(home / CLOCK_FILE, speed=1)  # the training clock `clock show` shows
    env = {**os.environ, "CMCOORD_HOME": str(home)}
    bare_s, bare_kb = _median([sys.executable, "-c", BARE, "--help"], env, runs)
    out = []
    for name, args in COMMANDS.items():
        took, kb = _median([sys.executable, "-m", "shared.cli", *args], env, runs)
        out.append(result(name, took, "s", f"<= {TARGET_S}", took <= TARGET_S, peak_rss_mb=round(kb / 1024, 1),
                          bare_typer_help_s=round(bare_s, 3), ratio_to_bare_typer=round(took / bare_s, 2),
                          bare_typer_peak_rss_mb=round(bare_kb / 1024, 1), runs=runs))
    return out
