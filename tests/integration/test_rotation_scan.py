"""The rotation scan on a real SQLite store with a set clock; clock sanity (a scan far ahead
is refused; what a confirmed one announced early is taken back and announced on its day)."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import aiohttp
import pytest
import structlog
from sqlmodel import select

from services.roster import handlers
from services.roster.bootstrap import RosterApp
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.models import Deployment, Person, ScanClock
from shared.bus import Bus
from shared.clock import ManualClock
from shared.events import Envelope
from shared.store import Database
from tests.helpers import cli, eventually, roster_env, stream_events
from tests.integration.roster_db import outbox

# The store is under test here: run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

HEADER = "name,email,organisation,country,duty_station,post_title,role,start,planned_end\n"


async def scan(settings: Settings, clock: ManualClock, *, confirm_jump: bool = True) -> list[str]:
    """One scan; jumps confirmed unless told (the stories skip weeks between scans)."""
    db = Database(settings.db_url)
    try:
        result = await handlers.run_rotation_scan(db=db, clock=clock, policy=settings.rotation_policy,
                                                  max_jump=settings.scan_max_jump, confirm_jump=confirm_jump)
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


# --- clock sanity -------------------------------------------------------------------------------


def at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)


def small_roster(t: date) -> str:
    """Three posts: one gapped after an end in 3 days, one handed over in 5 days, one held for 300 days."""
    return HEADER + "".join(f"{row}\n" for row in (
        f"Awa Traore,awa@ocha.example,OCHA,ML,Mopti,CMCoord Officer,cmcoord_officer,{t - timedelta(days=100)},"
        f"{t + timedelta(days=3)}",
        f"Jean Ndiaye,jean@ocha.example,OCHA,NE,Niamey,Focal Point,focal_point,{t - timedelta(days=50)},"
        f"{t + timedelta(days=5)}",
        f"Somchai Wong,somchai@ocha.example,OCHA,NE,Niamey,Focal Point,focal_point,{t + timedelta(days=6)},"
        f"{t + timedelta(days=200)}",
        f"Maria Keller,maria@ocha.example,OCHA,SN,Dakar,Regional Adviser,regional_adviser,{t - timedelta(days=10)},"
        f"{t + timedelta(days=300)}",
    ))


async def last_scan_at(settings: Settings) -> datetime | None:
    db = Database(settings.db_url)
    try:
        async with db.read() as s:
            row = await s.get(ScanClock, 1)
            return None if row is None or row.last_scan_at is None else row.last_scan_at.replace(tzinfo=UTC)
    finally:
        await db.dispose()


async def published(bus: Bus, settings: Settings) -> list[Envelope]:
    """The ROSTER stream once the relay has published all the outbox holds."""
    in_store = {e.id for e in await outbox(settings)}

    async def caught_up() -> list[Envelope] | None:
        events = await stream_events(bus.js, "ROSTER")
        return events if in_store <= {e.id for e in events} else None

    return await eventually(caught_up, what="the outbox published")  # type: ignore[no-any-return]


def facts(events: list[Envelope], since: int = 0) -> list[tuple[str, str]]:
    return [(e.type.removeprefix("roster."), e.data.get("deployment_id") or e.data["post_id"]) for e in events[since:]]


async def gauge(app: RosterApp, name: str) -> float:
    assert app.health is not None
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{app.health.port}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_a_scan_800_days_ahead_is_refused_and_a_confirmed_one_loses_no_true_end(
    roster: RosterApp, roster_settings: Settings, clock: ManualClock, bus: Bus
) -> None:
    t = clock.now().date()
    await import_text(small_roster(t), settings=roster_settings, clock=clock, publish=False)
    await roster.parts.scan.run_pass()
    assert await last_scan_at(roster_settings) == clock.now()
    before = await published(bus, roster_settings)

    # the probe: one scan 800 days ahead. Refused, told once, nothing announced or recorded
    clock.set(at(t + timedelta(days=800)))
    with structlog.testing.capture_logs() as logs:
        await roster.parts.scan.run_pass()
        await roster.parts.scan.run_pass()
    refusals = [entry for entry in logs if entry["event"] == "rotation_scan_clock_jump_refused"]
    assert len(refusals) == 1 and refusals[0]["log_level"] == "error"
    assert await last_scan_at(roster_settings) == at(t)
    assert await published(bus, roster_settings) == before
    assert await gauge(roster, "cmcoord_roster_scan_clock_refused") == 1
    assert await gauge(roster, "cmcoord_roster_scan_clock_jump_seconds") == 800 * 24 * 3600

    # the operator confirms it (wrongly): false gap alerts go out, ends are marked
    await roster.parts.scan.run_pass(confirm_jump=True)
    assert await gauge(roster, "cmcoord_roster_scan_clock_refused") == 0
    confirmed = await published(bus, roster_settings)
    assert {k for k, _ in facts(confirmed, len(before))} == {"post.gapped"}

    # the clock is right again: what was announced for later days is taken back, nothing is said
    clock.set(at(t))
    await roster.parts.scan.run_pass()
    assert await published(bus, roster_settings) == confirmed

    # then day by day, as the service scans: each true end (and gap, and start) exactly once, on its day
    announced_on: dict[tuple[str, str], list[date]] = {}
    for day in range(1, 15):
        clock.set(at(t + timedelta(days=day)))
        seen = len(await published(bus, roster_settings))
        await roster.parts.scan.run_pass()
        for fact in facts(await published(bus, roster_settings), seen):
            announced_on.setdefault(fact, []).append(t + timedelta(days=day))
    ids = await deployment_ids(roster_settings)
    awa, jean, somchai = ids["awa@ocha.example"], ids["jean@ocha.example"], ids["somchai@ocha.example"]
    assert announced_on[("deployment.ended", awa)] == [t + timedelta(days=4)]
    assert announced_on[("deployment.ended", jean)] == [t + timedelta(days=6)]
    assert announced_on[("deployment.started", somchai)] == [t + timedelta(days=6)]
    gaps = [k for k in announced_on if k[0] == "post.gapped"]
    assert len(gaps) == 1 and announced_on[gaps[0]] == [t + timedelta(days=4), t + timedelta(days=11)]  # #1, #2
    every = await published(bus, roster_settings)
    assert all(n == 1 for n in Counter(e.id for e in every).values())


async def deployment_ids(settings: Settings) -> dict[str, str]:
    """Each person's deployment id (one each here), by email."""
    db = Database(settings.db_url)
    try:
        async with db.read() as s:
            rows = (await s.exec(select(Deployment.id, Person.email).join(Person))).all()
    finally:
        await db.dispose()
    return {email: str(dep_id) for dep_id, email in rows}


async def test_a_clock_gone_back_announces_nothing_again(roster_settings: Settings, clock: ManualClock) -> None:
    t = clock.now().date()
    await import_text(small_roster(t), settings=roster_settings, clock=clock, publish=False)
    for day in range(1, 8):  # as the service does: no jump
        clock.set(at(t + timedelta(days=day)))
        await scan(roster_settings, clock, confirm_jump=False)
    stored = await outbox(roster_settings)
    for back in (6, 3, 0):
        clock.set(at(t + timedelta(days=back)))
        assert await scan(roster_settings, clock, confirm_jump=False) == []
    assert [e.id for e in await outbox(roster_settings)] == [e.id for e in stored]
    for day in range(1, 8):  # and forward again: all of it was said already
        clock.set(at(t + timedelta(days=day)))
        assert await scan(roster_settings, clock, confirm_jump=False) == []
    assert len(await outbox(roster_settings)) == len(stored)


async def test_the_cli_refuses_a_jump_unless_confirmed_and_a_confirmed_one_is_undone_by_the_true_clock(
    roster_settings: Settings, clock: ManualClock, bus: Bus
) -> None:
    t = clock.now().date()
    await import_text(small_roster(t), settings=roster_settings, clock=clock, publish=False)
    env = roster_env(roster_settings)
    code, out, err = await cli("roster", "scan", "--at", at(t).isoformat(), env=env)
    assert code == 0, err
    stored = await outbox(roster_settings)

    code, out, err = await cli("roster", "scan", "--at", at(t + timedelta(days=10)).isoformat(), env=env)
    assert code == 3 and "refused" in err and "240 h after the last scan" in err and "--confirm-jump" in err, err
    assert [e.id for e in await outbox(roster_settings)] == [e.id for e in stored]
    assert await last_scan_at(roster_settings) == at(t)

    # confirmed ten days ahead: the ends within them are announced early
    code, out, err = await cli("roster", "scan", "--at", at(t + timedelta(days=10)).isoformat(), "--confirm-jump",
                               env=env)
    assert code == 0 and "roster.deployment.ended" in out, (out, err)
    early = [e for e in await outbox(roster_settings) if e.type == "roster.deployment.ended"]
    assert len(early) == 2

    # back to the true day: taken back; on the day after Awa's end it is announced again, as a new message
    code, out, err = await cli("roster", "scan", "--at", at(t).isoformat(), env=env)
    assert code == 0 and "nothing to announce" in out and "taken back" in out, (out, err)
    for day in (2, 4):  # within the margin each time
        code, out, err = await cli("roster", "scan", "--at", at(t + timedelta(days=day)).isoformat(), env=env)
        assert code == 0, err
    ended = [e for e in await outbox(roster_settings) if e.type == "roster.deployment.ended"]
    awa = early[0].data["deployment_id"] if early[0].data["ended_on"] == str(t + timedelta(days=3)) else \
        early[1].data["deployment_id"]
    again = [e for e in ended[2:] if e.data["deployment_id"] == awa]
    assert len(ended) == 3 and len(again) == 1 and again[0].id not in {e.id for e in early}
    in_stream = await stream_events(bus.js, "ROSTER", type_prefix="roster.deployment.ended")
    assert again[0].id in {e.id for e in in_stream}
