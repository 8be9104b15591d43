"""`cmcoord lessons ...` through the real command: review steps, search and export as each
viewer, the digest's and the figures' numbers against the data, AARs requested for an operation."""

import csv
import io
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from services.lessons import handlers, store
from services.lessons.duties import DutyPolicy
from services.lessons.models import Aar
from services.roster.bootstrap import RosterApp
from shared import events
from shared.clock import ManualClock
from shared.natsserver import NatsServer
from shared.store import Database
from tests.helpers import cli, service_env

ADVISER_REGION = "ROWCA"
AUTHOR = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
REPORTS = [  # reference, country, themes, classification, day (2026), text
    ("R-CLI00001", "ML", ["access"], "public", date(2026, 7, 2), "Convoys notified ahead were turned back at the "
                                                                  "Mopti bridge checkpoint"),
    ("R-CLI00002", "NE", ["access"], "community", date(2026, 7, 20), "A checkpoint near Niamey turned back "
                                                                       "notified convoys again"),
    ("R-CLI00003", "TD", ["access"], "restricted", date(2026, 8, 5), "Checkpoint commanders in Abeche turned back "
                                                                      "notified convoys"),
    ("R-CLI00004", "BF", ["access", "hns4d"], "community", date(2026, 9, 1), "Notified convoys were turned back "
                                                                               "at a checkpoint near Djibo"),
    ("R-CLI00005", "TH", ["natural_disasters"], "public", date(2026, 9, 9), "Military helicopters evacuated "
                                                                              "flooded villages as a last resort"),
    ("R-CLI00006", "PH", ["training"], "restricted", date(2026, 4, 1), "Staff had no training on the guidelines"),
]


@pytest.fixture
async def home(tmp_path: Path) -> Path:
    """A lessons store with six reports (of every classification) and AARs due in 2026 Q3."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'home' / 'lessons.db'}")
    await store.prepare(db)
    for ref, country, themes, classification, day, text in REPORTS:
        clock = ManualClock(datetime(day.year, day.month, day.day, 9, tzinfo=UTC))
        async with db.unit_of_work(source="test", clock=clock) as uow:
            await handlers.record_report(uow, events.ReportSubmitted(
                report_id=uuid.uuid4(), reference=ref, person_id=AUTHOR, text=text, country=country, themes=themes,
                classification=classification, submitted_at=clock.now()), threshold=0.3)  # type: ignore[arg-type]
    aars = [  # country, due, submitted on
        ("ML", date(2026, 7, 10), date(2026, 7, 8)), ("NE", date(2026, 7, 15), date(2026, 7, 25)),
        ("TD", date(2026, 8, 1), None), ("SN", date(2026, 9, 20), date(2026, 10, 20)),
        ("TH", date(2026, 8, 15), None), ("ML", date(2026, 10, 15), None)]  # the last one is due in Q4
    clock = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))
    async with db.unit_of_work(source="test", clock=clock) as uow:
        for i, (country, due, submitted) in enumerate(aars):
            aar = await handlers.expect_aar(uow, aar_id=uuid.uuid4(), person_id=uuid.UUID(int=i + 1), country=country,
                                         due_on=due, policy=DutyPolicy())
            assert aar is not None
            if submitted is not None:
                aar.state, aar.submitted_at = "submitted", datetime(submitted.year, submitted.month, submitted.day,
                                                                    tzinfo=UTC)
    await db.dispose()
    return tmp_path / "home"


def env(home: Path, nats_url: str = "nats://127.0.0.1:1") -> dict[str, str]:
    return service_env(home, nats_url, CMCOORD_LESSONS_REVIEWER="maria@ocha.example")


async def lessons(home: Path, *args: str) -> tuple[int, str, str]:
    return await cli("lessons", *args, env=env(home))


async def test_review_lists_new_items_with_the_earlier_ones_they_resemble_then_promotes(home: Path) -> None:
    code, out, err = await lessons(home, "review")
    assert code == 0, err
    assert out.count("resembles") >= 3 and "resembles R-CLI00001" in out  # the Mopti problem came back elsewhere
    for args in (("tag", "R-CLI00002", "hns4d"), ("identify", "R-CLI00002", "--note", "three countries"),
                 ("learn", "R-CLI00002", "--action", "Notification guidance now asks for checkpoint copies"),
                 ("merge", "R-CLI00004", "--into", "R-CLI00002")):
        code, out, err = await lessons(home, "review", *args)
        assert code == 0, err
    code, _, err = await lessons(home, "review", "learn", "R-CLI00001", "--action", "x")
    assert code == 1 and "only a lesson identified" in err
    code, out, err = await lessons(home, "review", "show", "R-CLI00002")
    assert code == 0, err
    assert "learned" in out and "Action taken: Notification guidance" in out
    assert [line.split(" by ")[0][17:] for line in out.splitlines() if " by maria@ocha.example" in line] == [
        "tagged", "identified", "learned"]
    code, out, _ = await lessons(home, "search", "convoys", "--as", "desk")
    assert "R-CLI00004" not in out and "3 found" in out  # merged away


@pytest.mark.parametrize(("viewer", "visible"), [
    ("public", {"R-CLI00001", "R-CLI00005"}),
    ("community", {"R-CLI00001", "R-CLI00002", "R-CLI00004", "R-CLI00005"}),
    (f"adviser:{ADVISER_REGION}", {"R-CLI00001", "R-CLI00002", "R-CLI00003", "R-CLI00004", "R-CLI00005"}),
    (f"person:{AUTHOR}", {r[0] for r in REPORTS}),
    ("desk", {r[0] for r in REPORTS}),
])
async def test_export_and_search_show_each_viewer_what_it_may_read(home: Path, viewer: str, visible: set[str]) -> None:
    code, out, err = await lessons(home, "export", "--as", viewer, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["reference"] for r in rows} == visible
    assert all(r["body"] for r in rows)
    code, out, err = await lessons(home, "search", "--as", viewer, "--limit", "50")
    assert code == 0 and f"{len(visible)} found" in out


async def test_search_filters_and_refusals(home: Path) -> None:
    code, out, _ = await lessons(home, "search", "checkpoint", "--as", "desk", "--region", "ROWCA", "--theme", "hns4d",
                                 "--period", "2026Q3")
    assert code == 0 and "1 found" in out and "R-CLI00004" in out
    code, out, _ = await lessons(home, "search", "--as", "desk", "--country", "Thailand")
    assert "1 found" in out and "R-CLI00005" in out
    for bad in (("--theme", "gardening"), ("--period", "last summer"), ("--as", "admin")):
        code, _, err = await lessons(home, "search", *bad)
        assert code == 2 and ("unknown" in err or "not a period" in err)


async def test_the_digest_counts_what_the_data_holds(home: Path, tmp_path: Path) -> None:
    code, _, err = await lessons(home, "digest", "--quarter", "2026Q3", "--out", str(tmp_path / "out"))
    assert code == 0, err
    markdown = (tmp_path / "out" / "cmcoord-digest-2026Q3.md").read_text()
    html = (tmp_path / "out" / "cmcoord-digest-2026Q3.html").read_text()
    # Q3: four shareable reports (R-CLI00003 is restricted; R-CLI00006 is from Q2)
    assert "- New lessons: 4\n- Field observations: 4\n- After action reviews: 0\n" in markdown
    assert "### Access (3)" in markdown and "R-CLI00003" not in markdown and "R-CLI00003" not in html
    assert "| West and Central Africa | 3 | 0 |" in markdown and "| Asia and the Pacific | 1 | 0 |" in markdown
    # AARs due in Q3, ROWCA: ML (on time), NE (10 d late), TD (open), SN (submitted in Q4): 3 of 4, 1 overdue
    assert "| West and Central Africa | 4 | 3 | 75% | 1 |" in markdown
    assert "| Asia and the Pacific | 1 | 0 | 0% | 1 |" in markdown
    assert "- Recurring: Access, raised in 3 countries" in markdown  # ML, NE, BF (TD's is restricted)
    assert "<table>" in html and "<h1>CMCoord lessons digest, 2026 Q3</h1>" in html
    # the same figures in French and in Arabic, beside it
    french = (tmp_path / "out" / "cmcoord-digest-2026Q3.fr.md").read_text()
    assert "- Nouveaux enseignements : 4\n" in french and "### Accès (3)" in french
    assert "| Afrique de l’Ouest et du Centre | 4 | 3 | 75\u00a0% | 1 |" in french
    arabic = (tmp_path / "out" / "cmcoord-digest-2026Q3.ar.html").read_text()
    assert '<html lang="ar" dir="rtl">' in arabic and "<h3>الوصول (3)</h3>" in arabic


async def test_figures_per_region_and_quarter(home: Path) -> None:
    code, out, err = await lessons(home, "stats", "--period", "2026", "--format", "json")
    assert code == 0, err
    rows = {(r["quarter"], r["region"]): r for r in json.loads(out)}
    rowca = rows[("2026 Q3", "ROWCA")]
    assert (rowca["due"], rowca["submitted"], rowca["overdue"], rowca["completion_rate"]) == (4, 3, 1, 0.75)
    assert rows[("2026 Q4", "ROWCA")]["due"] == 1
    code, out, _ = await lessons(home, "stats", "--period", "2026")
    assert "2026 Q3  ROWCA      4    3   75%       1" in out


async def test_cmcs_requests_aars_for_an_operation(home: Path, roster: RosterApp, nats_server: NatsServer,
                                                   people: dict[str, uuid.UUID]) -> None:
    args = ("aar", "request", "--country", "Mali", "--operation", "Mopti floods response", "--due", "2026-12-15")
    code, _, err = await cli("lessons", *args, "--people", "awa@ocha.example,nobody@example.org",
                             env=env(home, nats_server.url))
    assert code == 1 and "nobody@example.org" in err
    code, out, err = await cli("lessons", *args, "--people", "awa@ocha.example, jean@ocha.example",
                               env=env(home, nats_server.url))
    assert code == 0 and "2 AAR(s) requested" in out, err
    code, out, err = await cli("lessons", *args, "--people", "awa@ocha.example", env=env(home, nats_server.url))
    assert code == 0 and "0 AAR(s) requested" in out and "1 already requested" in out
    db = Database(f"sqlite+aiosqlite:///{home / 'lessons.db'}")
    async with db.read() as session:
        from sqlmodel import select

        made = (await session.exec(select(Aar).where(Aar.operation == "Mopti floods response"))).all()
    await db.dispose()
    assert {(a.person_id, a.due_on, a.country, a.region, a.requested_by) for a in made} == {
        (people["awa@ocha.example"], date(2026, 12, 15), "ML", "ROWCA", "maria@ocha.example"),
        (people["jean@ocha.example"], date(2026, 12, 15), "ML", "ROWCA", "maria@ocha.example")}
    # who owes them, by name (the roster's); the officers it does not know keep their id
    code, out, err = await cli("lessons", "aar", "list", env=env(home, nats_server.url))
    assert code == 0, err
    mopti = [line for line in out.splitlines() if "Mopti floods response" in line]
    assert sorted(line.rsplit("  ", 1)[1] for line in mopti) == ["Awa Traoré", "Jean Ndiaye"]
    assert any(line.endswith(f"  {uuid.UUID(int=3)}") for line in out.splitlines())  # TD's, not on this roster
    code, out, err = await cli("lessons", "review", env=env(home, nats_server.url))
    assert code == 0 and f"R-CLI00001  [observation, new, public]  ML ROWCA  2026-07-02  by {AUTHOR}" in out, err


async def test_without_the_roster_ids_stand_in_for_names(home: Path) -> None:
    code, out, err = await lessons(home, "aar", "list")
    assert code == 0 and f"  {uuid.UUID(int=3)}" in out
    assert "names not shown: NATS not reachable" in err
