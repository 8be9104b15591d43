"""Cells for files people open in a spreadsheet (CSV, HXL-tagged CSV, XLSX).

Formula injection (OWASP "CSV Injection"): Excel, LibreOffice Calc and Google
Sheets take a cell whose first character is `=`, `+`, `-` or `@` (also after a tab,
a carriage return or leading spaces some of them trim) for a formula, which can
call a web service, reach another program through DDE or read other cells. Text
people typed (a name, a lesson's title, a hat) must never start a formula in the
desk's spreadsheet, so every exported cell goes through `neutralise`:

- a cell whose first character, or first one after leading white space, is
  `=`, `+`, `-`, `@` (or their full-width forms `＝＋－＠`), or that starts with a
  tab, carriage return, line feed or NUL, gets a single quote in front
  (`=HYPERLINK(...)` -> `'=HYPERLINK(...)`): spreadsheets show it as text;
- the one exception: in a column that holds phone numbers (`phone=True`), a value
  that is a phone number and nothing else (`+`, then 7 to 15 digits with only
  spaces, dots, hyphens and parentheses between them) is kept as is, so
  `+223 20 22 33 44` stays readable and can be dialled from the file. Such a
  value cannot name a function, a cell, a sheet or another program (that needs
  letters, `!`, `|` or quotes): the worst a spreadsheet can make of it is
  arithmetic on numbers. Anything else in a phone column is prefixed like any
  other cell, and phone-shaped text in any other column is prefixed too;
- likewise, in a column of numbers (`number=True`: a latitude, a longitude), a
  plain decimal such as `-4.182700` is kept as is: a signed number is arithmetic
  at worst, and a coordinate must read back as one. Anything else there is
  prefixed.

Some consumers read the quote as data (a script, a re-import): a prefixed cell
reads back as `'=...`. That is the price of the rule, and only text that looks
like a formula pays it.

`csv_text` also quotes every cell holding a separator a spreadsheet may use in
another locale (`;` in much of Europe, a tab), not only `,`: a cell
`a;=cmd|...` must not become two cells, the second a formula, when opened with
`;` as the separator. Cells without such characters stay unquoted.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

FORMULA_STARTS = frozenset("=+-@" "\uff1d\uff0b\uff0d\uff20")  # and the full-width ＝＋－＠
CONTROL_STARTS = frozenset("\t\r\n\0")
_PHONE = re.compile(r"\+\d[\d ().\-]*\d")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_QUOTE_WHEN = re.compile(r'[,;\t"\r\n]')


def plausible_phone(text: str) -> bool:
    """`+` then 7 to 15 digits (E.164), with only spaces, dots, hyphens and parentheses between."""
    if not _PHONE.fullmatch(text):
        return False
    return 7 <= sum(ch.isdigit() for ch in text) <= 15


def neutralise(value: object, *, phone: bool = False, number: bool = False) -> str:
    """The cell's text, with a leading `'` when a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    if not text:
        return text
    if (phone and plausible_phone(text)) or (number and _NUMBER.fullmatch(text)):
        return text
    if text[0] in CONTROL_STARTS or text[0] in FORMULA_STARTS or text.lstrip()[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def _field(cell: str) -> str:
    if _QUOTE_WHEN.search(cell):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def csv_line(cells: Sequence[object], *, phone_columns: Collection[int] = (),
             number_columns: Collection[int] = ()) -> str:
    """One CSV record, each cell neutralised, ending in a line feed."""
    return ",".join(_field(neutralise(cell, phone=i in phone_columns, number=i in number_columns))
                    for i, cell in enumerate(cells)) + "\n"


def csv_text(rows: Iterable[Sequence[object]], *, phone_columns: Collection[int] = (),
             number_columns: Collection[int] = ()) -> str:
    """CSV (RFC 4180 quoting, `\\n` line ends) of `rows`, header rows included, every cell neutralised;
    `phone_columns` and `number_columns`: the indexes of the columns that hold phone numbers, and
    numbers (coordinates)."""
    return "".join(csv_line(row, phone_columns=phone_columns, number_columns=number_columns) for row in rows)
