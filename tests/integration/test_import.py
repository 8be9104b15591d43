"""Import against a real SQLite file: all or nothing, idempotent, HXL."""

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from services.roster import store as roster_store
from services.roster.admin import import_text
from services.roster.config import Settings
from services.roster.importer import RosterFileError
from services.roster.models import Person
from services.roster.samples import generate
from shared.clock import ManualClock
from shared.events import Envelope
from shared.store import Database, OutboxMessage
from tests.integration.roster_db import counts, outbox

# The store is under test here: run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

HEADER = "name,email,organisation,country,duty_station,post_title,role,start,planned_end,actual_end\n"


@pytest.fixture(params=["written-directly", "staged"])
def written(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the import writes a plan: the sample's (a few hundred rows) straight into the tables, or
    through the staging tables as a large file's is (store.DIRECT_WRITE_ROWS)."""
    if request.param == "staged":
        monkeypatch.setattr(roster_store, "DIRECT_WRITE_ROWS", -1)
    return str(request.param)


async def test_sample_roster_imports_and_announces(roster_settings: Settings, clock: ManualClock,
                                                   written: str) -> None:
    text = generate(people=60, today=clock.now().date())
    changes, errors, _ = await import_text(text, settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    assert sum(c.kind == "new_person" for c in changes) == 60
    assert await counts(roster_settings) == (60, 60)
    events = await outbox(roster_settings)
    types = [e.type for e in events]
    assert types.count("roster.person.changed") == 60
    assert types.count("roster.deployment.assigned") == 60
    assert types.count("roster.deployment.ending_soon") >= 5  # the sample has people leaving within two weeks
    assert types.count("roster.post.gapped") >= 5


async def test_reimport_changes_nothing_and_announces_nothing(roster_settings: Settings, clock: ManualClock,
                                                              written: str) -> None:
    text = generate(people=60, today=clock.now().date())
    await import_text(text, settings=roster_settings, clock=clock, publish=False)
    before = await outbox(roster_settings)
    changes, errors, _ = await import_text(text, settings=roster_settings, clock=clock, publish=False)
    assert (changes, errors) == ([], [])
    assert await outbox(roster_settings) == before
    assert await counts(roster_settings) == (60, 60)


async def test_a_file_with_bad_rows_writes_nothing(roster_settings: Settings, clock: ManualClock) -> None:
    text = HEADER + (
        "Good One,good@ocha.example,OCHA,ML,Bamako,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,\n"
        "Bad Country,bad@ocha.example,OCHA,Narnia,Cair,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,\n"
        "Good Two,good2@ocha.example,OCHA,NE,Niamey,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,\n"
    )
    changes, errors, _ = await import_text(text, settings=roster_settings, clock=clock, publish=False)
    assert changes == [] and [e.line for e in errors] == [3]
    assert await counts(roster_settings) == (0, 0)
    assert await outbox(roster_settings) == []


async def test_overlap_with_a_stored_deployment_writes_nothing(roster_settings: Settings, clock: ManualClock) -> None:
    first = HEADER + "Ana Rojas,ana@ocha.example,OCHA,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,\n"
    assert (await import_text(first, settings=roster_settings, clock=clock, publish=False))[1] == []
    second = HEADER + (
        "Ana Rojas,ana@ocha.example,OCHA,VE,Caracas,CMCoord Officer,cmcoord_officer,2026-06-01,2026-12-31,\n"
        "New Person,new@ocha.example,OCHA,HT,Port-au-Prince,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,\n"
    )
    changes, errors, _ = await import_text(second, settings=roster_settings, clock=clock, publish=False)
    assert len(errors) == 1 and errors[0].line == 2 and "overlaps the stored deployment in CO" in errors[0].message
    assert await counts(roster_settings) == (1, 1)


async def test_moving_a_stored_deployment_in_the_same_file_is_allowed(roster_settings: Settings, clock: ManualClock) -> None:
    first = HEADER + "Ana Rojas,ana@ocha.example,OCHA,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,\n"
    await import_text(first, settings=roster_settings, clock=clock, publish=False)
    second = HEADER + (
        "Ana Rojas,ana@ocha.example,OCHA,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,2026-05-15\n"
        "Ana Rojas,ana@ocha.example,OCHA,VE,Caracas,CMCoord Officer,cmcoord_officer,2026-06-01,2026-12-31,\n"
    )
    changes, errors, _ = await import_text(second, settings=roster_settings, clock=clock, publish=False)
    assert errors == []
    assert [c.kind for c in changes] == ["ended_deployment", "new_deployment"]


async def test_dry_run_reports_and_writes_nothing(roster_settings: Settings, clock: ManualClock) -> None:
    text = HEADER + "Ana Rojas,ana@ocha.example,OCHA,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,\n"
    changes, errors, _ = await import_text(text, settings=roster_settings, clock=clock, dry_run=True, publish=False)
    assert errors == [] and [c.kind for c in changes] == ["new_person", "new_deployment"]
    assert await counts(roster_settings) == (0, 0)
    await import_text(text, settings=roster_settings, clock=clock, publish=False)
    changed = text.replace("2026-06-30", "2026-08-31").replace("OCHA,CO", "UNOCHA,CO")
    changes, _, _ = await import_text(changed, settings=roster_settings, clock=clock, dry_run=True, publish=False)
    assert [(c.kind, c.detail) for c in changes] == [
        ("changed_person", "organisation"),
        ("changed_deployment", "planned end 2026-06-30 -> 2026-08-31"),
    ]


async def test_hxl_file_imports(roster_settings: Settings, clock: ManualClock, tmp_path: Path) -> None:
    today = clock.now().date()
    text = (
        "#contact+name,#contact+email,#org,#country+code,#loc,#meta+post,#meta+role,#date+start,#date+end\n"
        f"Leila Nasser,leila@ocha.example,OCHA,YEM,Aden,CMCoord Officer,cmcoord_officer,{today - timedelta(days=10)},"
        f"{today + timedelta(days=100)}\n"
    )
    changes, errors, _ = await import_text(text, settings=roster_settings, clock=clock, publish=False)
    assert errors == [] and len(changes) == 2
    assigned = await outbox(roster_settings, type_prefix="roster.deployment.assigned")
    assert assigned[0].data["country"] == "YE" and assigned[0].data["region"] == "ROMENA"
    started = await outbox(roster_settings, type_prefix="roster.deployment.started")
    assert len(started) == 1


# --- issue 16: an import that never corrupts ------------------------------------------------

FULL = "name,email,phone,telegram,organisation,country,duty_station,post_title,role,start,planned_end\n"
ANA = "Ana Rojas,ana@ocha.example,+57 1 555,anarojas,OCHA,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30"


async def stored_people(settings: Settings) -> dict[str, Person]:
    db = Database(settings.db_url)
    try:
        async with db.read() as session:
            return {p.email: p for p in (await session.exec(select(Person))).all()}
    finally:
        await db.dispose()


async def test_two_people_with_one_email_write_nothing(roster_settings: Settings, clock: ManualClock) -> None:
    text = FULL + ANA + "\n" + (
        "Ana Ruiz,Ana@OCHA.example,+58 2,,WFP,VE,Caracas,Focal Point,focal_point,2026-07-01,2026-12-31\n")
    changes, errors, _ = await import_text(text, settings=roster_settings, clock=clock, publish=False)
    assert changes == [] and [e.line for e in errors] == [3]
    assert "is also on line 2, for another person (name 'Ana Rojas' there, 'Ana Ruiz' here" in errors[0].message
    assert await counts(roster_settings) == (0, 0) and await outbox(roster_settings) == []


async def test_a_column_the_file_lacks_leaves_that_field_alone(roster_settings: Settings, clock: ManualClock) -> None:
    assert (await import_text(FULL + ANA + "\n", settings=roster_settings, clock=clock, publish=False))[1] == []
    dates_only = ("name,email,country,duty_station,post_title,role,start,planned_end\n"
                  "Ana Rojas,ana@ocha.example,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-09-30\n")
    changes, errors, _ = await import_text(dates_only, settings=roster_settings, clock=clock, publish=False)
    assert errors == [] and [(c.kind, c.detail) for c in changes] == [
        ("changed_deployment", "planned end 2026-06-30 -> 2026-09-30")]
    ana = (await stored_people(roster_settings))["ana@ocha.example"]
    assert (ana.phone, ana.telegram_username, ana.organisation) == ("+57 1 555", "anarojas", "OCHA")
    # an empty cell in a column the file has clears the field
    cleared = "name,email,phone,telegram\nAna Rojas,ana@ocha.example,,anarojas\n"
    changes, errors, _ = await import_text(cleared, settings=roster_settings, clock=clock, publish=False)
    assert errors == [] and [(c.kind, c.detail) for c in changes] == [("changed_person", "phone")]
    ana = (await stored_people(roster_settings))["ana@ocha.example"]
    assert (ana.phone, ana.telegram_username, ana.organisation) == ("", "anarojas", "OCHA")


def _xlsx(rows: list[list[object]]) -> bytes:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


HEADER_CELLS = ["name", "email", "organisation", "country", "duty_station", "post_title", "role", "start",
                "planned_end"]
ROW_CELLS = ["Hélène Müller", "helene@ocha.example", "Équipe Genève", "CH", "Genève", "CMCS Desk Officer", "desk",
             "2026-01-05", "2026-12-31"]


@pytest.mark.parametrize("kind", ["cp1252 ;", "utf-16 tab", "utf-8-sig ,", "xlsx"])
async def test_files_as_excel_saves_them_import(roster_settings: Settings, clock: ManualClock, kind: str) -> None:
    if kind == "xlsx":
        data = _xlsx([["CMCS desk roster"], HEADER_CELLS,
                      [*ROW_CELLS[:7], date(2026, 1, 5), datetime(2026, 12, 31)]])
    else:
        encoding, delimiter = kind.split()
        sep = {";": ";", "tab": "\t", ",": ","}[delimiter]
        data = "".join(sep.join(cells) + "\r\n" for cells in (HEADER_CELLS, ROW_CELLS)).encode(encoding)
    changes, errors, _ = await import_text(data, settings=roster_settings, clock=clock, publish=False,
                                           filename=f"roster.{'xlsx' if kind == 'xlsx' else 'csv'}")
    assert errors == [] and [c.kind for c in changes] == ["new_person", "new_deployment"]
    helene = (await stored_people(roster_settings))["helene@ocha.example"]
    assert (helene.name, helene.organisation) == ("Hélène Müller", "Équipe Genève")
    assigned = await outbox(roster_settings, type_prefix="roster.deployment.assigned")
    assert (assigned[0].data["role"], assigned[0].data["start"]) == ("cmcs_desk", "2026-01-05")


async def test_hxl_under_title_rows_imports(roster_settings: Settings, clock: ManualClock) -> None:
    text = ("CMCoord officers — export of 2 March 2026\n\nName,E-mail,Agency,Country,Station,Post,Role,From,To\n"
            "#contact+name,#contact+email,#org,#country+code,#loc,#meta+post,#meta+role,#date+start,#date+end\n"
            "Leila Nasser,leila@ocha.example,OCHA,YEM,Aden,CMCoord Officer,cmcoord_officer,2026-01-01,2026-09-30\n")
    changes, errors, _ = await import_text(text.encode(), settings=roster_settings, clock=clock, publish=False)
    assert errors == [] and len(changes) == 2
    assert await counts(roster_settings) == (1, 1)


async def test_an_unclosed_quote_writes_nothing(roster_settings: Settings, clock: ManualClock) -> None:
    text = FULL + ANA + "\n" + 'Jorge,"jorge@wfp.example,,,WFP,CO,Bogotá,Focal Point,focal_point,2026-01-01,2026-06-30\n'
    with pytest.raises(RosterFileError, match=r"^line 3: the quoted field .* never closed .*\(column B\)$"):
        await import_text(text.encode(), settings=roster_settings, clock=clock, publish=False)
    assert await counts(roster_settings) == (0, 0)


async def test_outbox_rows_are_the_event_contract(roster_settings: Settings, clock: ManualClock) -> None:
    """The import writes its payloads without a pydantic model per event: each must be
    exactly what Envelope.wrap would have written, and decode."""
    await import_text(generate(people=60, today=clock.now().date()), settings=roster_settings, clock=clock,
                      publish=False)
    db = Database(roster_settings.db_url)
    try:
        async with db.read() as session:
            rows = (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.seq)))).all()
    finally:
        await db.dispose()
    assert len(rows) > 140
    for row in rows:
        envelope = Envelope.from_bytes(row.payload)
        rewrapped = Envelope.wrap(envelope.decode(), source=envelope.source, occurred_at=envelope.occurred_at,
                                  id=envelope.id)
        assert rewrapped.to_bytes() == row.payload and row.subject == envelope.subject
