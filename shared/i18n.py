"""The languages people read here (English, French, Arabic) and the catalogues every service writes from.

`shared/locales/<lang>/LC_MESSAGES/<domain>.po` hold the translations, one place for all services:
`messages` is the bot's own texts, `notices` what the services tell people (shared/notices.py). The
catalogues are compiled in memory (Babel), so the repository holds only the reviewable .po text; a
fuzzy (unreviewed) entry is left out and its text stays English.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from shared.languages import language_key

LOCALES = Path(__file__).parent / "locales"
DEFAULT = "en"
LANGUAGES = {"en": "English", "fr": "Français", "ar": "العربية"}


def compile_catalogues(domain: str, path: Path = LOCALES) -> dict[str, gettext.GNUTranslations]:
    """Each language's catalogue of `domain`, compiled in memory."""
    found: dict[str, gettext.GNUTranslations] = {}
    for po in sorted(path.glob(f"*/LC_MESSAGES/{domain}.po")):
        locale = po.parent.parent.name
        with po.open("rb") as f:
            catalog = read_po(f, locale=locale, domain=domain)
        compiled = BytesIO()
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        found[locale] = gettext.GNUTranslations(compiled)
    return found


@functools.cache
def translations(domain: str, locale: str) -> gettext.NullTranslations:
    """The compiled catalogue of `domain` in `locale`; English (no catalogue) reads the msgids as they are."""
    return compile_catalogues(domain).get(locale) or gettext.NullTranslations()


def reader_locale(chosen: str | None, languages: Iterable[str] = ()) -> str:
    """The language to write to someone in: the one they chose (the bot's /lang, else their Telegram
    app's language), else the first language the roster says they speak that we write, else English."""
    if chosen in LANGUAGES:
        return chosen
    for language in languages:
        code = language_key(language)
        if code in LANGUAGES:
            return code
    return DEFAULT
