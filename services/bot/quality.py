"""Nudges toward observations others can use, after the rules NATO's lessons-learned
portal applies to submissions: self-contained, acronyms spelled out, facts not
opinions, about a page at most. Advice only: a report is never refused for them."""

from __future__ import annotations

import re
from typing import Literal

Nudge = Literal["too_short", "too_long", "acronyms", "opinion", "context"]
PAGE = 3000  # characters: about a page
SHORT = 80
KNOWN = frozenset({"UN", "OCHA", "CMCS", "AAR", "NGO", "NGOS", "ID", "OK", "TV", "GPS", "SMS", "UK", "US", "EU"})
OPINION = re.compile(r"\b(i think|i feel|i believe|in my opinion|obviously|clearly|terrible|awful|stupid|useless|"
                     r"incompetent|as usual|always|never)\b", re.IGNORECASE)
CONTEXT = re.compile(r"\b(as (mentioned|discussed|said) (before|above|earlier)|see above|the usual|you know|"
                     r"like last time)\b", re.IGNORECASE)
ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,6}s?\b")


def unexplained_acronyms(text: str) -> list[str]:
    """Acronyms used without being spelled out in brackets beside them, e.g. "MCDA" without "(… )"."""
    found = []
    for m in ACRONYM.finditer(text):
        word = m.group(0).rstrip("s") if m.group(0).endswith("s") and m.group(0)[:-1].isupper() else m.group(0)
        if word in KNOWN or word in found or word.isdigit():
            continue
        near = text[max(0, m.start() - 80): m.end() + 80]
        if f"({word})" in near or re.search(re.escape(m.group(0)) + r"\s*\(", near):
            continue
        found.append(word)
    return found


def nudges(text: str) -> list[tuple[Nudge, str]]:
    """(what, detail) for each rule the text may miss."""
    out: list[tuple[Nudge, str]] = []
    stripped = text.strip()
    if len(stripped) < SHORT:
        out.append(("too_short", ""))
    if len(stripped) > PAGE:
        out.append(("too_long", ""))
    acronyms = unexplained_acronyms(stripped)
    if acronyms:
        out.append(("acronyms", ", ".join(acronyms[:5])))
    opinion = OPINION.search(stripped)
    if opinion:
        out.append(("opinion", opinion.group(0)))
    context = CONTEXT.search(stripped)
    if context:
        out.append(("context", context.group(0)))
    return out
