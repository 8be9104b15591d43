"""When a problem comes back: texts compared as sets of meaningful words.

Two items are linked when they share a theme, their words overlap enough
(Jaccard similarity of the folded, de-pluralised words of four letters or more,
common words left out), and the earlier one is from another country or an
earlier deployment. Free of I/O; the store finds candidates with full-text search."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.regions import fold

STOPWORDS = frozenset("""
about above after again against also among been before being below between both could does doing down during each
from further have having here into itself just more most much must only other over same should some such than that
their them then there these they this those through under until very were what when where which while will with
within would your yours ours because since still even every many into onto upon across along around without cannot
""".split())
WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> frozenset[str]:
    out = set()
    for w in WORD.findall(fold(text)):
        if len(w) < 4 or w in STOPWORDS or w.isdigit():
            continue
        out.add(w[:-1] if w.endswith("s") and not w.endswith("ss") else w)
    return frozenset(out)


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class Candidate:
    id: uuid.UUID
    country: str
    themes: frozenset[str]
    text: str
    created_at: datetime
    deployment_key: str = ""  # the same officer's same deployment is not a recurrence


def similar(*, text: str, themes: Iterable[str], country: str, created_at: datetime, deployment_key: str = "",
            candidates: Iterable[Candidate], threshold: float) -> list[tuple[uuid.UUID, float]]:
    """Earlier candidates the new item resembles, most alike first."""
    mine, theme_set = words(text), frozenset(themes)
    found = []
    for c in candidates:
        if not (theme_set & c.themes) or c.created_at > created_at:
            continue
        if c.country == country and deployment_key and c.deployment_key == deployment_key:
            continue
        score = similarity(mine, words(c.text))
        if score >= threshold:
            found.append((c.id, round(score, 3)))
    return sorted(found, key=lambda f: -f[1])


def clusters(links: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> list[set[uuid.UUID]]:
    """Connected groups of linked items (what a reviewer sees together)."""
    parent: dict[uuid.UUID, uuid.UUID] = {}

    def root(x: uuid.UUID) -> uuid.UUID:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[root(a)] = root(b)
    groups: dict[uuid.UUID, set[uuid.UUID]] = {}
    for x in list(parent):
        groups.setdefault(root(x), set()).add(x)
    return [g for g in groups.values() if len(g) > 1]
