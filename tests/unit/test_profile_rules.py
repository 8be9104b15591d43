"""Pure rules of /profile: what an officer may say of themselves (phone, languages, hats)."""

import pytest

from services.bot.i18n import DOMAIN, Catalogues
from shared.i18n import DEFAULT, LOCALES
from services.bot.routers.profile import _languages
from shared.profile import ProfileValueError, hat_names, language_codes, normalise_phone


@pytest.mark.parametrize("text, expected", [
    ("+223 70 00 00 01", "+223 70 00 00 01"),
    ("  +41 22  917-12-34 ", "+41 22 917-12-34"),
    ("0041 22 917 12 34", "+41229171234"),
    ("+1 (212) 963.1234", "+1 (212) 963.1234"),
])
def test_a_phone_in_international_form_is_kept_as_written(text: str, expected: str) -> None:
    assert normalise_phone(text) == expected


@pytest.mark.parametrize("text", ["70 00 00 01", "+223", "+0 22 917 12 34", "call me", "+223 70 00 00 0a",
                                  "+1234567890123456", ""])
def test_anything_else_is_not_a_phone(text: str) -> None:
    with pytest.raises(ProfileValueError):
        normalise_phone(text)


def test_languages_by_code_or_english_name_each_once() -> None:
    assert language_codes("fr, English; arabic, FRA") == ["fr", "en", "ar"]
    assert language_codes("bambara") == ["bm"]
    with pytest.raises(ProfileValueError) as bad:
        language_codes("fr, Frenglish")
    assert bad.value.value == "Frenglish"
    with pytest.raises(ProfileValueError):
        language_codes(" , ")


def test_languages_named_in_french_or_arabic_and_shown_in_the_readers_language() -> None:
    assert language_codes("arabe; العربية, anglais, الفرنسية") == ["ar", "en", "fr"]
    assert language_codes("fr، الإنجليزية؛ العربية") == ["fr", "en", "ar"]  # Arabic commas separate too
    i18n = Catalogues(path=LOCALES, default_locale=DEFAULT, domain=DOMAIN)
    shown = {}
    for locale in ("en", "fr", "ar"):
        with i18n.context(), i18n.use_locale(locale):
            shown[locale] = _languages(["fr", "ar"])
    assert shown == {"en": "French (fr), Arabic (ar)", "fr": "Français (fr), Arabe (ar)",
                     "ar": "الفرنسية (fr), العربية (ar)"}


def test_hats_come_from_the_known_list() -> None:
    assert hat_names("hns4d, Access focal point, HNS4D focal point") == ["HNS4D focal point", "Access focal point"]
    assert hat_names("None") == []
    with pytest.raises(ProfileValueError) as bad:
        hat_names("Access, Chief of everything")
    assert bad.value.value == "Chief of everything"
    with pytest.raises(ProfileValueError):
        hat_names("focal")  # the start of several: not one hat
