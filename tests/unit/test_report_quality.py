"""The report's nudges (advice, never a refusal); the one refusal: #tags alone."""

from services.bot.quality import nudges, unexplained_acronyms
from services.bot.routers.report import has_content, themes_in


def kinds(text: str) -> list[str]:
    return [k for k, _ in nudges(text)]


def test_a_good_observation_gets_no_nudge() -> None:
    assert kinds("On 3 March, the checkpoint at the Mopti bridge turned back two World Food Programme convoys that "
                 "had been notified 72 hours ahead; the commander had no copy of the notifications.") == []


def test_each_rule() -> None:
    assert kinds("Checkpoint closed.") == ["too_short"]
    assert "too_long" in kinds("word " * 700)
    assert "opinion" in kinds("I think the checkpoint commander was incompetent and the convoys were stopped again.")
    assert "context" in kinds("As mentioned before, the convoys were stopped at the checkpoint near the bridge today.")


def test_acronyms_spelled_out_pass() -> None:
    assert unexplained_acronyms("The MCDA were used; the NSAG refused.") == ["MCDA", "NSAG"]
    assert unexplained_acronyms("Military and Civil Defence Assets (MCDA) were used; MCDA left. The UN agreed.") == []
    assert unexplained_acronyms("The NSAGs (non-state armed groups) agreed.") == []


def test_a_report_needs_words_besides_its_tags() -> None:
    assert themes_in("#acces #الوصول Checkpoint closed") == (["access"], "Checkpoint closed")
    assert themes_in("#foo") == ([], "#foo")
    assert not has_content(themes_in("#foo")[1]) and not has_content("#foo #bar - …")
    assert has_content("Checkpoint closed #foo") and has_content("الجسر مغلق")
