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


# --- issue 16: an import that never corrupts ------------------------------------------------

DEPLOYMENT = "country,duty_station,post_title,role,start,planned_end"
ROW_ANA = "Ana Rojas,ana@ocha.example,+57 1,OCHA,CO,Bogotá,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30"


def test_one_email_for_two_people_names_both_rows_and_merges_nothing() -> None:
    text = (f"name,email,phone,organisation,{DEPLOYMENT}\n{ROW_ANA}\n"
            "Ana Ruiz,ANA@ocha.example,+57 2,OCHA,VE,Caracas,CMCoord Officer,cmcoord_officer,2026-07-01,2026-12-31\n")
    parsed = parse_roster(text)
    assert [str(e) for e in parsed.errors] == [
        "line 3: e-mail 'ANA@ocha.example' is also on line 2, for another person (name 'Ana Rojas' there, "
        "'Ana Ruiz' here; phone '+57 1' there, '+57 2' here): one e-mail is one person — correct one of the two "
        "rows (column B, email)"
    ]


def test_rows_of_one_person_with_the_same_details_are_their_deployments() -> None:
    text = (f"name,email,phone,organisation,{DEPLOYMENT}\n{ROW_ANA}\n"
            "Ana Rojas,Ana@OCHA.example,+57 1,OCHA,VE,Caracas,CMCoord Officer,cmcoord_officer,2026-07-01,2026-12-31\n")
    parsed = parse_roster(text)
    assert parsed.errors == [] and [r.person.email for r in parsed.rows] == ["ana@ocha.example"] * 2


def test_absent_columns_are_none_and_empty_cells_are_empty() -> None:
    parsed = parse_roster(f"name,email,phone,{DEPLOYMENT}\nAna,ana@ocha.example,,CO,Bogotá,Officer,surge,"
                          "2026-01-01,2026-06-30\n")
    person, dep = parsed.rows[0].person, parsed.rows[0].deployment
    assert (person.phone, person.telegram_username, person.organisation, person.languages) == ("", None, None, None)
    assert dep is not None and dep.hats is None and not dep.actual_end_given and not dep.region_given
    assert parsed.columns == ("name", "email", "phone", "country", "duty_station", "post_title", "role", "start",
                              "planned_end")


ACCENTED = "name,email,organisation\nHélène Müller,helene@ocha.example,Équipe Genève\n"


@pytest.mark.parametrize(("data", "encoding"), [
    (ACCENTED.encode("utf-8"), "UTF-8"),
    (b"\xef\xbb\xbf" + ACCENTED.encode("utf-8"), "UTF-8 with BOM"),
    (ACCENTED.encode("cp1252"), "cp1252"),
    (ACCENTED.encode("utf-16"), "UTF-16"),
])
def test_encodings_excel_writes_are_detected(data: bytes, encoding: str) -> None:
    parsed = parse_roster(data)
    assert parsed.encoding == encoding and parsed.errors == []
    assert (parsed.rows[0].person.name, parsed.rows[0].person.organisation) == ("Hélène Müller", "Équipe Genève")


def test_bytes_neither_utf8_nor_cp1252_name_their_line() -> None:
    with pytest.raises(RosterFileError) as raised:
        parse_roster(b"name,email\nA,a@ocha.example\nB\x81,b@ocha.example\n")
    assert str(raised.value) == ("line 3: bytes 81 2c 62 40 (at byte 29) are not valid cp1252: save the file as CSV "
                                 "UTF-8, or as an Excel workbook (.xlsx)")


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_files_are_read(delimiter: str) -> None:
    rows = [["name", "email", "organisation", "hats", *DEPLOYMENT.split(",")],
            ["Awa Traoré", "awa@ocha.example", "OCHA, Mali", "Access;HNS4D", "ML", "Bamako", "CMCoord Officer",
             "cmcoord_officer", "2026-01-01", "2026-06-30"]]
    text = "\n".join(delimiter.join(f'"{c}"' if delimiter in c else c for c in row) for row in rows) + "\n"
    parsed = parse_roster(text.encode("cp1252"))
    assert parsed.delimiter == delimiter and parsed.errors == []
    row = parsed.rows[0]
    assert (row.person.organisation, row.deployment.hats) == ("OCHA, Mali", ("Access", "HNS4D"))  # type: ignore[union-attr]


def test_a_file_with_no_known_header_says_what_it_read() -> None:
    with pytest.raises(RosterFileError) as raised:
        parse_roster("nom;courriel;tél\nA;b@ocha.example;1\n".encode("cp1252"))
    assert str(raised.value) == (
        "missing required column(s): name, email — no row of the first 25 names both name and email, nor is an HXL "
        "hashtag row (line 1, cells separated by ';': 'nom;courriel;tél')")


def test_xlsx_is_read_with_dates_and_numbers_as_text() -> None:
    import io

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Roster of CMCoord officers, March 2026"])
    sheet.append([])
    sheet.append(["Name", "E-mail", "Phone", "Country", "Duty station", "Post title", "Role", "Start", "Planned end"])
    sheet.append(["Awa Traoré", "awa@ocha.example", 22370000001, "Mali", "Bamako", "CMCoord Officer", "officer",
                  date(2026, 1, 5), date(2026, 7, 4)])
    buffer = io.BytesIO()
    book.save(buffer)
    parsed = parse_roster(buffer.getvalue(), filename="roster.xlsx")
    assert parsed.errors == [] and parsed.encoding == "xlsx"
    row = parsed.rows[0]
    assert (row.line, row.person.phone) == (4, "22370000001")
    assert row.deployment is not None and (row.deployment.start, row.deployment.planned_end) == (
        date(2026, 1, 5), date(2026, 7, 4))


def test_hxl_hashtags_under_title_rows_and_a_header() -> None:
    text = (
        "OCHA CMCS — roster of CMCoord officers,,,\n"
        "Exported 2026-03-01,,,\n"
        ",,,\n"
        "Name,Email,Agency,Country\n"
        "#contact+name,#contact+email,#org+name,#country+code\n"
        "Nadia Haddad,nadia@ocha.example,OCHA,\n"
        "Bad Mail,nadia@,OCHA,\n"
    )
    parsed = parse_roster(text)
    assert parsed.hxl and parsed.rows[0].person.name == "Nadia Haddad"
    assert [str(e) for e in parsed.errors] == [
        "line 7: bad email 'nadia@': There must be something after the @-sign. (column B, #contact+email)"]


def test_an_unclosed_quote_names_the_line_where_the_field_began() -> None:
    text = (f"name,email,organisation,{DEPLOYMENT}\n{ROW_ANA.replace(',+57 1', '')}\n"
            'Jorge Rojas,"jorge@wfp.example,WFP,CO,Bogotá,Focal Point,focal_point,2026-01-01,2026-06-30\n'
            "Leila Nasser,leila@ocha.example,OCHA,YE,Aden,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30\n")
    with pytest.raises(RosterFileError) as raised:
        parse_roster(text.encode())
    assert str(raised.value) == (
        "line 3: the quoted field '\"jorge@wfp.example,WFP,CO,Bogotá,Focal P…' begins here and is never closed "
        "(a missing closing quote \"): nothing after it can be read (column B)")


def test_every_row_error_names_line_column_and_value() -> None:
    text = f"name,email,organisation,{DEPLOYMENT}\n" + (
        "Ok,ok@ocha.example,OCHA,Atlantis,Nowhere,CMCoord Officer,cmcoord_officer,2026-01-01,2026-06-30\n"
        "Late,late@ocha.example,OCHA,NE,Niamey,CMCoord Officer,cmcoord_officer,2026-01-01,30/06/2026\n")
    assert [str(e) for e in parse_roster(text).errors] == [
        "line 2: unknown country 'Atlantis' (use ISO 3166 codes such as ML or MLI) (column D, country)",
        "line 3: planned_end '30/06/2026' is not a date (YYYY-MM-DD) (column I, planned_end)",
    ]


@pytest.mark.parametrize("address", [
    "a.diallo@OCHA.example", "x+tag@wfp.example", "o'neil@ngo.example", "a@b", "a..b@x.example", "a@-x.example",
    "a@x.test", "é@x.example", "a@bücher.example", "a" * 65 + "@x.example", ".a@x.example", "a b@x.example",
])
def test_the_quick_email_check_agrees_with_email_validator(address: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    from services.roster.importer import normalise_email

    try:
        expected: str | None = validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = normalise_email(address)
    except EmailNotValidError:
        got = None
    assert got == expected
