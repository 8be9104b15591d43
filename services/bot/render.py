"""Text the bot sends, escaped for HTML parse mode."""

from __future__ import annotations

from datetime import date
from html import escape

from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from shared.contracts.roster import ContactCard, CounterpartCard, GapCard, SearchMatch
from shared.countries import country_label
from shared.languages import language_label
from shared.notices import long_date, theme_name

FLAG_TEXT = {"more_than_two_hats": __("more than two hats"), "no_cmcoord_course": __("no UN-CMCoord Course")}
ROLE_TEXT = {"cmcoord_officer": __("CMCoord officer"), "focal_point": __("focal point"), "surge": __("surge"),
             "regional_adviser": __("regional adviser"), "cmcs_desk": __("CMCS desk")}
COVER_SHOWN = 3  # people named as covering a gapped post


def country_of(code: str) -> str:
    """A country's name, from its ISO code, in the reader's language."""
    return country_label(code, get_i18n().current_locale)


def date_of(day: date) -> str:
    """A day as the reader's language writes it ("9 March 2026", "9 mars 2026")."""
    return long_date(day, get_i18n().current_locale)


def theme_of(code: str) -> str:
    """A lessons theme's name, from its code, in the reader's language."""
    return theme_name(code, get_i18n().current_locale)


def contact_card(card: ContactCard) -> str:
    lines = [f"<b>{escape(card.name)}</b>" + (f" · {escape(card.organisation)}" if card.organisation else "")]
    for dep in card.deployments:
        lines.append(_("{title}, {station} ({country}, {region}) until {end}").format(
            title=escape(dep.title), station=escape(dep.duty_station), country=escape(country_of(dep.country)),
            region=escape(dep.region), end=date_of(dep.planned_end)))
    if not card.deployments:
        lines.append(_("no current deployment"))
    contact = [escape(card.phone), escape(card.email)]
    if card.telegram_username:
        contact.append("@" + escape(card.telegram_username))
    lines.append(" · ".join(c for c in contact if c))
    if card.other_hats:
        lines.append(_("Other hats: {hats}").format(hats=escape(", ".join(card.other_hats))))
    if card.flags:
        lines.append("⚠ " + ", ".join(escape(str(FLAG_TEXT.get(f, f))) for f in card.flags))
    return "\n".join(lines)


def matched_text(matched: list[SearchMatch]) -> str:
    """What a search was understood as, in the reader's language ("country: Tchad · language: arabe")."""
    locale = get_i18n().current_locale
    parts = []
    for m in matched:
        kind, value = m.kind, m.value
        if kind == "country":
            parts.append(_("country: {name}").format(name=escape(country_of(value))))
        elif kind == "language":
            parts.append(_("language: {name}").format(name=escape(language_label(value, locale))))
        elif kind == "role":
            parts.append(_("role: {name}").format(name=escape(str(ROLE_TEXT.get(value, value)))))
        elif kind == "hat":
            parts.append(_("hat: {name}").format(name=escape(value)))
    return " · ".join(parts)


def _reach(card: ContactCard) -> str:
    """A person on one line: name, phone, e-mail, Telegram."""
    parts = [f"<b>{escape(card.name)}</b>", escape(card.phone), escape(card.email)]
    if card.telegram_username:
        parts.append("@" + escape(card.telegram_username))
    return " · ".join(p for p in parts if p)


def gaps_text(gaps: list[GapCard], total: int) -> str:
    """Gapped posts and who covers them meanwhile (gaps with the same cover share one list)."""
    groups: dict[tuple[str, ...], list[GapCard]] = {}
    for gap in gaps:
        groups.setdefault(tuple(str(c.person_id) for c in gap.covered_by), []).append(gap)
    blocks = []
    for group in groups.values():
        lines = ["⚠ " + _("Gapped post: {title}, {station} ({country}), nobody in post since {since}.").format(
            title=escape(g.title), station=escape(g.duty_station), country=escape(country_of(g.country)),
            since=date_of(g.gapped_since)) for g in group]
        first = group[0]
        if first.cover_role == "regional_adviser":
            lines.append(_("Covered meanwhile by the regional adviser(s) for {region}:").format(
                region=escape(first.region)))
        elif first.cover_role == "cmcs_desk":
            lines.append(_("Covered meanwhile by the CMCS desk:"))
        else:
            lines.append(_("Nobody on the roster covers it: ask the CMCS desk."))
        lines += [_reach(c) for c in first.covered_by[:COVER_SHOWN]]
        blocks.append("\n".join(lines))
    if total > len(gaps):
        blocks.append(_("… and {count} more gapped post.", "… and {count} more gapped posts.",
                        total - len(gaps)).format(count=total - len(gaps)))
    return "\n\n".join(blocks)


COUNTERPART_SECTIONS = {
    "public": __("Public:"),
    "community": __("For the CMCoord community only, do not share outside it:"),
    "restricted": __("Restricted, do not forward:"),
}


def counterparts_text(country_code: str, contacts: list[CounterpartCard]) -> str:
    """Counterpart contacts under their classification: a public entry is never shown under
    "restricted" (and an unknown classification is treated as restricted)."""
    lines = [_("<b>Counterparts in {country}</b>").format(country=escape(country_of(country_code)))]
    for classification, heading in COUNTERPART_SECTIONS.items():
        entries = [c for c in contacts if (c.classification if c.classification in COUNTERPART_SECTIONS
                                           else "restricted") == classification]
        if entries:
            lines.append(str(heading))
            lines += [f"{escape(c.unit)}: {escape(c.function)}, {escape(c.channel)}" for c in entries]
    return "\n".join(lines)
