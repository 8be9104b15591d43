"""Every text the bot sends exists in French and Arabic, with the same placeholders and markup."""

import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_keywords
from babel.messages.pofile import read_po

from services.bot.i18n import LOCALES, Catalogues
from shared.profile import hat_names

BOT = Path(__file__).resolve().parents[2] / "services" / "bot"
PLACEHOLDER = re.compile(r"\{\w+\}")
TAG = re.compile(r"</?\w+>")
NPLURALS = {"fr": 2, "ar": 6}  # the Plural-Forms of each catalogue


def marked_texts() -> set[str]:
    """Each text, or (singular, plural) for a count's text: `_("…", "…", n)` (as `make messages` extracts)."""
    keywords = parse_keywords(["_:1,1t", "_:1,2,3t", "__"])
    found = extract_from_dir(str(BOT), method_map=[("**.py", "python")], keywords=keywords)
    return {message for _file, _line, message, _comments, _context in found}


def catalogue(locale: str) -> dict[Any, tuple[Any, bool]]:
    with (LOCALES / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {m.id: (m.string, m.fuzzy) for m in read_po(f, locale=locale) if m.id}


def test_the_bot_marks_its_texts_for_translation() -> None:
    texts = marked_texts()
    assert len(texts) >= 30
    assert "I did not understand that. /help lists what I can do." in texts


@pytest.mark.parametrize("locale", ["fr", "ar"])
def test_every_text_is_translated(locale: str) -> None:
    translated = catalogue(locale)
    missing = sorted(marked_texts() - set(translated))
    assert missing == [], f"run `make messages` and translate: {missing}"
    for msgid, (msgstr, fuzzy) in translated.items():
        assert msgstr and not fuzzy, f"{locale}: untranslated or fuzzy: {msgid!r}"
        if isinstance(msgid, tuple):  # a count's text: each plural form, some of which name no number ("شخصان")
            assert len(msgstr) == NPLURALS[locale] and all(msgstr), msgid
            for form in msgstr:
                assert set(PLACEHOLDER.findall(form)) <= set(PLACEHOLDER.findall(msgid[1])), (msgid, form)
                assert sorted(TAG.findall(form)) == sorted(TAG.findall(msgid[1])), msgid
            continue
        assert sorted(PLACEHOLDER.findall(msgstr)) == sorted(PLACEHOLDER.findall(msgid)), msgid
        assert sorted(TAG.findall(msgstr)) == sorted(TAG.findall(msgid)), msgid


def test_the_translations_use_the_words_the_bot_reads() -> None:
    fr, ar = catalogue("fr"), catalogue("ar")
    hats = [msgid for msgid in fr if isinstance(msgid, str) and re.search(r"\bhats?\b", msgid)]
    assert hats and all("casquette" in fr[msgid][0] for msgid in hats)  # one French word for a hat
    prompt = "3/3 Your other hats, separated by commas, from: {known}. Send none for no other hat, or - to keep them."
    for translated, none in ((fr, "aucune"), (ar, "لا")):
        assert f" {none} " in translated[prompt][0] and "none" not in translated[prompt][0]
        assert hat_names(none) == []
    phones = [msgstr for msgid, (msgstr, _) in ar.items() if isinstance(msgid, str) and "+223 70 00 00 01" in msgid]
    assert phones and all("\u2066+223 70 00 00 01\u2069" in s for s in phones)  # kept left to right in Arabic


@pytest.mark.parametrize("locale, n, expected", [
    ("en", 1, "1 person in ROWCA"), ("en", 3, "3 people in ROWCA"),
    ("fr", 1, "1 personne dans la région ROWCA"), ("fr", 3, "3 personnes dans la région ROWCA"),
    ("ar", 1, "شخص واحد في ROWCA"), ("ar", 2, "شخصان في ROWCA"), ("ar", 3, "3 أشخاص في ROWCA"),
    ("ar", 11, "11 شخصًا في ROWCA"), ("ar", 100, "100 شخص في ROWCA"),
])
def test_a_count_takes_the_plural_form_of_the_language(locale: str, n: int, expected: str) -> None:
    i18n = Catalogues(path=LOCALES)
    said = i18n.gettext("{n} person in {region}", "{n} people in {region}", n, locale=locale)
    assert said.format(n=n, region="ROWCA") == expected


def test_catalogues_compile_in_memory() -> None:
    i18n = Catalogues(path=LOCALES)
    assert i18n.available_locales == ("en", "ar", "fr")
    assert i18n.gettext("Choose your language:", locale="fr") == "Choisissez votre langue :"
    assert i18n.gettext("Choose your language:", locale="ar") == "اختر لغتك:"
    assert i18n.gettext("Choose your language:", locale="en") == "Choose your language:"
