"""Words as the lessons full-text index knows them: English, French and Arabic stems.

Stems are made here, in Python: for an item when it is written (its `title_terms` and
`body_terms`) and for each query. SQLite's FTS5 and PostgreSQL's tsvector ('simple'
configuration) only index and match the terms as given, so both stores answer alike.

- Folding, everywhere: NFKC, case folded, marks removed (accents; Arabic short vowels, shadda;
  hamza on its carrier), Arabic letter variants made one (ٱ → ا, ى → ي, ة → ه, tatweel dropped),
  œ → oe, digits of any script made ASCII, French elisions (l', d', qu'…) dropped. Someone
  typing "acces" or "الاغاثة" on a phone finds "accès" and "الإغاثة".
- Latin script: Snowball English and French (PyStemmer; the same algorithms as PostgreSQL's
  english and french configurations). A report's language is detected from its common words
  (`latin_languages`): English, French, or both when they do not tell. A query's is not
  guessed (three words tell little): each query word is stemmed both ways and may match either.
- French stems also stand in the index one letter shorter, when five letters or more:
  Snowball leaves a noun and its verb a letter apart (accès → acce, accéder → acced; convoi,
  convois → convoi, convois), so "accès" finds "accéder" and "convoi" finds "convois". One way
  only (a query word finds the longer stems, not the shorter: "accéder" does not find "accès"),
  and only in text that may be French: in English the same rule would join police and policy,
  plan and plant. Matching query stems as prefixes would have joined "accès" to accepter,
  accent and accélérer too (and doubled the word forms an English query reaches).
- Arabic script: light stemming, Larkey, Ballesteros and Connell's light10 (the one Lucene's
  and Elasticsearch's Arabic analyzers use): the article and a conjunction or preposition
  before it come off the front, pronoun, dual, plural and feminine endings off the back, so
  مستشفى, المستشفيات and بالمستشفى meet at مستشف. A leading و may be a conjunction or a root
  letter (وصول): a word starting with it is indexed and searched both ways. Not Snowball's
  Arabic stemmer: without the article a plural keeps part of its ending (مستشفيات → مستشفيا,
  but المستشفيات → مستشف; مخيمات, المخيمات likewise). Not a root stemmer (ISRI, Khoja):
  roots join words that only share a root (كتاب book, مكتب office, كاتب writer), and light
  stemming retrieves better in those authors' measurements. Broken plurals (قافلة, قوافل) stay apart.
- Any other script: the folded word itself.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

import Stemmer

ENGLISH, FRENCH = "english", "french"
LATIN = (ENGLISH, FRENCH)

WORD = re.compile(r"[^\W_]+")
ELISION = re.compile(r"\b(?:[cdjlmnst]|qu|jusqu|lorsqu|puisqu|quoiqu)['’](?=[^\W_])")
LONGEST = 100  # a longer "word" (a pasted link, a key) is left out of the index and of queries
SHORTER_FROM = 5  # a French stem this long also stands one letter shorter

# Folded common words that tell English from French, none of them a word of the other language
# (nor UN, NE or LA, which are names here)
ENGLISH_WORDS = frozenset("""the of and to is was were are with for that this it from by at have has had not they
their we our which who been be when there into after before its would will""".split())
FRENCH_WORDS = frozenset("""le les des du de et est une au aux par sur dans avec que qui ils elle elles nous vous ont
ete sont cette ces leur leurs mais ou tres sans entre selon lors apres avant comme""".split())

LETTERS = str.maketrans({"ٱ": "ا", "ى": "ي", "ة": "ه", "ـ": None, "œ": "oe", "æ": "ae"})
ASCII_DIGITS = {c: str(n) for start in (0x660, 0x6F0) for n, c in enumerate(range(start, start + 10))}
ARABIC_PREFIXES = ("ال", "وال", "بال", "كال", "فال", "لل", "و")
ARABIC_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ه", "ي")  # ة and ية are ه and يه once folded


def fold(text: str) -> str:
    """Case, accents, Arabic vowels and letter variants, elisions folded away (see the module)."""
    if text.isascii():
        return ELISION.sub("", text.lower())
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return ELISION.sub("", unicodedata.normalize("NFC", text).translate(LETTERS).translate(ASCII_DIGITS))


def words(text: str) -> list[str]:
    """The folded words of a text, in order."""
    return [w for w in WORD.findall(fold(text)) if len(w) <= LONGEST]


def latin_languages(text: str) -> tuple[str, ...]:
    """The languages a text's Latin-script words are stemmed in: the one whose common words it
    uses twice or more, and twice as often as the other's; else both."""
    found = words(text)
    english, french = sum(w in ENGLISH_WORDS for w in found), sum(w in FRENCH_WORDS for w in found)
    if english >= 2 and english >= 2 * french:
        return (ENGLISH,)
    if french >= 2 and french >= 2 * english:
        return (FRENCH,)
    return LATIN


_THREAD = threading.local()  # a PyStemmer stemmer is not to be shared between threads


def _stem(language: str, word: str) -> str:
    stemmers: dict[str, Stemmer.Stemmer] = _THREAD.__dict__.setdefault("stemmers", {})
    if language not in stemmers:
        stemmers[language] = Stemmer.Stemmer(language)
    return str(stemmers[language].stemWord(word))


def _is_arabic(word: str) -> bool:
    return any("\u0600" <= c <= "\u06ff" or "\u0750" <= c <= "\u077f" or "\u08a0" <= c <= "\u08ff" for c in word)


def _is_latin(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and all(c.isascii() or "LATIN" in unicodedata.name(c, "") for c in letters)


def arabic_stem(word: str, *, conjunction: bool = True) -> str:
    """light10 on a folded word: one prefix off the front (the lone و only if `conjunction`), then
    each suffix in turn off the back, as long as two letters (three for و) remain."""
    for prefix in ARABIC_PREFIXES:
        if prefix[0] == "و" and not conjunction:
            continue
        if word.startswith(prefix) and len(word) >= (4 if len(prefix) == 1 else len(prefix) + 2):
            word = word[len(prefix):]
            break
    for suffix in ARABIC_SUFFIXES:
        if word.endswith(suffix) and len(word) >= len(suffix) + 2:
            word = word[: -len(suffix)]
    return word


@lru_cache(maxsize=65536)
def word_terms(word: str, languages: tuple[str, ...] = LATIN, *, query: bool = False) -> tuple[str, ...]:
    """A folded word's terms: its stems in the languages of its script (`languages` for Latin
    script), and in the index the shorter French stems too (never in a query)."""
    if _is_arabic(word):
        stems = [arabic_stem(word)] + ([arabic_stem(word, conjunction=False)] if word.startswith("و") else [])
    elif _is_latin(word):
        stems = []
        for language in languages:
            stem = _stem(language, word)
            stems.append(stem)
            if language == FRENCH and not query and len(stem) >= SHORTER_FROM:
                stems.append(stem[:-1])
    else:
        stems = [word]
    return tuple(dict.fromkeys(stems))


def index_terms(text: str, languages: tuple[str, ...] = LATIN) -> str:
    """A text as the index's terms: every word's, in the order of the words, space separated."""
    return " ".join(t for w in words(text) for t in word_terms(w, languages))


def item_terms(title: str, body: str) -> tuple[str, str]:
    """An item's title and body as the index's terms, in the languages detected in both."""
    languages = latin_languages(f"{title}\n{body}")
    return index_terms(title, languages), index_terms(body, languages)


def query_terms(text: str) -> list[tuple[str, ...]]:
    """A query's words, each as the terms any one of which it matches (every word must match)."""
    return list(dict.fromkeys(word_terms(w, query=True) for w in words(text)))
