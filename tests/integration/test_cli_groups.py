"""`cmcoord <group> …` loads that service's commands alone: a roster command does not import the bot."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

LOADED = """
import json, sys
from shared import cli
cli._add_service_commands(sys.argv[1:])
print(json.dumps(sorted({m.split(".")[1] for m in sys.modules if m.startswith("services.")})))
"""


def services_loaded(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", LOADED, *argv], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=True)
    return list(json.loads(done.stdout))


@pytest.mark.parametrize(("argv", "expected"), [
    (("roster", "import", "--sample"), ["roster"]),
    (("calls", "list"), ["notify"]),
    (("clock", "show"), []),  # a command of shared/cli.py itself
    (("--help",), ["bot", "hns4d", "lessons", "notify", "roster"]),  # the overview lists every group
    (("rosterr",), ["bot", "hns4d", "lessons", "notify", "roster"]),  # a typo: the help that follows lists them all
])
def test_a_command_loads_only_its_own_service(argv: tuple[str, ...], expected: list[str]) -> None:
    assert services_loaded(*argv) == expected


HELP_LOADS = """
import contextlib, json, sys
from shared import cli
sys.argv = ["cmcoord", *sys.argv[1:]]
with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(SystemExit):
    cli.main()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""
# What a command's help must not wait for: the database, NATS, Telegram, HTTP, the settings and log libraries,
# and rich (the help is plain text). Each takes a tenth of a second or more to import.
HEAVY = {"sqlalchemy", "sqlmodel", "alembic", "nats", "aiogram", "aiohttp", "structlog", "pydantic_settings", "rich",
         "asyncio", "openpyxl", "icalendar", "babel", "pycountry"}


@pytest.mark.parametrize("argv", [
    ("--help",), ("roster", "--help"), ("roster", "import", "--help"), ("notify", "send", "--help"),
    ("calls", "--help"), ("lessons", "--help"), ("lessons", "review", "--help"), ("lessons", "search", "--help"),
    ("bot", "--help"), ("clock", "--help"), ("deadletter", "list", "--help"),
])
def test_a_command_s_help_imports_nothing_heavy(argv: tuple[str, ...]) -> None:
    """`cmcoord … --help` answers in a few tenths of a second: typer and the standard library (`make bench`
    reports the times: cli_*_seconds)."""
    done = subprocess.run([sys.executable, "-c", HELP_LOADS, *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True)
    assert "Usage:" in done.stderr, done.stderr
    assert set(json.loads(done.stdout)) & HEAVY == set()
