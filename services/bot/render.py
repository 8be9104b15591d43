"""Text the bot sends, escaped for HTML parse mode."""

from __future__ import annotations

from html import escape
from typing import Any

FLAG_TEXT = {"more_than_two_hats": "more than two hats", "no_cmcoord_course": "no UN-CMCoord Course"}
MAX_INPUT = 1000


def contact_card(card: dict[str, Any]) -> str:
    lines = [f"<b>{escape(card['name'])}</b>" + (f" · {escape(card['organisation'])}" if card["organisation"] else "")]
    for dep in card["deployments"]:
        lines.append(f"{escape(dep['title'])}, {escape(dep['duty_station'])} ({escape(dep['country_name'])}, "
                     f"{escape(dep['region'])}) until {dep['planned_end']}")
    if not card["deployments"]:
        lines.append("no current deployment")
    contact = [escape(card["phone"]), escape(card["email"])]
    if card["telegram_username"]:
        contact.append("@" + escape(card["telegram_username"]))
    lines.append(" · ".join(c for c in contact if c))
    if card["other_hats"]:
        lines.append("Other hats: " + escape(", ".join(card["other_hats"])))
    if card["flags"]:
        lines.append("⚠ " + ", ".join(FLAG_TEXT.get(f, f) for f in card["flags"]))
    return "\n".join(lines)


def clean_input(text: str) -> str | None:
    """User text without control and zero-width characters; None if too long to be a query."""
    cleaned = "".join(ch for ch in text if ch.isprintable() or ch == " ")
    cleaned = "".join(ch for ch in cleaned if ch not in "\u200b\u200c\u200d\u2060\ufeff").strip()
    if len(cleaned) > MAX_INPUT:
        return None
    return cleaned


def counterparts_text(country: str, contacts: list[dict[str, Any]]) -> str:
    lines = [f"<b>Counterparts in {escape(country)}</b> (restricted: do not forward)"]
    for c in contacts:
        lines.append(f"{escape(c['unit'])}: {escape(c['function'])}, {escape(c['channel'])}")
    return "\n".join(lines)
