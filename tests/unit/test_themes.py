"""Themes as people write them, in English, French and Arabic: one code each, whatever the accents,
case, hamza or article; what names no theme resolves to nothing."""

import pytest

from shared.themes import THEME_WORDS, THEMES, resolve_theme


@pytest.mark.parametrize(("written", "code"), [
    ("access", "access"), ("#HNS4D", "hns4d"), ("Armed escorts", "armed_escorts"), ("mcda", "last_resort"),
    ("#armed-escorts", "armed_escorts"), ("protection", "poc"), ("notification", "hns4d"),  # as before
    ("#acces", "access"), ("#accès", "access"), ("#ACCÈS", "access"), ("#Accès_humanitaire", "access"),
    ("#protection_des_civils", "poc"), ("#formation", "training"), ("#santé", "health"), ("#GANE", "nsag"),
    ("#dernier-recours", "last_resort"), ("#partage_d'information", "info_sharing"),
    ("#catastrophes_naturelles", "natural_disasters"), ("#escortes", "armed_escorts"),
    ("#الوصول", "access"), ("#وصول", "access"), ("#حماية_المدنيين", "poc"), ("#الإخطار", "hns4d"),
    ("#الاخطار", "hns4d"), ("#إخطار", "hns4d"), ("#التدريب", "training"), ("#تدريب", "training"),
    ("#الصحة", "health"), ("#الكوارث_الطبيعية", "natural_disasters"), ("#الْوُصُول", "access"),
])
def test_a_theme_is_recognised_in_each_language(written: str, code: str) -> None:
    assert resolve_theme(written) == code


@pytest.mark.parametrize("written", ["#foo", "#", "", "#acc", "#ال", "#the", "#mali", "#مالي"])
def test_what_names_no_theme_resolves_to_nothing(written: str) -> None:
    assert resolve_theme(written) is None


def test_every_theme_has_french_and_arabic_words_and_no_word_names_two_themes() -> None:
    assert set(THEME_WORDS) == set(THEMES)
    for words in THEME_WORDS.values():
        assert any(w[0].isascii() for w in words) and any("\u0600" <= w[0] <= "\u06ff" for w in words)
    assert all(resolve_theme(word) == code for code, words in THEME_WORDS.items() for word in words)

