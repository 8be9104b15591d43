"""The roster import benchmark's steps on a small roster: a change to the roster's tables that breaks its
bare-executemany baseline (or the import's own step) fails here, in make test, and not first in make bench."""

from pathlib import Path

from tests.bench import roster_import


async def test_the_import_benchmark_runs_on_a_small_roster(tmp_path: Path) -> None:
    figures = {f["name"]: f for f in await roster_import.measure(tmp_path, rows=300)}
    assert set(figures) == {"roster_import_50k_seconds", "roster_import_50k_peak_mb",
                            "roster_import_50k_executemany_seconds", "roster_import_50k_directory_kb_per_person",
                            "roster_import_50k_scan_seconds", "roster_import_50k_lock_seconds"}
    assert all(isinstance(f["value"], float | int) and f["value"] > 0 for f in figures.values())
    assert figures["roster_import_50k_seconds"]["detail"]["counts"]  # the import wrote what it read
