"""Lessons search over NATS with 100,000 lessons: a lessons process on SQLite (FTS5),
concurrent clients asking as different viewers with a mix of words and filters;
latencies from request to reply. A search says only who asks; lessons asks the
roster what that person may read (and keeps the answer a minute): here a stand-in
roster in the bench process answers `cmcoord.roster.svc.rights` at once, so the
figure is lessons' own (the roster's rights answer is three indexed reads)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg

from services.lessons import samples, store
from shared.bus import Bus
from shared.natsserver import NatsServer, free_port
from shared.regions import REGIONS
from shared.store import Database
from shared.themes import THEMES
from shared.topology import DEFAULT_ACK_WAIT
from tests.bench.common import percentile, result, wait_ready
from tests.helpers import declare_topology, service_env, start_service, stop_process

WORDS = ("checkpoint", "convoy", "escort", "evacuation", "helicopters", "notification", "acknowledgement",
         "beneficiaries", "patrol", "militia", "guidelines", "meeting", "route", "delayed", "principles", "civilians",
         "forum", "liaison", "relief", "police")


DESK, ADVISER, MEMBER = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)


def rights_of(person_id: uuid.UUID) -> dict[str, Any]:
    """The roster's answer for the bench's askers: the desk, an adviser of ROWCA, members (authors too)."""
    return {"person_id": str(person_id), "member": True, "desk": person_id == DESK,
            "adviser_regions": ["ROWCA"] if person_id == ADVISER else []}


def queries(rng: random.Random, n: int, authors: list[uuid.UUID]) -> list[dict[str, Any]]:
    """Searches as five kinds of viewer: the public, a member, the desk, an adviser, an author."""
    out = []
    for _ in range(n):
        asker = rng.choice([None, MEMBER, DESK, ADVISER, rng.choice(authors)])
        q: dict[str, Any] = {"person_id": str(asker) if asker else None,
                             "query": " ".join(rng.sample(WORDS, rng.choice((1, 1, 2)))), "limit": 5}
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
    await declare_topology(server.url, ack_wait=DEFAULT_ACK_WAIT)  # as `cmcoord nats-init`, its ack wait too
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
        rights_asked = 0

        async def roster_rights(msg: Msg) -> None:
            nonlocal rights_asked
            rights_asked += 1
            await msg.respond(json.dumps(rights_of(uuid.UUID(json.loads(msg.data)["person_id"]))).encode())

        await bus.nc.subscribe("cmcoord.roster.svc.rights", cb=roster_rights)
        asks = queries(random.Random(11), requests, list({i.author_id for i in items}))
        for q in asks[:50]:  # warm-up: the index's pages into the cache
            await bus.request("cmcoord.lessons.svc.search", q, timeout=30)
        latencies: list[float] = []
        totals: list[int] = []
        unknown: list[bool] = []  # the roster's answer missed: searched as the public

        async def client(worker: int) -> None:
            for q in asks[worker::concurrency]:
                t0 = time.perf_counter()
                found = await bus.request("cmcoord.lessons.svc.search", q, timeout=30)
                latencies.append((time.perf_counter() - t0) * 1000)
                totals.append(found["total"])
                unknown.append(found["rights_unknown"])

        await asyncio.gather(*(client(w) for w in range(concurrency)))
        await bus.close()
    finally:
        stop_process(proc)
        server.stop()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    detail = {"lessons": lessons, "requests": len(latencies), "concurrency": concurrency,
              "median_matches": sorted(totals)[len(totals) // 2], "load_seconds": round(load_s, 1),
              "askers": len({q["person_id"] for q in asks if q["person_id"]}), "roster_rights_asked": rights_asked,
              "rights_unknown": sum(unknown)}
    return [
        result("lessons_search_p50_ms", p50, "ms", "informational (p99 <= 50)", True, **detail),
        result("lessons_search_p99_ms", p99, "ms", "<= 50", p99 <= 50, **detail),
    ]
