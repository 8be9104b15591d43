"""Regional call schedules as the CMCS desk and a chair manage them (`cmcoord calls`), and the
calendar feed officers subscribe to (notify's HTTP endpoint)."""

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import aiohttp
import icalendar
import recurring_ical_events

from services.notify import bootstrap as notify_bootstrap
from services.notify.config import Settings as NotifySettings
from services.notify.schedule import Change, Occurrence, default_schedules, occurrences
from shared.natsserver import NatsServer, free_port
from tests.helpers import cli, service_env


def _expanded(ics: bytes, after: datetime, before: datetime) -> list[datetime]:
    calendar = icalendar.Calendar.from_ical(ics)
    return sorted(e["DTSTART"].dt.astimezone(UTC) for e in recurring_ical_events.of(calendar).between(after, before))


async def test_a_region_s_call_set_cancelled_moved_and_exported(tmp_path: Path) -> None:
    env = service_env(tmp_path / "home", "nats://127.0.0.1:1")  # no NATS needed: notify's store only
    code, out, err = await cli("calls", "set", "roap", "--time", "14:30", "--link", "https://meet.example/roap",
                               "--chair", "Jean@OCHA.example", env=env)
    assert code == 0, err
    assert "14:30 Asia/Bangkok" in out and "chair jean@ocha.example" in out

    now = datetime.now(UTC)
    (roap,) = [s for s in default_schedules() if s.region == "ROAP"]
    roap = replace(roap, local_time=time(14, 30))
    first, second, third, *_ = occurrences(roap, [], after=now + timedelta(days=1), before=now + timedelta(days=90))

    def day(o: Occurrence) -> str:
        return str(o.start.astimezone(roap.zone).date())

    new_start = (third.start + timedelta(days=1)).astimezone(roap.zone).replace(hour=9, minute=0)

    code, out, err = await cli("calls", "cancel", "ROAP", day(second), env=env)
    assert code == 0 and out.startswith("cancelled: ROAP call of"), err
    code, _, err = await cli("calls", "cancel", "ROAP", day(second), env=env)
    assert code == 1 and "already cancelled" in err
    code, _, err = await cli("calls", "cancel", "ROAP", str(first.start.date() + timedelta(days=1)), env=env)
    assert code == 1 and "no ROAP call on" in err
    code, out, err = await cli("calls", "move", "ROAP", day(third), new_start.strftime("%Y-%m-%dT%H:%M"), env=env)
    assert code == 0 and out.startswith("moved:"), err

    feed = tmp_path / "roap.ics"
    code, _, err = await cli("calls", "ics", "ROAP", "--out", str(feed), env=env)
    assert code == 0, err
    expected = occurrences(roap, [Change(second.original), Change(third.original, moved_to=new_start.astimezone(UTC))],
                           after=now, before=now + timedelta(days=90))
    assert _expanded(feed.read_bytes(), now, now + timedelta(days=90)) == [o.start for o in expected]
    assert second.start not in [o.start for o in expected] and new_start in [o.start for o in expected]

    code, _, err = await cli("calls", "set", "ROAP", "--tz", "Mars/Olympus_Mons", env=env)
    assert code == 1 and "unknown time zone" in err
    code, out, _ = await cli("calls", "list", env=env)
    assert code == 0 and len(out.splitlines()) == 6 and "14:30 Asia/Bangkok" in out


async def test_notify_serves_each_region_s_calendar(tmp_path: Path, nats_server: NatsServer) -> None:
    app = notify_bootstrap.build(NotifySettings(home=tmp_path / "notify", nats_url=nats_server.url,
                                                health_port=free_port()))
    await app.start()
    try:
        assert app.health is not None
        base = f"http://127.0.0.1:{app.health.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/calls/rowca.ics") as resp:
                assert resp.status == 200 and resp.content_type == "text/calendar"
                body = await resp.read()
            async with http.get(f"{base}/calls/narnia.ics") as resp:
                assert resp.status == 404
        now = datetime.now(UTC)
        (rowca,) = [s for s in default_schedules() if s.region == "ROWCA"]
        starts = _expanded(body, now, now + timedelta(days=365))
        assert starts == [o.start for o in occurrences(rowca, [], after=now, before=now + timedelta(days=365))]
        assert len(starts) in (26, 27)
    finally:
        await app.stop()
