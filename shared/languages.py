"""Languages by what a reader types ("Arabic", "arabe", "العربية", "ar", "ara"), and their names in
a reader's language: pycountry's ISO 639 data and its iso639-3 catalogues (fr, ar), plus a few
everyday forms the catalogues lack ("عربي", "Farsi"). A roster may store languages as codes or
as names; both resolve to the same code, so either finds the other.
"""

from __future__ import annotations

import functools
import re

import pycountry

from shared.countries import CATALOGUE_LANGUAGES, _catalogue, name_key

# Languages without a two-letter code that field posts need, recognised by name too.
EXTRA_LANGUAGES = ("prs", "dje", "tmh", "apd", "fuv", "shu")
COMMON_FORMS: dict[str, tuple[str, ...]] = {
    "ar": ("عربي", "عربية", "العربيه"),
    "en": ("انجليزي", "انجليزية", "انكليزي", "انكليزية"),
    "fr": ("فرنسي", "فرنسية"),
    "es": ("Castilian", "Castellano", "اسباني", "اسبانية"),
    "fa": ("Farsi", "فارسي"),
    "sw": ("Kiswahili",),
    "ff": ("Fulfulde", "Pulaar"),
    "ps": ("Pashtu",),
}
_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*")


def _code(language: object) -> str:
    return str(getattr(language, "alpha_2", None) or getattr(language, "alpha_3"))


def _languages() -> list[object]:
    found = [lang for lang in pycountry.languages if getattr(lang, "alpha_2", None)]
    found += [lang for code in EXTRA_LANGUAGES if (lang := pycountry.languages.get(alpha_3=code)) is not None]
    return found


@functools.cache
def _language_keys() -> dict[str, str]:
    """Name key -> code (alpha-2 where ISO 639-1 has one, else alpha-3); ambiguous names left out."""
    claims: dict[str, set[str]] = {}

    def claim(text: str, code: str) -> None:
        for form in {text, _QUALIFIER.sub(" ", text)}:  # "Swahili (macrolanguage)" is "Swahili" too
            key = name_key(form)
            if key:
                claims.setdefault(key, set()).add(code)

    for language in _languages():
        code = _code(language)
        for attr in ("name", "common_name", "inverted_name"):
            english = getattr(language, attr, None)
            if not english:
                continue
            claim(english, code)
            for lang in CATALOGUE_LANGUAGES:
                translated = _catalogue("iso639-3", lang).get(english)
                if translated:
                    claim(translated, code)
    for code, forms in COMMON_FORMS.items():
        for form in forms:
            claims.setdefault(name_key(form), set()).add(code)
    return {key: next(iter(codes)) for key, codes in claims.items() if len(codes) == 1}


@functools.cache
def _codes() -> dict[str, str]:
    """Any ISO 639 code of a known language (639-1, 639-2/T) -> its code. (Not the bibliographic
    codes: "may", "per" read as words or countries far more often than as Malay or Persian.)"""
    codes: dict[str, str] = {}
    for language in _languages():
        code = _code(language)
        for attr in ("alpha_2", "alpha_3"):
            value = getattr(language, attr, None)
            if value:
                codes[str(value).casefold()] = code
    return codes


def resolve_language(text: str) -> str | None:
    """A language's code (alpha-2 where there is one) from a code or a name in English, French
    or Arabic; None when it names no language known here."""
    raw = text.strip()
    if not raw:
        return None
    if len(raw) in (2, 3) and raw.isascii() and raw.isalpha():
        found = _codes().get(raw.casefold())
        if found is not None:
            return found
    return _language_keys().get(name_key(raw))


@functools.lru_cache(maxsize=4096)
def language_key(text: str) -> str:
    """What a stored language is indexed by: its code when known, else its name as matched."""
    return resolve_language(text) or name_key(text)


def language_label(code: str, locale: str = "en") -> str:
    """The language's name in `locale` (en, fr, ar), without ISO's "(macrolanguage)"."""
    found = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
    if found is None:
        return code
    english = str(found.name)
    name = _catalogue("iso639-3", locale).get(english, english) if locale != "en" else english
    return _QUALIFIER.sub(" ", name).strip()
