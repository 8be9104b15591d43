"""Every text the bot sends exists in French and Arabic, with the same placeholders and markup."""

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.bot.i18n import LOCALES, Catalogues

BOT = Path(__file__).resolve().parents[2] / "services" / "bot"
PLACEHOLDER = re.compile(r"\{\w+\}")
TAG = re.compile(r"</?\w+>")


def marked_texts() -> set[str]:
    found = extract_from_dir(str(BOT), method_map=[("**.py", "python")], keywords={"_": None, "__": None})
    return {message for _file, _line, message, _comments, _context in found}


def catalogue(locale: str) -> dict[str, tuple[str, bool]]:
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
        assert sorted(PLACEHOLDER.findall(msgstr)) == sorted(PLACEHOLDER.findall(msgid)), msgid
        assert sorted(TAG.findall(msgstr)) == sorted(TAG.findall(msgid)), msgid


def test_catalogues_compile_in_memory() -> None:
    i18n = Catalogues(path=LOCALES)
    assert i18n.available_locales == ("en", "ar", "fr")
    assert i18n.gettext("Choose your language:", locale="fr") == "Choisissez votre langue :"
    assert i18n.gettext("Choose your language:", locale="ar") == "اختر لغتك:"
    assert i18n.gettext("Choose your language:", locale="en") == "Choose your language:"
