"""Lessons rules without I/O: AAR steps, review cycle, recurrence, classification, periods, figures."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from services.lessons import lifecycle
from services.lessons.classification import UnknownViewer, Viewer
from services.lessons.duties import DutyPolicy
from services.lessons.figures import aar_figures, build_digest, recurring_themes
from services.lessons.periods import parse_period, quarter
from shared.contracts.lessons import SearchRequest
from services.lessons.recurrence import Candidate, clusters, similar, words

DUE = date(2026, 8, 3)


def at(day: date, hour: int = 8) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# --- AAR steps ----------------------------------------------------------------

def test_aar_steps_fall_at_due_minus_seven_due_and_the_escalations() -> None:
    policy = DutyPolicy()
    assert [policy.at(DUE, i) for i in range(5)] == [at(date(2026, 7, 27)), at(DUE), at(date(2026, 8, 10)),
                                                       at(date(2026, 8, 17)), None]
    assert [s.audience for s in policy.steps()] == ["officer", "officer", "regional_adviser", "cmcs_desk"]


def test_nothing_is_due_before_the_first_step() -> None:
    assert DutyPolicy().due_now(DUE, 0, at(date(2026, 7, 27), 7)) == ([], 0)


def test_one_step_at_a_time_when_on_time() -> None:
    steps, nxt = DutyPolicy().due_now(DUE, 1, at(DUE, 9))
    assert [s.name for s in steps] == ["due"] and nxt == 2


def test_after_an_absence_only_the_latest_reminder_goes_but_every_escalation() -> None:
    steps, nxt = DutyPolicy().due_now(DUE, 0, at(date(2026, 8, 20)))
    assert [s.name for s in steps] == ["due", "due+7d", "due+14d"] and nxt == 4
    steps, nxt = DutyPolicy().due_now(DUE, 0, at(date(2026, 8, 4)))
    assert [s.name for s in steps] == ["due"] and nxt == 2


# --- review cycle -------------------------------------------------------------

def test_review_cycle_new_identified_learned() -> None:
    assert lifecycle.after("new", "identified") == "identified"
    assert lifecycle.after("identified", "learned", note="Guidance on notifications updated") == "learned"
    assert lifecycle.after("identified", "tagged") == "identified"
    assert lifecycle.after("new", "merged") == "merged"


@pytest.mark.parametrize(("status", "action", "note"), [
    ("new", "learned", "done"),  # identified first
    ("identified", "learned", "  "),  # the action taken is required
    ("identified", "identified", ""),
    ("learned", "merged", ""),
    ("merged", "tagged", ""),
    ("merged", "identified", ""),
])
def test_review_steps_out_of_order_are_refused(status: str, action: lifecycle.Action, note: str) -> None:
    with pytest.raises(lifecycle.ReviewRefused):
        lifecycle.after(status, action, note=note)


# --- recurrence ---------------------------------------------------------------

def test_words_are_folded_and_depluralised_without_common_words() -> None:
    assert words("Convoys were turned back at the Mopti checkpoint, again.") == {
        "convoy", "turned", "back", "mopti", "checkpoint"}


def candidate(text: str, *, country: str = "NE", themes: tuple[str, ...] = ("access",), day: int = 1,
              author: str = "b") -> Candidate:
    return Candidate(id=uuid.uuid4(), country=country, themes=frozenset(themes), text=text,
                     created_at=at(date(2026, 3, day)), deployment_key=f"{author}|{country}")


def test_a_similar_problem_elsewhere_is_linked_and_an_unrelated_one_is_not() -> None:
    same = candidate("A checkpoint near Niamey turned back convoys although they were notified in advance")
    other_theme = candidate("A checkpoint near Niamey turned back convoys notified in advance", themes=("training",))
    unrelated = candidate("Helicopters of the air force evacuated flood victims as a last resort")
    later = candidate("Convoys notified in advance turned back at a checkpoint", day=20)
    found = similar(text="Convoys notified 72 hours ahead were turned back at the Mopti bridge checkpoint",
                    themes=["access"], country="ML", created_at=at(date(2026, 3, 10)), deployment_key="a|ML",
                    candidates=[same, other_theme, unrelated, later], threshold=0.3)
    assert [c for c, _ in found] == [same.id]


def test_the_same_officer_in_the_same_country_is_not_a_recurrence() -> None:
    mine = candidate("Convoys notified in advance turned back at the checkpoint", country="ML", author="a")
    found = similar(text="Convoys notified in advance turned back at the checkpoint again", themes=["access"],
                    country="ML", created_at=at(date(2026, 3, 10)), deployment_key="a|ML", candidates=[mine],
                    threshold=0.3)
    assert found == []


def test_clusters_join_chains_of_links() -> None:
    a, b, c, d, e = (uuid.uuid4() for _ in range(5))
    groups = clusters([(a, b), (b, c), (d, e)])
    assert sorted(map(len, groups)) == [2, 3] and {a, b, c} in groups


# --- classification -------------------------------------------------------------

AUTHOR = uuid.uuid4()
ROLES = {
    "public": Viewer(),
    "member": Viewer(person_id=uuid.uuid4(), member=True),
    "author": Viewer(person_id=AUTHOR, member=True),
    "adviser_here": Viewer(person_id=uuid.uuid4(), member=True, adviser_regions=frozenset({"ROWCA"})),
    "adviser_elsewhere": Viewer(person_id=uuid.uuid4(), member=True, adviser_regions=frozenset({"ROAP"})),
    "desk": Viewer(member=True, desk=True),
}


@pytest.mark.parametrize(("classification", "allowed"), [
    ("public", set(ROLES)),
    ("community", set(ROLES) - {"public"}),
    ("restricted", {"author", "adviser_here", "desk"}),
])
def test_who_reads_what(classification: str, allowed: set[str]) -> None:
    seen = {name for name, v in ROLES.items()
            if v.can_see(classification=classification, author_id=AUTHOR, region="ROWCA")}
    assert seen == allowed


def test_viewer_specs_of_the_cli() -> None:
    assert Viewer.parse("adviser:rowca").adviser_regions == {"ROWCA"}
    assert Viewer.parse("desk").desk and not Viewer.parse("public").member
    assert Viewer.parse(f"person:{AUTHOR}").person_id == AUTHOR
    for bad in ("admin", "adviser:Atlantis", "person:me"):
        with pytest.raises(UnknownViewer):
            Viewer.parse(bad)


def test_a_search_says_who_asks_and_nothing_of_their_rights() -> None:
    """Rights claimed in a search (a `viewer`, as bots before the roster answered it sent)
    are dropped with the request's unknown fields: only the roster's answer grants any."""
    claimed = {"person_id": str(AUTHOR), "member": True, "desk": True, "adviser_regions": ["ROWCA"]}
    q = SearchRequest.model_validate({"person_id": str(AUTHOR), "viewer": claimed, "query": "ferry"})
    assert q.person_id == AUTHOR and "viewer" not in q.model_dump() and "desk" not in q.model_dump()
    assert SearchRequest.model_validate({"viewer": claimed}).person_id is None  # an old bot's search: the public's


# --- periods ------------------------------------------------------------------

def test_periods() -> None:
    q3 = parse_period("2026Q3")
    assert (q3.start, q3.end, q3.label) == (date(2026, 7, 1), date(2026, 9, 30), "2026 Q3")
    assert (q3.previous().start, q3.previous().end) == (date(2026, 4, 1), date(2026, 6, 30))
    assert parse_period("2026-02").end == date(2026, 2, 28)
    assert parse_period("2026").end == date(2026, 12, 31)
    with pytest.raises(ValueError):
        parse_period("Q3")


# --- figures and the digest ------------------------------------------------------

@dataclass
class FakeAar:
    region: str | None
    due_on: date
    state: str = "open"
    submitted_at: datetime | None = None


@dataclass
class FakeItem:
    reference: str
    country: str
    themes: str
    created_at: datetime
    classification: str = "community"
    kind: str = "observation"
    title: str = "A title"
    region: str | None = "ROWCA"
    status: str = "new"


def test_aar_figures_per_region() -> None:
    q3 = quarter(2026, 3)
    aars = [FakeAar("ROWCA", date(2026, 7, 10), "submitted", at(date(2026, 7, 8))),  # on time: 0 days late
            FakeAar("ROWCA", date(2026, 7, 10), "submitted", at(date(2026, 7, 20))),  # 10 days late
            FakeAar("ROWCA", date(2026, 9, 1)),  # open, 29 days late on 30 Sep
            FakeAar("ROWCA", date(2026, 10, 5)),  # due next quarter: not counted
            FakeAar("ROAP", date(2026, 9, 29), "submitted", at(date(2026, 9, 29)))]
    figures = aar_figures(aars, q3, as_of=date(2026, 9, 30))
    rowca = figures["ROWCA"]
    assert (rowca.due, rowca.submitted, rowca.overdue) == (3, 2, 1)
    assert rowca.completion_rate == pytest.approx(2 / 3) and rowca.median_days_late == 10
    assert figures["ROAP"].completion_rate == 1 and figures["ROAP"].median_days_late == 0


def test_a_theme_in_three_countries_within_a_year_is_recurring() -> None:
    items = [FakeItem("R-1", "ML", "access", at(date(2025, 11, 1))), FakeItem("R-2", "NE", "access hns4d",
             at(date(2026, 5, 1))), FakeItem("R-3", "TD", "access", at(date(2026, 9, 1))),
             FakeItem("R-4", "SD", "hns4d", at(date(2025, 1, 1))),  # more than a year before: not counted
             FakeItem("R-5", "TH", "hns4d", at(date(2026, 9, 2)), classification="restricted"),  # never shared
             FakeItem("R-6", "ML", "hns4d", at(date(2026, 9, 3)))]
    assert recurring_themes(items, end=date(2026, 9, 30)) == {"access": ["ML", "NE", "TD"]}


def test_the_digest_holds_no_restricted_item() -> None:
    items = [FakeItem("R-OPEN", "ML", "access", at(date(2026, 8, 1))),
             FakeItem("R-SECRET", "ML", "access", at(date(2026, 8, 2)), classification="restricted"),
             FakeItem("R-GONE", "ML", "access", at(date(2026, 8, 3)), status="merged")]
    digest = build_digest(period=quarter(2026, 3), items=items, year_items=items, previous_items=[], aars=[],
                          as_of=date(2026, 10, 1))
    assert "R-OPEN" in digest.markdown and "R-SECRET" not in digest.markdown and "R-GONE" not in digest.markdown
    assert "R-SECRET" not in digest.html and "<h1>" in digest.html


DIGEST_ITEMS = [FakeItem("R-ML1", "ML", "access", at(date(2026, 8, 1)), status="identified"),
                FakeItem("R-NE1", "NE", "access", at(date(2026, 8, 2))),
                FakeItem("R-CD1", "CD", "access", at(date(2026, 8, 3)), region="ROSEA"),
                FakeItem("R-TH1", "TH", "", at(date(2026, 8, 4)), region="ROAP", kind="aar")]
DIGEST_AARS = [FakeAar("ROWCA", date(2026, 7, 10), "submitted", at(date(2026, 7, 8))), FakeAar("ROWCA", date(2026, 9, 1))]
# per language: what a reader of it must find, and English it must not hold
DIGEST_WORDS = {
    "en": (["# CMCoord lessons digest, 2026 Q3", "_1 July 2026 to 30 September 2026;", "- New lessons: 4",
            "### Access (3)", "### Not yet tagged (1)", "(Mali) · lesson identified", "| West and Central Africa | 2 | 0 |",
            "| West and Central Africa | 2 | 1 | 50% | 1 |", "Recurring: Access, raised in 3 countries",
            "(Democratic Republic of the Congo, Mali and Niger)"], []),
    "fr": (["# Synthèse des enseignements CMCoord, 3e trimestre 2026", "_Du 1er juillet 2026 au 30 septembre 2026 ;",
            "- Nouveaux enseignements : 4", "### Accès (3)", "### Sans thème pour l’instant (1)",
            "(Mali) · enseignement identifié", "| Afrique de l’Ouest et du Centre | 2 | 0 |", "| 50\u00a0% |",  # a no-break space, as CLDR writes it
            "Thème récurrent : Accès ; thème soulevé dans 3 pays", "(Mali, Niger et République démocratique du Congo)"],
           ["lesson", "Access", "Region", "Trends", "quarter"]),
    "ar": (["# موجز دروس CMCoord، الربع الثالث 2026", "- الدروس الجديدة: 4", "### الوصول (3)",
            "(مالي) · درس مستخلص", "موضوع متكرر: الوصول، أُثير في 3 بلدان", "جمهورية الكونغو الديمقراطية"],
           ["lesson", "Access", "Region", "Trends", "quarter", "Mali"]),
}


@pytest.mark.parametrize("locale", DIGEST_WORDS)
def test_the_digest_is_written_in_each_language(locale: str) -> None:
    digest = build_digest(period=quarter(2026, 3), items=DIGEST_ITEMS, year_items=DIGEST_ITEMS, previous_items=[],
                          aars=DIGEST_AARS, as_of=date(2026, 10, 1), locale=locale)
    wanted, english = DIGEST_WORDS[locale]
    for text in wanted:
        assert text in digest.markdown, text
    text_only = digest.markdown.replace("CMCoord", "")
    for text in english:
        assert text not in text_only, text
    assert f'<html lang="{locale}"' in digest.html and (' dir="rtl"' in digest.html) == (locale == "ar")
    assert f"<title>{digest.title}</title>" in digest.html and "2026" in digest.title


@pytest.mark.parametrize("locale", ["fr", "ar"])
def test_the_digest_s_catalogue_words_carry_no_markdown(locale: str) -> None:
    """The digest puts its catalogue words into Markdown as they are: none may hold a character that
    Markdown gives a meaning to inside a line or a table cell."""
    from babel.messages.pofile import read_po

    from shared.i18n import LOCALES

    with (LOCALES / locale / "LC_MESSAGES" / "notices.po").open("rb") as f:
        catalogue = read_po(f, locale=locale)
    words = [m for m in catalogue if m.id and m.context and (m.context in ("digest", "theme")
                                                              or m.context.startswith("digest."))]
    assert len(words) > 30
    for m in words:
        for text in (m.string if isinstance(m.string, tuple) else (m.string,)):
            assert not set(text) & set("*_[]|<>`#\\"), (m.context, text)
