"""Two roster processes scanning the same store at the same time announce each fact once."""

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from services.roster.config import Settings
from shared.bus import Bus
from shared.clock import ManualClock
from tests.helpers import cli, roster_env, stream_events
from tests.integration.roster_db import outbox

# The store is under test here: run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


async def test_concurrent_scans_announce_each_fact_once(
    sample_roster: str, roster_settings: Settings, clock: ManualClock, bus: Bus
) -> None:
    at = (clock.now() + timedelta(days=12)).isoformat()
    env = roster_env(roster_settings)
    results = await asyncio.gather(*(cli("roster", "scan", "--at", at, env=env) for _ in range(2)))
    assert [code for code, _, _ in results] == [0, 0], [err[-800:] for _, _, err in results]
    in_store = [e for e in await outbox(roster_settings) if e.occurred_at > clock.now()]
    assert len(in_store) > 5  # endings, gaps and repeats twelve days on
    in_stream = [e for e in await stream_events(bus.js, "ROSTER") if e.occurred_at > clock.now()]
    assert Counter(e.id for e in in_stream) == Counter(e.id for e in in_store)
    assert all(n == 1 for n in Counter(e.id for e in in_stream).values())
    # the two reports add up to the facts announced: nobody announced twice
    reported = sum(int(part.split()[0]) for _, out, _ in results for part in out.splitlines()[0].split(", ")
                   if part[:1].isdigit())
    assert reported == len(in_store)
