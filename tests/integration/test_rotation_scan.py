"""The rotation scan on a real SQLite store with a set clock."""

from datetime import UTC, datetime, timedelta

import pytest

from services.roster import handlers
from services.roster.bootstrap import policy_from
from services.roster.cli import import_text
from services.roster.config import Settings
from shared.clock import ManualClock
from shared.store import Database
from tests.integration.roster_db import outbox

# The store is under test here: run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

HEADER = "name,email,organisation,country,duty_station,post_title,role,start,planned_end\n"


async def scan(settings: Settings, clock: ManualClock) -> list[str]:
    db = Database(settings.db_url)
    try:
        result = await handlers.run_rotation_scan(db=db, clock=clock, policy=policy_from(settings))
    finally:
        await db.dispose()
    return [e.type.split(".", 1)[1] for e in result.announced]


async def test_full_rotation_story(roster_settings: Settings, clock: ManualClock) -> None:
    today = clock.now().date()
    end = today + timedelta(days=40)
    row = f"Moussa Keita,moussa@ocha.example,OCHA,ML,Mopti,CMCoord Officer,cmcoord_officer,{today - timedelta(days=5)},{end}\n"
    await import_text(HEADER + row, settings=roster_settings, clock=clock, publish=False)
    assert [e.type for e in await outbox(roster_settings, type_prefix="roster.deployment.started")] == [
        "roster.deployment.started"
    ]
    assert await scan(roster_settings, clock) == []

    # ending_soon at 21 days before the planned end, once
    clock.set(datetime.combine(end - timedelta(days=21), datetime.min.time(), UTC))
    assert await scan(roster_settings, clock) == ["deployment.ending_soon"]
    assert await scan(roster_settings, clock) == []
    clock.advance(timedelta(days=1))
    assert await scan(roster_settings, clock) == []

    # the end date moves (three days earlier): announced again for the new date
    new_end = end - timedelta(days=3)
    await import_text(HEADER + row.replace(str(end), str(new_end)), settings=roster_settings, clock=clock, publish=False)
    soon = await outbox(roster_settings, type_prefix="roster.deployment.ending_soon")
    assert [e.data["planned_end"] for e in soon] == [str(end), str(new_end)]
    assert len({e.id for e in soon}) == 2

    # ended -> gapped; again after 7 days; not in between
    clock.set(datetime.combine(new_end + timedelta(days=1), datetime.min.time(), UTC))
    assert await scan(roster_settings, clock) == ["deployment.ended", "post.gapped"]
    clock.advance(timedelta(days=6))
    assert await scan(roster_settings, clock) == []
    clock.advance(timedelta(days=1))
    assert await scan(roster_settings, clock) == ["post.gapped"]
    gapped = await outbox(roster_settings, type_prefix="roster.post.gapped")
    assert [e.data["alert_number"] for e in gapped] == [1, 2]
    assert gapped[0].data["gapped_since"] == str(new_end + timedelta(days=1))

    # a successor starts: filled, and no more gap alerts
    start = clock.now().date()
    successor = f"Awa Traore,awa@ocha.example,OCHA,ML,Mopti,CMCoord Officer,cmcoord_officer,{start},{start + timedelta(days=180)}\n"
    await import_text(HEADER + successor, settings=roster_settings, clock=clock, publish=False)
    filled = await outbox(roster_settings, type_prefix="roster.post.filled")
    assert len(filled) == 1 and filled[0].data["gapped_since"] == gapped[0].data["gapped_since"]
    clock.advance(timedelta(days=14))
    assert await scan(roster_settings, clock) == []
