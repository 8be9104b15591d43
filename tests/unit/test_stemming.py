"""The lessons index's stems (services/lessons/stemming.py): English, French and Arabic words
meet their forms, and what they must not meet stays apart."""

import pytest

from services.lessons.stemming import ENGLISH, FRENCH, LATIN, fold, item_terms, latin_languages, query_terms


def finds(query: str, text: str) -> bool:
    """Whether a report reading `text` is found by `query`, as the index matches: every query
    word through one of its terms."""
    _, body = item_terms("", text)
    indexed = set(body.split())
    return all(indexed & set(terms) for terms in query_terms(query))


FRENCH_REPORT = "Les convois n'ont pas pu accéder au camp de Bentiu pendant trois jours."


@pytest.mark.parametrize("query", ["accès", "acces", "ACCÈS", "accéder", "convoi", "camps"])
def test_a_french_word_finds_its_family(query: str) -> None:
    assert finds(query, FRENCH_REPORT)


@pytest.mark.parametrize("text", ["Il faut accepter l'escorte de la police pour les convois.",
                                  "Il faut accélérer la distribution des vivres dans le camp.",
                                  "L'accent est mis sur la coordination avec les autorités."])
def test_acces_does_not_reach_words_that_only_begin_alike(text: str) -> None:
    assert not finds("accès", text)


@pytest.mark.parametrize(("query", "text"), [
    ("مستشفى", "نقل الجرحى إلى المستشفيات بعد إغلاق الطرق"),  # hospital: the hospitals
    ("المستشفيات", "وصل الفريق إلى مستشفى المدينة"),
    ("مستشفيات", "نقل الجرحى إلى المستشفيات"),
    ("الوصول", "سمح الجيش بالوصول إلى المخيم"),  # access: with access
    ("وصول", "تعذر الوصول إلى المخيم"),  # a leading waw that is the root's
    ("طريق", "أغلقت القوات الطريق الرئيسي"),
    ("الإغاثة", "قوافل الاغاثة"),  # hamza written or not
    ("المدنيين", "حماية المدنيّين"),  # shadda written or not
    ("مساعدات", "وصلت المساعدات الإنسانية"),
])
def test_an_arabic_word_finds_its_forms(query: str, text: str) -> None:
    assert finds(query, text)


def test_arabic_words_that_only_look_alike_stay_apart() -> None:
    assert not finds("مستشفى", "وصل المستشار إلى المخيم")  # adviser
    assert not finds("الطرق", "وصلت الشاحنات إلى المطار")


def test_english_words_meet_their_forms_and_no_more() -> None:
    report = "The police escorted the evacuation convoys to the airstrip."
    assert finds("convoy evacuations escort", report)
    assert finds("Police", report)
    assert not finds("policy", report)
    assert not finds("plant", "The plan was shared with the armed forces.")


def test_a_reports_language_comes_from_its_common_words() -> None:
    assert latin_languages("The convoy was turned back at the bridge.") == (ENGLISH,)
    assert latin_languages(FRENCH_REPORT) == (FRENCH,)
    assert latin_languages("Mopti checkpoint") == LATIN  # too few words to tell: both
    assert latin_languages("UN convoy") == LATIN  # UN is no French article here


def test_folding() -> None:
    assert fold("Accès L'ÉVACUATION ١٢٣ cœur") == "acces evacuation 123 coeur"
    assert fold("المُسْتَشْفَى الإغاثة") == "المستشفي الاغاثه"


def test_a_query_of_no_word_has_no_terms() -> None:
    assert query_terms("  ... -- ") == []
    assert query_terms("accès accès") == query_terms("accès")
