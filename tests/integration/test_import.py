"""Import against a real SQLite file: all or nothing, idempotent, HXL."""

from datetime import timedelta
from pathlib import Path

import pytest

from services.roster.cli import import_text
from services.roster.config import Settings
from services.roster.samples import generate
from shared.clock import ManualClock
from tests.integration.roster_db import counts, outbox

# The store is under test here: run on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

HEADER = "name,email,organisation,country,duty_station,post_title,role,start,planned_end,actual_end\n"


async def test_sample_roster_imports_and_announces(roster_settings: Settings, clock: ManualClock) -> None:
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


async def test_reimport_changes_nothing_and_announces_nothing(roster_settings: Settings, clock: ManualClock) -> None:
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
