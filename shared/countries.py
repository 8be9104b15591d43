"""Countries by what a reader types, in English, French or Arabic, and their names in a reader's language
(CLDR's, through Babel).

Names come from pycountry's ISO 3166 data and the gettext catalogues it ships (iso3166-1, fr
and ar); a short list adds the common forms people use where the ISO name is formal ("RDC",
"Tchad" is ISO already, "Palestine", "Ivory Coast", "سوريا"). Matching ignores case, accents,
Arabic diacritics and the shapes of apostrophes and hyphens.
"""

from __future__ import annotations

import functools
import gettext
import re
import unicodedata

import pycountry

# The languages whose catalogues are read to recognise names (the bot's languages).
CATALOGUE_LANGUAGES = ("fr", "ar")

# Common short forms where the ISO name is formal, or a form the catalogues lack.
COMMON_FORMS: dict[str, tuple[str, ...]] = {
    "CD": ("DRC", "RDC", "DR Congo", "RD Congo", "Democratic Republic of Congo", "Democratic Republic of the Congo",
           "Congo-Kinshasa", "Congo Kinshasa", "الكونغو الديمقراطية", "جمهورية الكونغو الديمقراطية"),
    "CG": ("Republic of the Congo", "Congo-Brazzaville", "Congo Brazzaville", "Congo (Brazzaville)"),
    "CF": ("CAR", "RCA", "Centrafrique", "أفريقيا الوسطى", "جمهورية أفريقيا الوسطى"),
    "CI": ("Ivory Coast", "كوت ديفوار"),
    "PS": ("Palestine", "oPt", "Occupied Palestinian Territory", "Territoire palestinien occupé", "فلسطين",
           "الأراضي الفلسطينية المحتلة"),
    "SY": ("سوريا", "سورية"),
    "TR": ("Turkey", "تركيا"),
    "MM": ("Burma",),
    "RU": ("Russia", "Russie", "روسيا"),
    "GB": ("UK", "Great Britain"),
    "US": ("United States of America", "أمريكا"),
    "AE": ("UAE", "EAU", "الإمارات"),
    "VN": ("Vietnam",),
    "CV": ("Cape Verde",),
    "SZ": ("Swaziland",),
    "TL": ("East Timor",),
    "CZ": ("Czech Republic",),
    "KR": ("كوريا الجنوبية",),
    "KP": ("كوريا الشمالية",),
    "IR": ("إيران",),
    "SA": ("السعودية",),
}

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "ʼ": "'", "´": "'"})
# Arabic: the same word typed with or without these variants (tatweel dropped, taa marbuta and
# alef maqsura as their usual keyboard stand-ins); hamza and vowel marks go with the diacritics.
_ARABIC = str.maketrans({"ـ": None, "ة": "ه", "ى": "ي"})
_SEPARATORS = re.compile(r"[\s\-–—_.,،()/]+")


@functools.lru_cache(maxsize=8192)  # a roster repeats its hats and languages thousands of times
def name_key(text: str) -> str:
    """`text` as matched: case, accents, Arabic diacritics, apostrophe shapes, hyphens, dots and
    commas ignored, a leading English "the" dropped ("Côte-d’Ivoire" ~ "cote d'ivoire")."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().translate(_ARABIC)
    words = _SEPARATORS.sub(" ", bare).split()
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    return " ".join(words)


@functools.cache
def _catalogue(domain: str, language: str) -> dict[str, str]:
    """msgid -> translation of one of pycountry's catalogues ({} when it is missing)."""
    try:
        translations = gettext.translation(domain, pycountry.LOCALES_DIR, languages=[language])
    except OSError:
        return {}
    catalogue = getattr(translations, "_catalog", {})
    return {k: v for k, v in catalogue.items() if isinstance(k, str) and k and isinstance(v, str) and v}


def _derived(name: str) -> list[str]:
    """Forms of an inverted ISO name: "Congo, The Democratic Republic of the" -> "Congo" and
    "The Democratic Republic of the Congo"; "Palestine, State of" -> "Palestine"; the Arabic
    catalogue's "الكونغو، جمهورية الكونغو ..." -> both halves."""
    for comma in (",", "،"):
        if comma in name:
            before, _, after = name.partition(comma)
            forms = [before.strip(), f"{after.strip()} {before.strip()}"]
            if comma == "،":
                forms.append(after.strip())
            return [f for f in forms if f]
    return []


@functools.cache
def _country_keys() -> dict[str, str]:
    """Name key -> alpha-2. Names claimed by more than one country at the same level are left
    out (ambiguous: "Korea"); a name at a stronger level wins over a weaker one ("Congo" is
    the Republic of the Congo's name, only a derived form for the Democratic Republic)."""
    levels: list[dict[str, set[str]]] = [{}, {}, {}]  # ISO names (any language), common forms, derived forms

    def claim(level: int, text: str | None, code: str) -> None:
        if text:
            key = name_key(text)
            if key:
                levels[level].setdefault(key, set()).add(code)

    for country in pycountry.countries:
        code = str(country.alpha_2)
        for attr in ("name", "common_name", "official_name"):
            english = getattr(country, attr, None)
            if not english:
                continue
            names = [english] + [t for lang in CATALOGUE_LANGUAGES
                                 if (t := _catalogue("iso3166-1", lang).get(english))]
            for name in names:
                claim(0, name, code)
                for form in _derived(name):
                    claim(2, form, code)
    for code, forms in COMMON_FORMS.items():
        for form in forms:
            claim(1, form, code)
    found: dict[str, str] = {}
    for level in levels:
        for key, codes in level.items():
            if key not in found and len(codes) == 1:
                found[key] = next(iter(codes))
    return found


def resolve_country(text: str) -> str | None:
    """ISO alpha-2 or alpha-3, or a name in English, French or Arabic (ISO names, common
    forms; accents and case ignored) -> alpha-2; None when it names no country."""
    raw = text.strip()
    if not raw:
        return None
    if len(raw) in (2, 3) and raw.isascii() and raw.isalpha():
        code = raw.upper()
        found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else pycountry.countries.get(alpha_3=code)
        if found is not None:
            return str(found.alpha_2)
    return _country_keys().get(name_key(raw))


# Where CLDR's name reads badly in a sentence ("Congo - Kinshasa") or is not the one the UN and OCHA use.
UN_NAMES: dict[str, dict[str, str]] = {
    "CD": {"en": "Democratic Republic of the Congo", "fr": "République démocratique du Congo",
           "ar": "جمهورية الكونغو الديمقراطية"},
    "CG": {"en": "Republic of the Congo", "fr": "République du Congo", "ar": "جمهورية الكونغو"},
    "PS": {"en": "occupied Palestinian territory", "fr": "Territoire palestinien occupé",
           "ar": "الأرض الفلسطينية المحتلة"},
    "MM": {"en": "Myanmar", "fr": "Myanmar", "ar": "ميانمار"},
}


@functools.cache
def _territories(locale: str) -> dict[str, str]:
    from babel import Locale  # read when a name is first shown: commands that show none do not pay for it

    return dict(Locale.parse("en_GB" if locale == "en" else locale).territories)


def country_label(alpha2: str, locale: str = "en") -> str:
    """The country's name as people write it in `locale` (en, fr, ar): CLDR's ("Syria", "Tchad", "سوريا"),
    the UN's where CLDR's reads badly in a sentence (UN_NAMES); the code when it names no country."""
    code = alpha2.upper()
    if code in UN_NAMES:
        return UN_NAMES[code].get(locale) or UN_NAMES[code]["en"]
    names = _territories(locale) if locale in ("en", *CATALOGUE_LANGUAGES) else _territories("en")
    if len(code) != 2 or not code.isalpha() or code not in names:
        return alpha2
    return names[code]
