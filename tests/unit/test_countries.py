"""Countries, languages and roles by what a reader types, in English, French or Arabic."""

import pytest

from services.roster.directory import resolve_role
from shared.countries import country_label, name_key, resolve_country
from shared.languages import language_key, language_label, resolve_language


@pytest.mark.parametrize(("text", "code"), [
    ("Chad", "TD"), ("Tchad", "TD"), ("تشاد", "TD"), ("TCD", "TD"), ("td", "TD"),
    ("Mali", "ML"), ("مالي", "ML"), ("MLI", "ML"), ("République du Mali", "ML"), ("جمهوريّة مالي", "ML"),
    ("Cameroun", "CM"), ("Cameroon", "CM"), ("الكاميرون", "CM"),
    ("Côte d'Ivoire", "CI"), ("Cote d'Ivoire", "CI"), ("côte d’ivoire", "CI"), ("Ivory Coast", "CI"),
    ("ساحل العاج", "CI"),
    ("RDC", "CD"), ("DRC", "CD"), ("République démocratique du Congo", "CD"),
    ("Democratic Republic of the Congo", "CD"), ("الكونغو الديمقراطية", "CD"),
    ("Congo", "CG"), ("Congo-Brazzaville", "CG"),
    ("Palestine", "PS"), ("State of Palestine", "PS"), ("فلسطين", "PS"), ("دولة فلسطين", "PS"),
    ("Syrie", "SY"), ("Syria", "SY"), ("سوريا", "SY"), ("Syrian Arab Republic", "SY"),
    ("CAR", "CF"), ("RCA", "CF"), ("Centrafrique", "CF"), ("République centrafricaine", "CF"),
    ("جمهورية أفريقيا الوسطى", "CF"),
    ("Niger", "NE"), ("النيجر", "NE"), ("Nigeria", "NG"), ("the Gambia", "GM"), ("Guinée-Bissau", "GW"),
    ("guinee bissau", "GW"), ("Soudan du Sud", "SS"), ("جنوب السودان", "SS"), ("Birmanie", "MM"), ("Turkey", "TR"),
    ("  YEMEN ", "YE"), ("اليمن", "YE"),
])
def test_countries_by_english_french_arabic_names_and_codes(text: str, code: str) -> None:
    assert resolve_country(text) == code


@pytest.mark.parametrize("text", ["", "Korea", "Atlantis", "Diallo", "WFP", "Bamako", "ROWCA", "British", "Virgin Islands"])
def test_what_names_no_single_country_resolves_to_nothing(text: str) -> None:
    assert resolve_country(text) is None


def test_country_names_in_the_readers_language() -> None:
    assert country_label("TD", "fr") == "Tchad" and country_label("TD", "en") == "Chad"
    assert country_label("ML", "ar") == "مالي"
    assert country_label("SY", "en") == "Syria" and country_label("SY", "fr") == "Syrie"
    assert country_label("CD", "fr") == "République démocratique du Congo"
    assert country_label("XK", "fr") == "Kosovo"  # CLDR names it, ISO 3166 does not
    assert country_label("CD", "en") == "Democratic Republic of the Congo"  # not "Congo, The Democratic Republic of the"
    assert country_label("PS", "ar") == "الأرض الفلسطينية المحتلة" and country_label("BO", "en") == "Bolivia"
    assert country_label("QQ", "fr") == "QQ"  # no country: the code as it is


def test_matching_ignores_case_accents_diacritics_and_punctuation() -> None:
    assert name_key("Côte-d’Ivoire") == name_key("cote d'ivoire")
    assert name_key("جمهوريّة") == name_key("جمهورية") == name_key("جمهوريه")
    assert name_key("The Gambia") == "gambia"


@pytest.mark.parametrize(("text", "code"), [
    ("Arabic", "ar"), ("arabe", "ar"), ("العربية", "ar"), ("عربي", "ar"), ("ar", "ar"), ("ara", "ar"),
    ("French", "fr"), ("français", "fr"), ("Francais", "fr"), ("fra", "fr"),
    ("Swahili", "sw"), ("Kiswahili", "sw"), ("Hausa", "ha"), ("haoussa", "ha"), ("Peul", "ff"), ("Fulfulde", "ff"),
    ("Dari", "prs"), ("Farsi", "fa"), ("espagnol", "es"),
])
def test_languages_by_name_in_three_languages_and_by_code(text: str, code: str) -> None:
    assert resolve_language(text) == code


def test_stored_languages_are_indexed_by_code_when_known() -> None:
    assert language_key("Arabic") == language_key("ar") == language_key("العربية") == "ar"
    assert language_key("Tamasheq dialect") == "tamasheq dialect"  # unknown: as typed, still findable
    assert resolve_language("Mali") is None and resolve_language("may") is None
    assert language_label("ar", "fr") == "Arabe" and language_label("sw", "en") == "Swahili"


@pytest.mark.parametrize(("text", "role"), [
    ("surge", "surge"), ("regional adviser", "regional_adviser"), ("Conseiller régional", "regional_adviser"),
    ("point focal", "focal_point"), ("CMCS desk", "cmcs_desk"), ("regional_adviser", "regional_adviser"),
    ("Diallo", None),
])
def test_roles_by_their_usual_names(text: str, role: str | None) -> None:
    assert resolve_role(text) == role


@pytest.mark.parametrize("locale", ["en", "fr", "ar"])
def test_each_role_is_found_by_its_label_as_the_bot_shows_it(locale: str) -> None:
    from services.bot.i18n import Catalogues
    from shared.i18n import LOCALES
    from services.bot.render import ROLE_TEXT

    labels = {"cmcoord_officer": "CMCoord officer", "focal_point": "focal point", "surge": "surge",
              "regional_adviser": "regional adviser", "cmcs_desk": "CMCS desk"}  # ROLE_TEXT's msgids
    assert set(labels) == set(ROLE_TEXT)
    i18n = Catalogues(path=LOCALES)
    shown = {role: i18n.gettext(label, locale=locale) for role, label in labels.items()}
    assert {role: resolve_role(label) for role, label in shown.items()} == {role: role for role in labels}, shown


def test_page_buttons_carry_a_long_query_as_what_it_was_understood_as() -> None:
    from services.bot.routers.contacts import paging_key
    from shared.contracts.roster import SearchMatch

    assert paging_key("Tchad", [SearchMatch(kind="country", value="TD")]) == "Tchad"  # fits: as typed
    long_name = "جمهورية الكونغو الديمقراطية"
    assert len(long_name.encode()) > 48 and resolve_country(long_name) == "CD"
    key = paging_key(long_name, [SearchMatch(kind="country", value="CD")])
    assert key == "Democratic Republic of the Congo"
    assert resolve_country(key) == "CD" and resolve_language(key) is None
    assert paging_key("مستشار إقليمي " * 3, [SearchMatch(kind="role", value="regional_adviser")]) == "regional_adviser"
    assert paging_key("x" * 60, []) is None  # no buttons rather than a broken one


def test_reports_and_lessons_read_a_country_as_contacts_does() -> None:
    from shared import regions

    for text, code in (("Tchad", "TD"), ("مالي", "ML"), ("Côte d'Ivoire", "CI"), ("Thailand", "TH"), ("MLI", "ML")):
        assert regions.resolve_country(text) == code
    assert regions.resolve_country("Atlantis") is None
