"""Message texts fit by construction, and the daily cap's clock (pure rules)."""

from datetime import UTC, datetime, time

from services.notify.policy import local_day, summary_due
from services.notify.texts import bullets, fit
from shared.events import TEXT_MAX


def test_a_long_text_is_cut_with_an_ellipsis_to_the_limit() -> None:
    assert fit("short") == "short"
    cut = fit("word " * 2000)
    assert len(cut) == TEXT_MAX and cut.endswith("…")


def test_a_list_fits_its_budget_and_counts_what_it_left_out() -> None:
    items = [f"Item {i}: " + "x" * 480 for i in range(500)]
    text = bullets(items, budget=2500)
    assert len(text) <= 2500
    lines = text.split("\n")
    shown = [line for line in lines if line.startswith("• ")]
    assert lines[-1] == f"… (+{500 - len(shown)})"
    assert len(shown) >= 4 and all(len(line) <= 302 for line in shown)  # each item cut at 300 characters


def test_a_short_list_is_whole_and_an_empty_one_says_so() -> None:
    assert bullets(["a", "b"], budget=100) == "• a\n• b"
    assert bullets([], budget=100, empty="• nothing yet") == "• nothing yet"
    assert bullets(["line\nbreaks  and   spaces"], budget=100) == "• line breaks and spaces"


def test_a_budget_smaller_than_the_first_item_still_says_how_many() -> None:
    assert bullets(["x" * 200, "y"], budget=50) == "… (+2)"


def test_the_cap_counts_the_recipients_own_day_and_the_summary_goes_at_its_local_hour() -> None:
    late_utc = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # already 3 March in Bangkok
    assert local_day(late_utc, "Asia/Bangkok") == "2026-03-03"
    assert local_day(late_utc, "America/New_York") == "2026-03-02"
    morning = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert summary_due(morning, "Europe/Paris", time(18, 0)) == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    evening = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)
    assert summary_due(evening, "Europe/Paris", time(18, 0)) == evening  # past the hour: now
