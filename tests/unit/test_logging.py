"""The services' log: one JSON object a line, the libraries' warnings and tracebacks included."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO

PROGRAM = """
import logging
import structlog
from shared.logging import configure_logging

configure_logging(service="roster", fmt="json")
configure_logging(service="roster", fmt="json")  # again: still one line a record
structlog.get_logger("scan").info("rotation_scan", announced=3)
try:
    raise ZeroDivisionError("in a library")
except ZeroDivisionError:
    logging.getLogger("sqlalchemy.pool.impl").error("Exception during reset or similar", exc_info=True)
logging.getLogger("aiogram.event").info("Update is handled")  # a library's routine: not kept
logging.getLogger("asyncio").warning("Executing %s took %.3f seconds", "<Task>", 0.2)
logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # as SQLAlchemy's echo does
logging.getLogger("sqlalchemy.engine").info("SELECT 1")  # still below the log's level: not kept
import warnings
warnings.warn("a library's warning", UserWarning)
"""


def test_a_library_s_traceback_is_a_json_line_of_the_service_s_log() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON: no loose traceback
    assert [(r["event"], r["level"], r["service"]) for r in records] == [
        ("rotation_scan", "info", "roster"),
        ("Exception during reset or similar", "error", "roster"),
        ("Executing <Task> took 0.200 seconds", "warning", "roster"),
        (records[3]["event"], "warning", "roster"),
    ]
    assert records[3]["logger"] == "py.warnings" and "UserWarning: a library's warning" in records[3]["event"]
    assert records[1]["logger"] == "sqlalchemy.pool.impl"
    assert records[1]["exception"].startswith("Traceback") and "ZeroDivisionError: in a library" in records[1]["exception"]
    assert all("timestamp" in r for r in records)
