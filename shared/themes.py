"""The lessons themes and classifications every service agrees on (bot buttons,
lessons filters, the digest's sections)."""

from __future__ import annotations

import uuid
from typing import Literal

from shared.regions import fold

THEMES: dict[str, str] = {
    "access": "Access",
    "poc": "Protection of civilians",
    "hns4d": "Humanitarian notification (HNS4D)",
    "nsag": "NSAG engagement",
    "armed_escorts": "Armed escorts",
    "last_resort": "Last resort / MCDA",
    "qips": "Quick impact projects (QIPs)",
    "info_sharing": "Information sharing",
    "training": "Training",
    "health": "COVID / health",
    "natural_disasters": "Natural disasters",
}

Classification = Literal["public", "community", "restricted"]
CLASSIFICATIONS: tuple[str, ...] = Classification.__args__  # type: ignore[attr-defined]
DEFAULT_CLASSIFICATION = "community"


def resolve_theme(text: str) -> str | None:
    """'access', '#HNS4D', 'Armed escorts', 'mcda' -> the theme's code."""
    key = fold(text.strip().lstrip("#")).replace("-", "_")
    if key in THEMES:
        return key
    for code, label in THEMES.items():
        words = {fold(w) for w in label.replace("(", " ").replace(")", " ").replace("/", " ").split()}
        if key == fold(label) or key.replace("_", " ") == fold(label) or (len(key) >= 4 and key in words):
            return code
    return None


def reference(prefix: str, item_id: uuid.UUID) -> str:
    """A short reference people can quote ("R-7KQ2M9XA"): 40 bits of the id in Crockford's base32."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    n = item_id.int >> 88
    return prefix + "-" + "".join(alphabet[(n >> shift) & 31] for shift in range(35, -1, -5))
