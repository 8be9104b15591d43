"""Cells for spreadsheets (OWASP CSV injection) and user text in Markdown: pure rules, no I/O."""

import csv
import io

import pytest
from markdown_it import MarkdownIt

from services.lessons.figures import md_text
from shared.exports import csv_text, neutralise, plausible_phone


@pytest.mark.parametrize("cell", [
    "=HYPERLINK(\"https://evil.example\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1", "\r=1",
    "\n=1", "\0", " =1+1", "  @x", "\u00a0=1", "\uff1d1+1", "＋1", "－1", "＠A1",
])
def test_a_cell_a_spreadsheet_would_take_for_a_formula_starts_with_a_quote(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", [
    "", "Amadou Diallo", "a@ocha.example", "2026-03-02", "ROWCA", "'=already text", "Deputy HC; = not at the start",
    "#contact+name", "1+1", "Niamey - Tillabéri",
])
def test_other_cells_are_kept_as_they_are(cell: str) -> None:
    assert neutralise(cell) == cell


def test_none_is_an_empty_cell_and_other_values_their_text() -> None:
    assert (neutralise(None), neutralise(-5), neutralise(3)) == ("", "'-5", "3")


@pytest.mark.parametrize("phone", ["+223 20 22 33 44", "+41 22 917 12 34", "+1 (212) 963-1234", "+33.1.23.45.67.89",
                                   "+22320223344"])
def test_a_phone_number_stays_readable_in_a_phone_column_only(phone: str) -> None:
    assert plausible_phone(phone)
    assert neutralise(phone, phone=True) == phone
    assert neutralise(phone) == "'" + phone  # phone-shaped text in any other column: prefixed


@pytest.mark.parametrize("cell", [
    "+1+1", "+223 20 22 33 44 =cmd", "+41 22 917 12 34;=1", "+cmd|' /C calc'!A0", "+12345", "+1234567890123456",
    " +223 20 22 33 44", "+223 20 22 33 44\t", "-223 20 22 33 44", "=223 20 22 33 44", "+A1", "+(1)",
])
def test_in_a_phone_column_anything_but_a_phone_number_is_prefixed(cell: str) -> None:
    assert neutralise(cell, phone=True) == "'" + cell


@pytest.mark.parametrize("number", ["-4.182700", "14.484300", "-12", "0"])
def test_a_coordinate_stays_a_number_in_a_number_column_only(number: str) -> None:
    assert neutralise(number, number=True) == number
    assert neutralise(number) == ("'" + number if number.startswith("-") else number)


@pytest.mark.parametrize("cell", ["-4.18=1", "-1+1", "-cmd|' /C calc'!A0", " -4.18", "-4.18 ", "-4,18", "-.5", "=4"])
def test_in_a_number_column_anything_but_a_plain_decimal_is_prefixed_as_anywhere(cell: str) -> None:
    assert neutralise(cell, number=True) == neutralise(cell)


def test_csv_quotes_other_locales_separators_and_reads_back() -> None:
    rows = [["name", "phone", "hats"], ["=evil()", "+223 20 22 33 44", "Deputy;=cmd|' /C calc'!A0"],
            ['Say "hi", then go', "+1+1", "plain"]]
    text = csv_text(rows, phone_columns={1})
    lines = text.splitlines()
    assert lines[0] == "name,phone,hats"
    # a `;` locale must not split the hats cell in two (the second a formula): it is quoted
    assert lines[1] == "'=evil(),+223 20 22 33 44,\"Deputy;=cmd|' /C calc'!A0\""
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "phone", "hats"], ["'=evil()", "+223 20 22 33 44", "Deputy;=cmd|' /C calc'!A0"],
        ['Say "hi", then go', "'+1+1", "plain"]]


@pytest.mark.parametrize("title", ["![](https://evil.example/x.png)", "[click](https://evil.example)", "<img src=x>",
                                   "<https://evil.example>", "**bold** _it_ `code` &amp; \\ # not a heading",
                                   "a\nb\n\n# heading", "| a | b |"])
def test_user_text_renders_as_that_text(title: str) -> None:
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(f"- **R-1** {md_text(title)}")
    assert "<img" not in html and "<a" not in html and "<strong>R-1</strong>" in html
    assert "<em>" not in html and "<code>" not in html and "<h1>" not in html and "<table>" not in html
    shown = " ".join(title.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        .replace('"', "&quot;")
    assert f"<strong>R-1</strong> {shown}</li>" in html
