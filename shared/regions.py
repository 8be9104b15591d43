"""OCHA regional offices and the ISO 3166 countries each covers (defaults).

A post's region defaults from its country; an import may set it explicitly
(e.g. for a country not listed here).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import pycountry

from shared.countries import country_label


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    timezone: str
    aliases: tuple[str, ...]
    countries: frozenset[str]


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region(
            "ROAP",
            "Asia and the Pacific",
            "Asia/Bangkok",
            ("asia-pacific", "asia pacific", "asia and the pacific"),
            _codes(
                "AF AU BD BN BT CN FJ FM ID IN JP KH KI KP KR LA LK MH MM MN MV MY NP NR NZ PG PH PK PW SB TH TL "
                "TO TV VN VU WS"
            ),
        ),
        Region(
            "ROMENA",
            "Middle East and North Africa",
            "Asia/Beirut",
            ("mena", "middle east and north africa", "middle east"),
            _codes("AE BH DZ EG EH IL IQ IR JO KW LB LY MA OM PS QA SA SY TN YE"),
        ),
        Region(
            "ROWCA",
            "West and Central Africa",
            "Africa/Dakar",
            ("wca", "west and central africa", "west africa", "central africa"),
            _codes("BF BJ CD CF CG CI CM CV GA GH GM GN GQ GW LR ML MR NE NG SL SN ST TD TG"),
        ),
        Region(
            "ROSEA",
            "Southern and Eastern Africa",
            "Africa/Nairobi",
            ("sea", "southern and eastern africa", "east africa", "southern africa"),
            _codes("AO BI BW DJ ER ET KE KM LS MG MU MW MZ NA RW SC SD SO SS SZ TZ UG ZA ZM ZW"),
        ),
        Region(
            "ROLAC",
            "Latin America and the Caribbean",
            "America/Panama",
            ("lac", "latin america and the caribbean", "latin america", "caribbean"),
            _codes(
                "AG AR BB BO BR BS BZ CL CO CR CU DM DO EC GD GT GY HN HT JM KN LC MX NI PA PE PY SR SV TT UY VC VE"
            ),
        ),
        Region(
            "ROECA",
            "Europe and Central Asia",
            "Europe/Istanbul",
            ("eca", "europe and central asia", "europe", "central asia"),
            _codes(
                "AL AM AT AZ BA BE BG BY CH CY CZ DE DK EE ES FI FR GB GE GR HR HU IE IT KG KZ LT LU LV MD ME MK "
                "MT NL NO PL PT RO RS RU SE SI SK TJ TM TR UA UZ"
            ),
        ),
    )
}

_COUNTRY_REGION = {country: r.code for r in REGIONS.values() for country in r.countries}


def fold(text: str) -> str:
    """Case- and accent-insensitive form of `text` for matching."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().split())


def region_for_country(alpha2: str) -> str | None:
    return _COUNTRY_REGION.get(alpha2.upper())


def resolve_region(text: str) -> str | None:
    """'ROWCA', 'rowca', 'West and Central Africa' -> 'ROWCA'."""
    key = fold(text)
    for region in REGIONS.values():
        if key == region.code.casefold() or key == fold(region.name) or key in region.aliases:
            return region.code
    return None


def resolve_country(text: str) -> str | None:
    """ISO alpha-2 or alpha-3, or a name in English, French or Arabic -> alpha-2 (shared/countries.py):
    /report, lessons' filters and the roster's /contacts read a country the same way."""
    from shared.countries import resolve_country as resolve  # its name tables load on first use

    return resolve(text)


def country_name(alpha2: str) -> str:
    """The country's English name as people write it ("Syria", "Democratic Republic of the Congo")."""
    return country_label(alpha2, "en")


# Codes in use in the humanitarian system that ISO 3166 does not assign (HDX uses these).
_USER_ASSIGNED_ALPHA3 = {"XK": "XKX"}  # Kosovo


def country_alpha3(alpha2: str) -> str:
    """ISO 3166 alpha-3 for an alpha-2 code ('ML' -> 'MLI'), as HDX and HXL tools expect in
    `#country+code`; a code ISO does not know is given back as it is."""
    code = alpha2.strip().upper()
    found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    if found is not None:
        return str(found.alpha_3)
    return _USER_ASSIGNED_ALPHA3.get(code, alpha2)
