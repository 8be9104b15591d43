"""An import is prepared without the store's write lock and swapped in at once (issue 16).

Against a real SQLite file, with a second connection (the sqlite3 module, as another
process would) looking in while the import is being prepared."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from services.roster.admin import import_file
from services.roster.config import Settings
from services.roster.samples import generate
from shared.clock import ManualClock
from tests.helpers import cli, roster_env
from tests.integration.roster_db import counts, outbox


async def _other_connection(settings: Settings) -> sqlite3.Connection:
    assert await counts(settings) == (0, 0)  # the store made, empty
    path = make_url(settings.db_url).database
    assert path is not None
    return sqlite3.connect(path, timeout=0.2, isolation_level=None)


async def test_others_read_and_write_while_the_import_is_prepared(roster_settings: Settings,
                                                                  clock: ManualClock) -> None:
    """While rows are staged nobody sees them, and another writer gets the lock at once."""
    seen: list[tuple[str, int, int]] = []
    other = await _other_connection(roster_settings)

    def look(phase: str, done: int, total: int) -> None:
        if phase in ("writing", "committing") and done < total:
            people = other.execute("SELECT count(*) FROM person").fetchone()[0]
            events = other.execute("SELECT count(*) FROM outbox").fetchone()[0]
            seen.append((phase, people, events))
            other.execute("BEGIN IMMEDIATE")  # would fail after 0.2 s if the import held the write lock
            other.execute("UPDATE roster_revision SET revision = revision WHERE id = 1")
            other.execute("ROLLBACK")

    text = generate(people=300, today=clock.now().date())
    report = await import_file(text, settings=roster_settings, clock=clock, publish=False, progress=look,
                               list_changes=False)
    other.close()
    assert report.errors == [] and report.written and report.attempts == 1
    assert seen and all((people, events) == (0, 0) for _, people, events in seen), seen
    assert {phase for phase, _, _ in seen} == {"writing", "committing"}
    people, _ = await counts(roster_settings)
    assert people == report.counts["new_person"] == 300
    assert 0 < report.lock_seconds < 5


async def test_a_change_committed_meanwhile_makes_the_import_plan_again(roster_settings: Settings,
                                                                        clock: ManualClock) -> None:
    """A write committed between reading the roster and swapping the import in (here the
    revision another writer bumps) is never overwritten: the import plans again."""
    other = await _other_connection(roster_settings)
    interfered: list[str] = []

    def interfere(phase: str, done: int, total: int) -> None:
        if phase == "writing" and not interfered:
            interfered.append(phase)
            other.execute("INSERT INTO roster_revision (id, revision) VALUES (1, 41)")

    text = generate(people=30, today=clock.now().date())
    report = await import_file(text, settings=roster_settings, clock=clock, publish=False, progress=interfere)
    revision = other.execute("SELECT revision FROM roster_revision").fetchone()[0]
    other.close()
    assert report.errors == [] and report.attempts == 2 and interfered
    assert revision == 42  # the other writer's row kept, and bumped once by the import
    assert await counts(roster_settings) == (30, 30)
    types = [e.type for e in await outbox(roster_settings)]
    assert types.count("roster.person.changed") == 30  # the first plan's staged events were dropped


async def test_the_command_prints_a_summary_and_lists_changes_only_when_verbose(
    roster_settings: Settings, tmp_path: Path
) -> None:
    file = tmp_path / "roster.csv"
    file.write_text("name,email,country,duty_station,post_title,role,start,planned_end\n"
                    "Ana Rojas,ana@ocha.example,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30\n")
    env = roster_env(roster_settings)
    code, out, err = await cli("roster", "import", "--dry-run", str(file), env=env)
    assert code == 0, err
    assert out.startswith("would change: 1 new person, 0 changed person, 1 new deployment, 0 changed deployment, "
                          "0 ended deployment, 0 errors (") and "--verbose lists each change" in out
    assert "ana@ocha.example" not in out
    code, out, err = await cli("roster", "import", "--dry-run", "--verbose", str(file), env=env)
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "new person           ana@ocha.example Ana Rojas",
        "new deployment       ana@ocha.example CO Bogotá CMCoord Officer from 2026-01-01  (until 2026-06-30)",
    ]


@pytest.mark.parametrize("bad_rows", [25])
async def test_the_command_shows_the_first_errors_and_counts_them_all(roster_settings: Settings, tmp_path: Path,
                                                                      bad_rows: int) -> None:
    file = tmp_path / "roster.csv"
    file.write_text("name,email\n" + "".join(f"Person {i},person{i}@\n" for i in range(bad_rows)))
    code, _, err = await cli("roster", "import", str(file), env=roster_env(roster_settings))
    lines = err.splitlines()
    assert code == 1
    assert lines[0] == "line 2: bad email 'person0@': There must be something after the @-sign. (column B, email)"
    assert lines[-2:] == ["… and 5 more (--verbose lists them all)", "25 error(s); nothing was written"]
