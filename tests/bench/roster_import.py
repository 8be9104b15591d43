"""Importing 50,000 roster rows into a fresh SQLite store, beside a bare `executemany` of
the same rows measured in the same run.

Each side runs in a fresh Python process of its own, so the peak memory reported (the
process's high-water resident set, VmHWM: its own since it started, not the benchmark's it
was forked from, which getrusage's maximum would count) is that side's alone:
- the import: `services.roster.admin.import_file` on the file's bytes, the path
  `cmcoord roster import FILE` takes (every row validated, planned against the store,
  its ~120,000 events written to the outbox, all or nothing), events left for the relay
  (the NATS client the command then loads to publish them counts in the peak memory);
- the baseline: the csv module's rows made into tuples and inserted as they are into three
  tables (person, post, deployment, the store's schema), one `executemany` each, one
  transaction, the sqlite3 module alone (no validation, no events, no other table).
Seconds are measured inside each process from the file read to the commit; module imports
are not counted on either side (they are in the peak memory of both).

Then, on the imported store, in a third process: what the roster service's in-memory directory
holds per person (tracemalloc, once loaded), and how long the first rotation scan takes the next
morning (everything the import brought due is announced)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from services.roster.samples import generate
from tests.bench.common import result

REPO = Path(__file__).resolve().parents[2]
TODAY = date(2026, 3, 2)

# The targets were set on a machine where the bare executemany of these rows took 0.85 s: the
# import in under 5 s, the write lock never held for more than 1 s. Seconds depend on the machine
# (the same baseline takes 4 to 7 s on two busy cores), so they are judged as ratios to the
# baseline measured in the same run; memory (200 MB) does not scale with speed and stays absolute.
REFERENCE_BARE_S = 0.85
SECONDS_RATIO = 5 / REFERENCE_BARE_S
LOCK_RATIO = 1 / REFERENCE_BARE_S

IMPORT = r"""
import asyncio, json, re, sys, time
from datetime import UTC, datetime
from pathlib import Path
from services.roster.admin import import_file
from services.roster.config import Settings
from shared.clock import ManualClock

async def main():
    settings = Settings(home=Path(sys.argv[2]))
    clock = ManualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    started = time.perf_counter()
    data = Path(sys.argv[1]).read_bytes()
    report = await import_file(data, settings=settings, clock=clock, publish=False, list_changes=False)
    seconds = time.perf_counter() - started
    assert not report.errors and report.written, report.errors[:3]
    import shared.bus, shared.topology  # what the command loads next to publish: in the peak memory too
    return {"seconds": seconds, "lock_seconds": report.lock_seconds, "counts": report.counts}

out = asyncio.run(main())
out["peak_mb"] = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024
print(json.dumps(out))
"""

BASELINE = r"""
import csv, json, re, sqlite3, sys, time, uuid
from pathlib import Path

path = Path(sys.argv[2]) / "baseline.sqlite"  # its tables made by the parent, as the import's store makes them
started = time.perf_counter()
with open(sys.argv[1], encoding="utf-8", newline="") as file:
    records = csv.reader(file)
    columns = {name: i for i, name in enumerate(next(records))}
    c = [columns[n] for n in ("name", "email", "phone", "telegram", "organisation", "languages", "timezone", "country",
                              "duty_station", "region", "post_title", "role", "start", "planned_end", "actual_end",
                              "hats")]
    now = "2026-03-02 09:00:00.000000"
    people, posts, deployments = [], {}, []
    for r in records:
        person = uuid.uuid4().hex
        people.append((person, r[c[1]].lower(), r[c[0]], r[c[2]], r[c[3]], r[c[4]], r[c[5]], r[c[6]] or "UTC", now,
                       now))
        key = (r[c[7]], r[c[8]], r[c[10]])
        if key not in posts:
            posts[key] = (uuid.uuid4().hex, r[c[7]], r[c[8]], r[c[9]], r[c[10]], None, 0)
        deployments.append((uuid.uuid4().hex, person, posts[key][0], r[c[11]], r[c[12]], r[c[13]], r[c[14]] or None,
                            r[c[15]], now, now, 0, None, 0))
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("PRAGMA foreign_keys=ON")
db.execute("BEGIN IMMEDIATE")
db.executemany("INSERT INTO person (id, email, name, phone, telegram_username, organisation, languages, timezone, "
               "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", people)  # `locale` is the bot's: left NULL
db.executemany("INSERT INTO post (id, country, duty_station, region, title, gapped_since, gap_alerts_sent) "
               "VALUES (?,?,?,?,?,?,?)", list(posts.values()))
db.executemany("INSERT INTO deployment (id, person_id, post_id, role, start, planned_end, actual_end, hats, "
               "created_at, updated_at, started_announced, ending_soon_announced_for, ended_announced) "
               "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", deployments)
db.execute("COMMIT")
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_mb": int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024,
                  "rows": len(people)}))
"""

# The roster service's in-memory directory of the imported roster, and its first rotation scan (the next
# morning, with everything the import brought due to be announced), on the import's store.
SCALE = """
import asyncio, json, sys, time, tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from services.roster import handlers, store
from services.roster.config import Settings
from services.roster.directory import load_snapshot
from shared.clock import ManualClock

async def main():
    settings = Settings(home=Path(sys.argv[2]))
    clock = ManualClock(datetime(2026, 3, 3, 6, tzinfo=UTC))
    db = store.open_store(settings.db_url, clock=clock)
    revision = await store.revision_now(db)
    tracemalloc.start()
    async with db.read() as session:
        snapshot = await load_snapshot(session, day=clock.now().date(), revision=revision,
                                       required_course=settings.required_course)
    held, _ = tracemalloc.get_traced_memory()  # what the directory keeps, once the session's rows are let go
    tracemalloc.stop()
    started = time.perf_counter()
    scan = await handlers.run_rotation_scan(db=db, clock=clock, policy=settings.rotation_policy, max_jump=None)
    seconds = time.perf_counter() - started
    await db.dispose()
    return {"directory_bytes": held, "people": len(snapshot.entries), "scan_seconds": seconds,
            "announced": len(scan.announced)}

print(json.dumps(asyncio.run(main())))
"""


def _baseline_schema(work: Path) -> None:
    """The person, post and deployment tables as the roster's store has them (made here, so the
    baseline's process imports nothing but the standard library)."""
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    from services.roster.models import Deployment, Person, Post

    work.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{work / 'baseline.sqlite'}")
    SQLModel.metadata.create_all(engine, tables=[Person.__table__, Post.__table__,  # type: ignore[attr-defined]
                                                 Deployment.__table__])  # type: ignore[attr-defined]
    engine.dispose()


def _run(script: str, roster: Path, work: Path) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", script, str(roster), str(work)], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def measure(work: Path, *, rows: int = 50_000) -> list[dict[str, object]]:
    work.mkdir(parents=True, exist_ok=True)
    roster = work / "roster.csv"
    roster.write_text(generate(people=rows, today=TODAY), encoding="utf-8")
    started = time.perf_counter()
    imported = _run(IMPORT, roster, work / "import")
    _baseline_schema(work / "baseline")
    bare = _run(BASELINE, roster, work / "baseline")
    wall = time.perf_counter() - started
    scale = _run(SCALE, roster, work / "import")
    seconds, peak = float(imported["seconds"]), float(imported["peak_mb"])  # type: ignore[arg-type]
    lock = float(imported["lock_seconds"])  # type: ignore[arg-type]
    bare_seconds, bare_peak = float(bare["seconds"]), float(bare["peak_mb"])  # type: ignore[arg-type]
    per_person_kb = float(scale["directory_bytes"]) / 1024 / max(int(scale["people"]), 1)  # type: ignore[arg-type]
    scan_seconds = float(scale["scan_seconds"])  # type: ignore[arg-type]
    detail = {"rows": rows, "lock_seconds": round(lock, 2), "counts": imported["counts"],
              "executemany_seconds": round(bare_seconds, 2), "executemany_peak_mb": round(bare_peak, 1),
              "seconds_ratio_to_executemany": round(seconds / bare_seconds, 2),
              "lock_ratio_to_executemany": round(lock / bare_seconds, 2),
              "peak_ratio_to_executemany": round(peak / bare_peak, 2), "both_measured_s": round(wall, 1)}
    return [
        result("roster_import_50k_seconds", seconds, "s",
               f"<= {SECONDS_RATIO:.1f} x the bare executemany of the same run (5 s where it takes {REFERENCE_BARE_S} s)",
               seconds / bare_seconds <= SECONDS_RATIO, **detail),
        result("roster_import_50k_peak_mb", peak, "MB", "<= 200", peak <= 200, **detail),
        result("roster_import_50k_executemany_seconds", bare_seconds, "s", "informational (the baseline)", True,
               **detail),
        result("roster_import_50k_directory_kb_per_person", per_person_kb, "KB", "<= 3", per_person_kb <= 3,
               people=scale["people"], measured="tracemalloc: what the roster's in-memory directory holds once loaded"),
        result("roster_import_50k_scan_seconds", scan_seconds, "s", "<= 3", scan_seconds <= 3, announced=scale["announced"],
               measured="the first rotation scan after the import, the next morning"),
        result("roster_import_50k_lock_seconds", lock, "s",
               f"<= {LOCK_RATIO:.2f} x the bare executemany of the same run (1 s where it takes {REFERENCE_BARE_S} s; "
               "the write transaction that swaps the import in)", lock / bare_seconds <= LOCK_RATIO, **detail),
    ]


if __name__ == "__main__":  # this group alone: its figures replace its earlier ones in bench-results.json
    import asyncio
    import tempfile

    from tests.bench.common import write_figures

    with tempfile.TemporaryDirectory(prefix="cmcoord-bench-import-") as tmp:
        figures = asyncio.run(measure(Path(tmp)))
    write_figures("roster_import_", figures)
    for figure in figures:
        print(f"{figure['name']:<40} {figure['value']:>10} {figure['unit']:<4} target {figure['target']}")
    print(json.dumps(figures[0].get("detail"), indent=2))
