"""Text the bot sends, escaped for HTML parse mode."""

from __future__ import annotations

import gettext
from functools import cache
from html import escape
from typing import Any

import pycountry
from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

FLAG_TEXT = {"more_than_two_hats": __("more than two hats"), "no_cmcoord_course": __("no UN-CMCoord Course")}


@cache
def _country_names(locale: str) -> gettext.NullTranslations:
    return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[locale], fallback=True)


def country(name: str) -> str:
    """A country's name in the reader's language (pycountry's ISO 3166 catalogues)."""
    return _country_names(get_i18n().current_locale).gettext(name)


def contact_card(card: dict[str, Any]) -> str:
    lines = [f"<b>{escape(card['name'])}</b>" + (f" · {escape(card['organisation'])}" if card["organisation"] else "")]
    for dep in card["deployments"]:
        lines.append(_("{title}, {station} ({country}, {region}) until {end}").format(
            title=escape(dep["title"]), station=escape(dep["duty_station"]), country=escape(country(dep["country_name"])),
            region=escape(dep["region"]), end=dep["planned_end"]))
    if not card["deployments"]:
        lines.append(_("no current deployment"))
    contact = [escape(card["phone"]), escape(card["email"])]
    if card["telegram_username"]:
        contact.append("@" + escape(card["telegram_username"]))
    lines.append(" · ".join(c for c in contact if c))
    if card["other_hats"]:
        lines.append(_("Other hats: {hats}").format(hats=escape(", ".join(card["other_hats"]))))
    if card["flags"]:
        lines.append("⚠ " + ", ".join(escape(str(FLAG_TEXT.get(f, f))) for f in card["flags"]))
    return "\n".join(lines)


def counterparts_text(country_name: str, contacts: list[dict[str, Any]]) -> str:
    lines = [_("<b>Counterparts in {country}</b> (restricted: do not forward)").format(
        country=escape(country(country_name)))]
    for c in contacts:
        lines.append(f"{escape(c['unit'])}: {escape(c['function'])}, {escape(c['channel'])}")
    return "\n".join(lines)
