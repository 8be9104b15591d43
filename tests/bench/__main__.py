"""`make bench`: measure, compare with a baseline from the same run, write bench-results.json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shared.natsserver import nats_server_binary
from tests.bench import bot_contacts, cli_start, contacts, fanout, lessons_search, roster_import, throughput

REPO = Path(__file__).resolve().parents[2]


def machine() -> dict[str, object]:
    version = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "nats_server": version,
    }


async def run(args: argparse.Namespace) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="cmcoord-bench-") as tmp:
        if args.only in (None, "throughput"):
            results += await throughput.measure(Path(tmp) / "throughput", events=args.events)
        if args.only in (None, "contacts"):
            results += await contacts.measure(Path(tmp) / "contacts", people=args.people, requests=args.requests,
                                              concurrency=args.concurrency)
        if args.only in (None, "bot"):
            results += await bot_contacts.measure(Path(tmp) / "bot", people=args.people, users=args.concurrency,
                                                  per_user=args.per_user)
        if args.only in (None, "lessons"):
            results += await lessons_search.measure(Path(tmp) / "lessons", lessons=args.lessons,
                                                    requests=args.requests, concurrency=args.lessons_concurrency)
        if args.only in (None, "fanout"):
            results += await fanout.measure(Path(tmp) / "fanout", people=args.officers, prompts=args.prompts)
        if args.only in (None, "import"):
            results += await roster_import.measure(Path(tmp) / "import", rows=args.import_rows)
        if args.only in (None, "cli"):
            results += cli_start.measure(Path(tmp) / "cli")
    return results


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """One core kept busy for as long as the block runs: a spinning process, as the machine's other work."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def loaded(results: list[dict[str, object]]) -> list[dict[str, object]]:
    """The same figures measured beside the hog, named `*_loaded` beside the quiet ones."""
    return [{**r, "name": f"{r['name']}_loaded"} for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--per-user", type=int, default=25, help="/contacts questions per bot user")
    parser.add_argument("--officers", type=int, default=1000, help="recipients of the fan-out")
    parser.add_argument("--prompts", type=int, default=40, help="roster changes timed to their handover prompt")
    parser.add_argument("--lessons", type=int, default=100_000, help="lessons in the store searched")
    parser.add_argument("--lessons-concurrency", type=int, default=4, help="lessons searches at once")
    parser.add_argument("--import-rows", type=int, default=50_000, help="roster rows imported (and bare executemany)")
    parser.add_argument("--only", choices=["throughput", "contacts", "bot", "lessons", "fanout", "import", "cli"],
                        help="run one group")
    parser.add_argument("--quiet-only", action="store_true",
                        help="skip the second pass, with one core kept busy by a spinning process (`*_loaded`)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if not args.quiet_only:
        with cpu_hog():
            results += loaded(asyncio.run(run(args)))
    report = {"results": results, "machine": machine()}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        mark = "ok  " if r["ok"] else "MISS"
        print(f"{mark} {r['name']:<36} {r['value']:>10} {r['unit']:<8} target {r['target']}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
