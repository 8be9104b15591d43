"""Every text the bot sends, and every notice the services send (shared/notices.py), exists in French and
Arabic, with the same placeholders and markup, and follows the glossary and the writing rules."""

import gettext
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_keywords
from babel.messages.pofile import read_po

from services.bot.i18n import Catalogues
from shared.i18n import LOCALES
from shared.profile import hat_names

BOT = Path(__file__).resolve().parents[2] / "services" / "bot"
PLACEHOLDER = re.compile(r"\{\w+\}")
TAG = re.compile(r"</?\w+>")
NPLURALS = {"fr": 2, "ar": 6}  # the Plural-Forms of each catalogue


def marked_texts() -> set[Any]:
    """Each text, or (singular, plural) for a count's text: `_("…", "…", n)` (as `make messages` extracts)."""
    keywords = parse_keywords(["_:1,1t", "_:1,2,3t", "__"])
    found = extract_from_dir(str(BOT), method_map=[("**.py", "python")], keywords=keywords)
    return {message for _file, _line, message, _comments, _context in found}


DOMAINS = ("messages", "notices")


def catalogue(locale: str, domain: str = "messages") -> dict[Any, tuple[Any, bool]]:
    """msgid (or (msgctxt, msgid) in `notices`, whose texts have a context) -> (msgstr, fuzzy)."""
    with (LOCALES / locale / "LC_MESSAGES" / f"{domain}.po").open("rb") as f:
        return {(m.context, m.id) if m.context else m.id: (m.string, m.fuzzy) for m in read_po(f, locale=locale)
                if m.id}


def both(locale: str) -> dict[Any, tuple[Any, bool]]:
    return {**catalogue(locale, "messages"), **catalogue(locale, "notices")}


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


# The glossary (shared/locales/GLOSSARY.md) and the writing rules every catalogue follows.

GLOSSARY = LOCALES / "GLOSSARY.md"
COMMAND = re.compile(r"/[a-z_]+")
MARKUP = re.compile(r"\{[^{}]*\}|%\(\w+\)[sd]|</?\w+[^<>]*>")  # placeholders and HTML tags
ARABIC_MARKS = re.compile("[\u064b-\u0652\u0670\u0640]")  # tashkeel, shadda, superscript alef, tatweel
ARABIC_PARTICLES = "(?:[وف]?(?:[بلك]?ال|لل|[بلك])?)"
COUNTS = {"n", "count", "total", "length", "join", "decline", "none", "sent", "acknowledged", "pending", "unreachable"}
LRM = "\u200e"


def glossary_forbidden() -> dict[str, list[str]]:
    """The terms in backticks in the table's "Forbidden in French" and "Forbidden in Arabic" columns."""
    rows = [line.strip().strip("|").split("|") for line in GLOSSARY.read_text(encoding="utf-8").splitlines()
            if line.startswith("|")]
    header = [cell.strip() for cell in rows[0]]
    columns = {"fr": header.index("Forbidden in French"), "ar": header.index("Forbidden in Arabic")}
    return {locale: [term for row in rows[2:] for term in re.findall(r"`([^`]+)`", row[column])]
            for locale, column in columns.items()}


def forbidden_pattern(locale: str, term: str) -> re.Pattern[str]:
    if locale == "ar":  # at a word's start, after و ف ب ل ك and ال, with any ending
        return re.compile(rf"(?<!\w){ARABIC_PARTICLES}{re.escape(ARABIC_MARKS.sub('', term))}")
    stem, any_ending = (term[:-1], True) if term.endswith("*") else (term, False)
    end = "" if any_ending else r"(?!\w)"
    return re.compile(rf"(?<!\w){re.escape(stem)}{end}", re.IGNORECASE)


def forms(msgstr: Any) -> list[str]:
    return [msgstr] if isinstance(msgstr, str) else [form for form in msgstr if form]


def glossary_problems(locale: str, translations: dict[Any, tuple[Any, bool]]) -> list[tuple[str, str]]:
    patterns = [(term, forbidden_pattern(locale, term)) for term in glossary_forbidden()[locale]]
    found = []
    for msgstr, _fuzzy in translations.values():
        for form in forms(msgstr):
            prose = MARKUP.sub(" ", COMMAND.sub(" ", form))
            if locale == "ar":
                prose = ARABIC_MARKS.sub("", prose)
            found += [(term, form) for term, pattern in patterns if pattern.search(prose)]
    return found


def test_the_glossary_names_the_forbidden_renderings() -> None:
    forbidden = glossary_forbidden()
    assert {"officier*", "leçon*", "checkpoint", "signalement*"} <= set(forbidden["fr"])
    assert {"ضابط", "ضباط", "انتشار", "بلاغ", "بعد العمل", "تجاهل"} <= set(forbidden["ar"])
    old = {"x": ("Ce bot sert la communauté : officiers, points focaux", False), "y": ("Le Checkpoint du pont", False)}
    assert [term for term, _ in glossary_problems("fr", old)] == ["officier*", "checkpoint"]
    old = {"x": ("يخدم هذا البوت: الضباط وجهات التنسيق", False), "y": ("تم تجاهل البلاغ.", False),
           "z": ("ما زال عليك ‎/aar لمراجعتك بعد العمل", False), "w": ("الإبلاغ عمّا لاحظته، والانضباط", False)}
    assert sorted(term for term, _ in glossary_problems("ar", old)) == sorted(["ضباط", "تجاهل", "بلاغ", "بعد العمل"])


@pytest.mark.parametrize("locale", ["fr", "ar"])
def test_no_translation_uses_a_forbidden_term_of_the_glossary(locale: str) -> None:
    assert glossary_problems(locale, both(locale)) == []


def french_writing_problems(translations: dict[Any, tuple[Any, bool]]) -> list[str]:
    """Point médian and "(s)"/"(e)" forms: the UN French writing guidance asks for epicene words or doubled forms,
    and a count written "(s)" reads "1 participeront"."""
    return [form for msgstr, _ in translations.values() for form in forms(msgstr)
            if "·" in form or "\u2027" in form or re.search(r"\w\((?:e|s|es|x)\)", form)]


def test_french_has_no_point_median_and_no_parenthesised_endings() -> None:
    assert french_writing_problems({"x": ("Seul·e la présidence", False), "y": ("{total} trouvé(s)", False)}) == [
        "Seul·e la présidence", "{total} trouvé(s)"]
    assert french_writing_problems(both("fr")) == []


def french_country_preposition_problems(translations: dict[Any, tuple[Any, bool]]) -> list[str]:
    """"au {country}" is wrong for most countries (en Mauritanie, aux Philippines): no preposition before it."""
    return [form for msgstr, _ in translations.values() for form in forms(msgstr)
            if re.search(r"\b(?:au|aux|en|du|des|de la|à)\s+\{country\}", form)]


def test_french_needs_no_preposition_that_depends_on_the_country() -> None:
    assert french_country_preposition_problems({"x": ("votre poste au {country}", False)})
    assert french_country_preposition_problems(both("fr")) == []


def bare_commands(translations: dict[Any, tuple[Any, bool]]) -> list[str]:
    """A /command inside Arabic must follow U+200E, or the slash is shown at its right ("help/")."""
    return [form for msgstr, _ in translations.values() for form in forms(msgstr)
            if re.search(rf"(?<![{LRM}<])/[a-z]", form)]


def test_every_arabic_command_is_marked_left_to_right() -> None:
    assert bare_commands({"x": ("يعرض /help ما يمكنني فعله.", False), "y": ("و‎/cancel للتوقف </b>", False)}) == [
        "يعرض /help ما يمكنني فعله."]
    assert bare_commands(both("ar")) == []


def test_arabic_plural_forms_are_cldr_s_six() -> None:
    """The catalogue's Plural-Forms picks forms in CLDR order (0, 1, 2, 3–10, 11–99, 100+), the order translation
    tools label them in, and every count's text fills the six forms, naming no number for one and two."""
    from babel import Locale
    from babel.messages.plurals import get_plural

    with (LOCALES / "ar" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        po = read_po(f, locale="ar")
    plural = gettext.c2py(po.plural_expr)
    categories = ["zero", "one", "two", "few", "many", "other"]
    assert po.num_plurals == get_plural("ar").num_plurals == 6
    assert [plural(n) for n in range(1200)] == [categories.index(Locale("ar").plural_form(n)) for n in range(1200)]
    counted = [m for m in po if m.id and isinstance(m.id, tuple)]
    assert counted
    for message in counted:
        strings = list(message.string) if isinstance(message.string, (tuple, list)) else []
        assert len(strings) == 6 and all(form.strip() for form in strings), message.id
        for one_or_two in strings[1:3]:  # "شخص واحد", "شخصان": no numeral
            assert not {p.strip("{}") for p in PLACEHOLDER.findall(one_or_two)} & COUNTS, (message.id, one_or_two)
        assert len(set(strings[3:])) == 3, message.id  # 3–10, 11–99 and 100+ decline differently


def count_followed_by_its_noun(translations: dict[Any, tuple[Any, bool]]) -> list[str]:
    """Outside a plural entry a count is not followed by its noun ("{n} رسائل" is right for 3–10 only): use a label."""
    counts = "|".join(sorted(COUNTS))
    return [msgstr for msgid, (msgstr, _) in translations.items() if isinstance(msgid, str)
            and re.search(rf"\{{(?:{counts})\}}\s+(?!من\b)[\u0621-\u064a]", msgstr)]


def test_an_arabic_count_outside_a_plural_entry_names_no_noun() -> None:
    assert count_followed_by_its_noun({"x": ("• الرد على {n} رسائل", False), "y": ("{n} من 5", False)}) == [
        "• الرد على {n} رسائل"]
    assert count_followed_by_its_noun(catalogue("ar")) == []


PLACEHOLDERS = re.compile(r"\{[^{}]*\}|%\(\w+\)[sd]|%[sd]")
ALLOWED_TAGS = {"b", "i", "u", "s", "a", "code", "pre", "blockquote", "tg-spoiler"}


def markup_problems(translations: dict[Any, tuple[Any, bool]]) -> list[tuple[Any, str]]:
    """Each form keeps the msgid's placeholders, commands and Telegram HTML tags, balanced."""
    found: list[tuple[Any, str]] = []
    for msgid, (msgstr, _) in translations.items():
        source = msgid[1] if isinstance(msgid, tuple) else msgid
        for form in forms(msgstr):
            same = (set if isinstance(msgid, tuple) else sorted)  # a plural form may leave out the number
            kept = (set(PLACEHOLDERS.findall(form)) <= set(PLACEHOLDERS.findall(source)) if isinstance(msgid, tuple)
                    else same(PLACEHOLDERS.findall(form)) == same(PLACEHOLDERS.findall(source)))
            tags = re.findall(r"<(/?)([\w-]+)[^<>]*>", form)
            depth: list[str] = []
            balanced = True
            for closing, name in tags:
                if not closing:
                    depth.append(name)
                elif not depth or depth.pop() != name:
                    balanced = False
            if (not kept or depth or not balanced or {name for _, name in tags} - ALLOWED_TAGS
                    or sorted(TAG.findall(form)) != sorted(TAG.findall(source))
                    or set(COMMAND.findall(form.replace(LRM, ""))) != set(COMMAND.findall(source))):
                found.append((msgid, form))
    return found


def test_placeholders_commands_and_markup_match_the_source() -> None:
    bad = {"Hello {name}: /help": ("Bonjour {nom} : /aide", False), "<b>{n}</b>": ("<b>{n}<b>", False),
           ("{n} day", "{n} days"): (("{n} jour", "{count} jours"), False)}
    assert [msgid for msgid, _ in markup_problems(bad)] == list(bad)
    for locale in ("fr", "ar"):
        assert markup_problems(catalogue(locale)) == [], locale


# The services' notices (shared/notices.py): the catalogue template is TEMPLATES, each entry is translated
# in every plural form, with the placeholders of its English text.

def test_the_notices_template_is_the_registry() -> None:
    from shared import notices

    with (LOCALES / "notices.pot").open("rb") as f:
        template = {(m.context, m.id) for m in read_po(f) if m.id}
    assert template == set(notices.messages()), "run `make messages` after changing shared/notices.py"


@pytest.mark.parametrize("locale", ["fr", "ar"])
def test_every_notice_is_translated(locale: str) -> None:
    from shared import notices

    translated = catalogue(locale, "notices")
    assert sorted(set(notices.messages()) - set(translated), key=str) == []
    for (context, msgid), (msgstr, fuzzy) in translated.items():
        assert msgstr and not fuzzy, f"{locale}: untranslated or fuzzy: {msgid!r}"
        if isinstance(msgid, tuple):
            assert len(msgstr) == NPLURALS[locale] and all(msgstr), msgid
            for form in msgstr:  # a form may leave the count out ("يومين"), never add a placeholder
                wanted = set(PLACEHOLDER.findall(msgid[1]))
                assert set(PLACEHOLDER.findall(form)) <= wanted, (msgid, form)
                assert wanted - set(PLACEHOLDER.findall(form)) <= {"{" + str(notices.TEMPLATES[context].count) + "}"}
            continue
        assert sorted(PLACEHOLDER.findall(msgstr)) == sorted(PLACEHOLDER.findall(msgid)), msgid
        if context == notices.BUTTON:
            assert len(msgstr) <= 40, msgstr  # a reply button's label (shared/events ReplyButton)
