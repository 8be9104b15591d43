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
    (("--help",), ["bot", "lessons", "notify", "roster"]),  # the overview lists every group
    (("rosterr",), ["bot", "lessons", "notify", "roster"]),  # a typo: the help that follows lists them all
])
def test_a_command_loads_only_its_own_service(argv: tuple[str, ...], expected: list[str]) -> None:
    assert services_loaded(*argv) == expected
