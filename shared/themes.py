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


# What people write for each theme in French and Arabic (and English short forms), matched
# accent-, case- and hamza-insensitively, with or without the Arabic article: "#accès",
# "#acces", "#protection_des_civils", "#الوصول", "#حماية_المدنيين".
THEME_WORDS: dict[str, tuple[str, ...]] = {
    "access": ("accès", "accès humanitaire", "الوصول", "الوصول الإنساني"),
    "poc": ("protection des civils", "PdC", "حماية المدنيين", "حماية"),
    "hns4d": ("notification humanitaire", "notifications humanitaires", "notification", "notifications",
              "الإخطار الإنساني", "الإخطار", "إخطار"),
    "nsag": ("GANE", "groupes armés non étatiques", "engagement avec les GANE", "الجماعات المسلحة من غير الدول",
             "الجماعات المسلحة"),
    "armed_escorts": ("escortes armées", "escorte armée", "escortes", "escorte", "المرافقة المسلحة", "مرافقة"),
    "last_resort": ("dernier recours", "الملاذ الأخير"),
    "qips": ("projets à impact rapide", "PIR", "مشاريع الأثر السريع", "المشاريع سريعة الأثر"),
    "info_sharing": ("partage d'information", "partage d'informations", "partage de l'information",
                     "partage des informations", "تبادل المعلومات"),
    "training": ("formation", "formations", "التدريب"),
    "health": ("santé", "covid", "الصحة", "كوفيد"),
    "natural_disasters": ("catastrophes naturelles", "catastrophe naturelle", "الكوارث الطبيعية"),
}


def _compact(text: str) -> str:
    """One form for a theme however it is written: no accents, case, hamza seat, Arabic
    article, spaces, hyphens, underscores or apostrophes ("Accès-humanitaire", "الإخطار")."""
    words = fold(text.replace("_", " ").replace("-", " ").replace("'", " ").replace("’", " ")).split()
    return "".join(w[2:] if w.startswith("ال") and len(w) > 3 else w for w in words)


_ALIASES: dict[str, str] = {_compact(word): code for code, words in THEME_WORDS.items() for word in words}


def resolve_theme(text: str) -> str | None:
    """'access', '#HNS4D', 'Armed escorts', 'mcda', '#accès', '#الوصول' -> the theme's code."""
    key = fold(text.strip().lstrip("#")).replace("-", "_")
    if not key:
        return None
    if key in THEMES:
        return key
    for code, label in THEMES.items():
        words = {fold(w) for w in label.replace("(", " ").replace(")", " ").replace("/", " ").split()}
        if key == fold(label) or key.replace("_", " ") == fold(label) or (len(key) >= 4 and key in words):
            return code
    return _ALIASES.get(_compact(key))


def reference(prefix: str, item_id: uuid.UUID) -> str:
    """A short reference people can quote ("R-7KQ2M9XA"): 40 bits of the id in Crockford's base32."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    n = item_id.int >> 88
    return prefix + "-" + "".join(alphabet[(n >> shift) & 31] for shift in range(35, -1, -5))
