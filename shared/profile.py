"""What an officer may say of themselves (`/profile` in the bot, applied by the roster): a phone
number in international form, languages as ISO 639 codes (named in English, French or Arabic),
hats from the known list. The bot checks an answer before anything is sent; the roster checks
the event again before writing.
"""

from __future__ import annotations

import re

from shared.languages import resolve_language
from shared.regions import fold

# The other hats an officer may hold besides the post (recommendation #8: more than two is flagged).
KNOWN_HATS: tuple[str, ...] = (
    "Access focal point", "HNS4D focal point", "Security focal point", "PoC focal point", "Information management",
    "Inter-cluster coordination", "Deputy head of office", "NSAG engagement", "Gender focal point",
    "Logistics focal point", "Civil-military liaison",
)
MAX_LANGUAGES = 10
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]+")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SEPARATORS = re.compile(r"[,;،؛]")  # the Arabic comma and semicolon too


class ProfileValueError(ValueError):
    """An answer that is not a phone number, a language or a known hat; `value` is the word at fault."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def normalise_phone(text: str) -> str:
    """'+223 70-00 00 01' stays as written (spaces collapsed; '00 41 …' becomes '+41…'):
    '+', a country code and 7 to 15 digits in all (E.164), with spaces, dots, dashes or brackets
    between them. Anything else raises ProfileValueError."""
    raw = " ".join(text.split())
    digits = _PHONE_SEPARATORS.sub("", raw)
    if raw.startswith("00"):
        digits = "+" + digits[2:]
    if not _E164.match(digits) or len(raw) > 32:
        raise ProfileValueError(text.strip()[:40])
    return raw if raw.startswith("+") else digits


def language_code(text: str) -> str:
    """'fr', 'fra', 'French', 'arabe', 'العربية' -> the ISO 639-1 code (or 639-3 where there is none)."""
    code = resolve_language(text)
    if code is None:
        raise ProfileValueError(text.strip()[:40])
    return code


def language_codes(text: str) -> list[str]:
    """'fr, English; arabic' -> ['fr', 'en', 'ar'] (in the order given, each once)."""
    words = [w for w in SEPARATORS.split(text) if w.strip()]
    codes = list(dict.fromkeys(language_code(w) for w in words))
    if not codes or len(codes) > MAX_LANGUAGES:
        raise ProfileValueError(text.strip()[:40])
    return codes


NO_HATS = frozenset({"none", "no", "-", "aucun", "aucune", "لا"})


def hat_name(text: str) -> str:
    """A known hat, by its name or the start of it ('hns4d' -> 'HNS4D focal point'), case and accents ignored."""
    key = fold(text)
    exact = [h for h in KNOWN_HATS if fold(h) == key]
    if exact:
        return exact[0]
    starts = [h for h in KNOWN_HATS if key and fold(h).startswith(key)]
    if len(starts) == 1:
        return starts[0]
    raise ProfileValueError(text.strip()[:40])


def hat_names(text: str) -> list[str]:
    """'HNS4D, Access focal point' -> the known hats named ('none': no other hat)."""
    if fold(text) in NO_HATS:
        return []
    return list(dict.fromkeys(hat_name(w) for w in SEPARATORS.split(text) if w.strip()))
