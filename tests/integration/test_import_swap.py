"""An import is prepared without the store's write lock and swapped in at once (issue 16).

Against a real SQLite file, with a second connection (the sqlite3 module, as another
process would) looking in while the import is being prepared."""

import csv
import io
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from services.roster import store as roster_store
from services.roster.admin import import_file
from services.roster.config import Settings
from services.roster.samples import generate
from shared.clock import ManualClock
from shared.store import Database
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


@pytest.mark.parametrize("people,staged", [(200, True), (3, False)], ids=["staged", "written-directly"])
async def test_a_change_committed_meanwhile_makes_the_import_plan_again(roster_settings: Settings,
                                                                        clock: ManualClock, people: int,
                                                                        staged: bool) -> None:
    """A write committed between reading the roster and swapping the import in (here the
    revision another writer bumps) is never overwritten: the import plans again, whether its
    rows were staged or are written in the swap itself (a small file)."""
    other = await _other_connection(roster_settings)
    phases: list[str] = []

    def interfere(phase: str, done: int, total: int) -> None:
        phases.append(phase)
        if phase == "committing" and done == 0 and phases.count("committing") == 1:
            other.execute("INSERT INTO roster_revision (id, revision) VALUES (1, 41)")

    text = generate(people=people, today=clock.now().date())
    report = await import_file(text, settings=roster_settings, clock=clock, publish=False, progress=interfere)
    revision = other.execute("SELECT revision FROM roster_revision").fetchone()[0]
    other.close()
    assert report.errors == [] and report.attempts == 2
    assert ("writing" in phases) is staged
    assert revision == 42  # the other writer's row kept, and bumped once by the import
    in_file = len({line.split(",")[1] for line in text.splitlines()[1:]})  # the sample adds the desk and advisers
    assert report.counts["new_person"] == in_file and await counts(roster_settings) == (in_file, in_file)
    types = [e.type for e in await outbox(roster_settings)]
    assert types.count("roster.person.changed") == in_file  # the first plan's events were not written


def _changed(text: str, *, today: date) -> str:
    """The file with a few of everything an import changes: ends moved, a name, a training's date, a
    deployment ended early, a course added, a new person on a new post."""
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows[::4]:
        row["planned_end"] = str(date.fromisoformat(row["planned_end"]) + timedelta(days=30))
    rows[1]["name"] = "Renamed Person"
    rows[2]["trainings"] = "UN-CMCoord Course@2024-01-01"
    rows[3]["trainings"] += ";Field Course@2025-05-05"
    ended = next(row for row in rows[5:] if date.fromisoformat(row["start"]) < today - timedelta(days=2))
    ended["actual_end"] = str(today - timedelta(days=1))
    rows.append({**rows[6], "name": "New Person", "email": "new.person@ocha.example", "post_title": "New Post"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def _state(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """The roster as rows keyed by what they mean (e-mails, posts' names), not by generated ids."""
    db = Database(settings.db_url)
    queries = {
        "person": "SELECT email, name, phone, telegram_username, organisation, languages, timezone, created_at, "
                  "updated_at, locale, liaison FROM person",
        "post": "SELECT country, duty_station, title, region, gapped_since, gap_alerts_sent FROM post",
        "deployment": "SELECT p.email, t.country, t.duty_station, t.title, d.role, d.start, d.planned_end, "
                      "d.actual_end, d.hats, d.created_at, d.updated_at, d.started_announced, "
                      "d.ending_soon_announced_for, d.ended_announced FROM deployment d "
                      "JOIN person p ON p.id = d.person_id JOIN post t ON t.id = d.post_id",
        "training": "SELECT p.email, r.course, r.completed_on FROM training r JOIN person p ON p.id = r.person_id",
        "revision": "SELECT revision FROM roster_revision",
    }
    try:
        async with db.engine.connect() as conn:
            state = {name: sorted(tuple(row) for row in await conn.exec_driver_sql(sql))
                     for name, sql in queries.items()}
            # each import's events (one created_at each) as a multiset: within an import, the rotation's
            # events follow the order the stored deployments were read in, which is the store's own
            state["events"] = sorted(tuple(row) for row in await conn.exec_driver_sql(
                "SELECT created_at, subject FROM outbox"))
    finally:
        await db.dispose()
    return state


async def test_a_small_file_written_directly_leaves_what_staging_leaves(tmp_path: Path, clock: ManualClock,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same imports (a roster; a file changing some of everything; that file again a month
    later, when only the rotation's marks move) into two stores: one writes them straight in the
    swap, the other stages them first; the stores end alike after each."""
    start, today = clock.now(), clock.now().date()
    first = generate(people=25, today=today)
    second = _changed(first, today=today)
    imports = ((first, timedelta(hours=1)), (second, timedelta(days=30)), (second, timedelta(0)))
    states: dict[bool, list[dict[str, list[tuple[object, ...]]]]] = {}
    for staged in (False, True):
        clock.set(start)
        settings = Settings(home=tmp_path / f"staged-{staged}", nats_url="nats://127.0.0.1:1")
        monkeypatch.setattr(roster_store, "DIRECT_WRITE_ROWS", -1 if staged else 10_000)
        phases: set[str] = set()
        states[staged] = []
        for text, then in imports:
            report = await import_file(text, settings=settings, clock=clock, publish=False,
                                       progress=lambda phase, done, total: phases.add(phase))
            assert report.errors == [] and report.written
            states[staged].append(await _state(settings))
            clock.advance(then)
        assert ("writing" in phases) is staged
    imported, changed, later = states[False]
    assert {name for name in changed if changed[name] != imported[name]} == {
        "person", "post", "deployment", "training", "revision", "events"}
    # a month on, the same file moves no fact: some deployments' rotation marks move, their updated_at stays
    before = {row[:6]: row for row in changed["deployment"]}
    marked = [row for row in later["deployment"] if row != before[row[:6]]]
    assert marked and all(row[:11] == before[row[:6]][:11] for row in marked)
    assert states[False] == states[True]
