from datetime import date

import pytest

from services.roster.importer import RosterFileError, parse_roster

HEADER = "name,email,phone,organisation,country,duty_station,post_title,role,start,planned_end,hats,trainings\n"


def test_good_rows_parse_with_defaults() -> None:
    text = HEADER + (
        "Aminata Diallo,A.Diallo@ocha.example,+223 1,OCHA,Mali,Bamako,CMCoord Officer,CMCoord officer,"
        "2026-01-01,2026-06-30,Access focal point;HNS4D focal point,UN-CMCoord Course@2024-02-01\n"
        "Jorge Rojas,jorge@wfp.example,,WFP,,,,,,,,\n"
    )
    parsed = parse_roster(text)
    assert parsed.errors == [] and not parsed.hxl
    first, second = parsed.rows
    assert first.person.email == "a.diallo@ocha.example"
    assert first.deployment is not None
    assert (first.deployment.country, first.deployment.region, first.deployment.role) == ("ML", "ROWCA", "cmcoord_officer")
    assert first.deployment.hats == ("Access focal point", "HNS4D focal point")
    assert first.trainings == (("UN-CMCoord Course", date(2024, 2, 1)),)
    assert second.deployment is None


def test_every_bad_row_is_reported_with_its_line() -> None:
    text = HEADER + (
        "Ok Person,ok@ocha.example,,OCHA,ML,Bamako,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,,\n"
        "No Country,nc@ocha.example,,OCHA,Atlantis,Nowhere,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,,\n"
        "Backwards,bw@ocha.example,,OCHA,NE,Niamey,CMCoord Officer,cmcoord_officer,2026-06-01,2026-01-30,,\n"
        "Bad Mail,not-an-email,,OCHA,,,,,,,,\n"
        "Bad Date,bd@ocha.example,,OCHA,NE,Niamey,CMCoord Officer,cmcoord_officer,01/02/2026,2026-09-30,,\n"
        "Bad Role,br@ocha.example,,OCHA,NE,Niamey,CMCoord Officer,general,2026-01-01,2026-09-30,,\n"
    )
    parsed = parse_roster(text)
    by_line = {e.line: e.message for e in parsed.errors}
    assert set(by_line) == {3, 4, 5, 6, 7}
    assert "unknown country 'Atlantis'" in by_line[3]
    assert "before start" in by_line[4]
    assert "bad email" in by_line[5]
    assert "not a date" in by_line[6]
    assert "unknown role" in by_line[7]


def test_overlapping_deployments_of_one_person_are_refused() -> None:
    text = HEADER + (
        "Twice,t@ocha.example,,OCHA,ML,Bamako,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30,,\n"
        "Twice,t@ocha.example,,OCHA,NE,Niamey,CMCoord Officer,cmcoord_officer,2026-06-30,2026-12-31,,\n"
        "Twice,t@ocha.example,,OCHA,TD,N'Djamena,CMCoord Officer,cmcoord_officer,2027-01-01,2027-06-30,,\n"
    )
    parsed = parse_roster(text)
    assert [(e.line, "overlaps line 2" in e.message) for e in parsed.errors] == [(3, True)]


def test_hxl_hashtag_row_maps_columns() -> None:
    text = (
        "Name,Email,Agency,Country,Station,Post,Role,From,To,Left,Hats\n"
        "#contact+name,#contact+email,#org+name,#country+code,#loc+name,#meta+post,#meta+role,#date+start,"
        "#date+end,#date+end+actual,#meta+hats\n"
        "Nadia Haddad,nadia@ocha.example,OCHA,SYR,Damascus,CMCoord Officer,cmcoord_officer,2025-01-01,2025-12-31,"
        "2025-11-15,Access focal point\n"
    )
    parsed = parse_roster(text)
    assert parsed.hxl and parsed.errors == []
    d = parsed.rows[0].deployment
    assert d is not None
    assert (d.country, d.region, d.planned_end, d.actual_end) == ("SY", "ROMENA", date(2025, 12, 31), date(2025, 11, 15))
    assert parsed.rows[0].person.organisation == "OCHA"


def test_missing_required_columns_is_a_file_error() -> None:
    with pytest.raises(RosterFileError, match="email"):
        parse_roster("name,phone\nA,1\n")


def test_a_deployment_needs_all_its_fields() -> None:
    parsed = parse_roster(HEADER + "Half,h@ocha.example,,OCHA,ML,,,,,,,\n")
    assert "needs duty_station, post_title, role, start, planned_end" in parsed.errors[0].message
