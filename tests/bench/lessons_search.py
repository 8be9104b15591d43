"""Lessons search over NATS with 100,000 lessons: a lessons process on SQLite (FTS5),
concurrent clients asking as different viewers with a mix of words and filters;
latencies from request to reply."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path
from typing import Any

from services.lessons import samples, store
from services.lessons.classification import Viewer
from shared.bus import Bus
from shared.natsserver import NatsServer, free_port
from shared.regions import REGIONS
from shared.store import Database
from shared.themes import THEMES
from tests.bench.common import percentile, result, wait_ready
from tests.helpers import service_env, start_service, stop_process

WORDS = ("checkpoint", "convoy", "escort", "evacuation", "helicopters", "notification", "acknowledgement",
         "beneficiaries", "patrol", "militia", "guidelines", "meeting", "route", "delayed", "principles", "civilians",
         "forum", "liaison", "relief", "police")


def queries(rng: random.Random, n: int, authors: list[uuid.UUID]) -> list[dict[str, Any]]:
    viewers = [Viewer(), Viewer(member=True), Viewer(member=True, desk=True),
               Viewer(member=True, adviser_regions=frozenset({"ROWCA"}))]
    out = []
    for _ in range(n):
        viewer = rng.choice([*viewers, Viewer(person_id=rng.choice(authors), member=True)])
        q: dict[str, Any] = {"viewer": viewer.to_json(), "query": " ".join(rng.sample(WORDS, rng.choice((1, 1, 2)))),
                             "limit": 5}
        filters = rng.random()
        if filters < 0.3:
            q["theme"] = rng.choice(list(THEMES))
        elif filters < 0.5:
            q["region"] = rng.choice(list(REGIONS))
        elif filters < 0.6:
            q["period"] = rng.choice(("2025Q3", "2026Q1", "2026"))
        elif filters < 0.7:
            q["status"] = "learned"
        out.append(q)
    return out


async def measure(work: Path, *, lessons: int, requests: int, concurrency: int) -> list[dict[str, object]]:
    server = NatsServer(store_dir=work / "nats" / "jetstream", name="bench-lessons").start()
    health = free_port()
    home = work / "home"
    db = Database(f"sqlite+aiosqlite:///{home / 'lessons.db'}")
    await store.prepare(db)
    items = samples.generate(lessons)
    started = time.perf_counter()
    await samples.load(db, items)
    load_s = time.perf_counter() - started
    await db.dispose()
    proc = start_service("services.lessons", service_env(home, server.url, CMCOORD_LESSONS_HEALTH_PORT=str(health)),
                         work / "lessons.log")
    try:
        await wait_ready(health, "lessons")
        bus = await Bus.open(server.url, source="bench", patience=10)
        asks = queries(random.Random(11), requests, list({i.author_id for i in items}))
        for q in asks[:50]:  # warm-up: the index's pages into the cache
            await bus.request("cmcoord.lessons.svc.search", q, timeout=30)
        latencies: list[float] = []
        totals: list[int] = []

        async def client(worker: int) -> None:
            for q in asks[worker::concurrency]:
                t0 = time.perf_counter()
                found = await bus.request("cmcoord.lessons.svc.search", q, timeout=30)
                latencies.append((time.perf_counter() - t0) * 1000)
                totals.append(found["total"])

        await asyncio.gather(*(client(w) for w in range(concurrency)))
        await bus.close()
    finally:
        stop_process(proc)
        server.stop()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    detail = {"lessons": lessons, "requests": len(latencies), "concurrency": concurrency,
              "median_matches": sorted(totals)[len(totals) // 2], "load_seconds": round(load_s, 1)}
    return [
        result("lessons_search_p50_ms", p50, "ms", "informational (p99 <= 50)", True, **detail),
        result("lessons_search_p99_ms", p99, "ms", "<= 50", p99 <= 50, **detail),
    ]
