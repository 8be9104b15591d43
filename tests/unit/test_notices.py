"""Notices written in the reader's language: plural forms, dates and times in the reader's zone, country
and region names, and the English text when a notice cannot be written."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from shared.events import Notice
from shared.i18n import reader_locale
from shared.notices import TEMPLATES, button_label, english, local_time, long_date, reasons_in, render


@pytest.mark.parametrize("locale, days, expected", [
    ("en", 1, "(1 day)"), ("en", 14, "(14 days)"),
    ("fr", 1, "(dans 1 jour)"), ("fr", 14, "(dans 14 jours)"),
    ("ar", 1, "(بعد يوم واحد)"), ("ar", 2, "(بعد يومين)"), ("ar", 7, "(بعد 7 أيام)"), ("ar", 14, "(بعد 14 يومًا)"),
    ("ar", 100, "(بعد 100 يوم)"),
])
def test_a_count_of_days_takes_the_language_s_plural_form(locale: str, days: int, expected: str) -> None:
    notice, _ = english("handover.reminder", country="NE", end=date(2026, 12, 20), days=days)
    assert expected in (render(notice, locale) or "")


def test_dates_countries_and_regions_are_the_reader_s() -> None:
    notice, text = english("handover.departure", country="CD", end=date(2026, 3, 3))
    assert text.startswith("Your deployment in Democratic Republic of the Congo ends on 3 March 2026.")
    assert (render(notice, "fr") or "").startswith("Votre déploiement (République démocratique du Congo) prend fin "
                                                  "le 3 mars 2026.")
    assert "في جمهورية الكونغو الديمقراطية يوم 3 مارس 2026" in (render(notice, "ar") or "")
    call, _ = english("call.link.none", call="ROMENA", start=datetime(2026, 3, 3, 6, 0, tzinfo=UTC))
    assert render(call, "ar", "Asia/Beirut") == ("يبدأ اجتماع التنسيق الإقليمي (الشرق الأوسط وشمال أفريقيا) بعد ساعة: "
                                                "الثلاثاء 3 مارس، 08:00 (Asia/Beirut).\nسيرسل رئيس الاجتماع الرابط.")


def test_the_first_of_a_month_in_french_is_1er() -> None:
    assert long_date(date(2026, 1, 1), "fr") == "1er janvier 2026" and long_date(date(2026, 1, 11), "fr") == "11 janvier 2026"
    assert long_date(date(2026, 1, 1)) == "1 January 2026"


def test_a_time_is_shown_in_the_reader_s_zone() -> None:
    start = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    assert local_time(start, "Asia/Bangkok") == "Tuesday 03 March, 13:00 (Asia/Bangkok)"
    assert local_time(start, "Africa/Niamey", "fr") == "mardi 3 mars à 07:00 (Africa/Niamey)"
    assert local_time(datetime(2026, 3, 1, 9, tzinfo=UTC), "UTC", "fr") == "dimanche 1er mars à 09:00 (UTC)"
    assert local_time(start, "Not/AZone") == "Tuesday 03 March, 06:00 (Not/AZone)"  # a zone unknown here: UTC


def test_what_cannot_be_written_is_none_and_the_sender_s_english_goes() -> None:
    assert render(Notice(key="hns4d.later", params={"x": 1}), "fr") is None  # a newer sender's key
    assert render(Notice(key="handover.departure", params={"country": "NE"}), "fr") is None  # a parameter missing
    assert render(Notice(key="handover.departure", params={"country": "NE", "end": "soon"}), "fr") is None
    with pytest.raises(ValueError):
        english("handover.departure", country="NE")
    newer = Notice.model_validate({"key": "handover.departure", "params": {"country": "NE", "end": "2026-03-03"},
                                   "style": "short"})  # a field a newer sender adds: ignored, not refused
    assert (render(newer, "fr") or "").startswith("Votre déploiement (Niger) prend fin le 3 mars 2026.")


def test_button_labels_and_every_template_s_placeholders() -> None:
    assert button_label("Acknowledge", "fr") == "Accuser réception"
    assert button_label("Acknowledge", "ar") == "أقرّ بالاستلام"
    assert button_label("A label nobody translated", "ar") == "A label nobody translated"
    for key, template in TEMPLATES.items():
        assert template.count is None or template.count in template.placeholders(), key


@pytest.mark.parametrize("chosen, spoken, expected", [
    ("fr", ["English"], "fr"),  # the bot's /lang (or the Telegram app's) first
    (None, ["Bambara", "Arabic", "French"], "ar"),  # else the first the roster has that is written here
    (None, ["fra"], "fr"), (None, ["Swahili"], "en"), (None, [], "en"), ("sw", [], "en"),
])
def test_the_reader_s_language(chosen: str | None, spoken: list[str], expected: str) -> None:
    assert reader_locale(chosen, spoken) == expected


def test_texts_notify_composes_are_written_for_each_reader() -> None:
    import uuid

    from services.notify.campaigns import note_for_successor
    from services.notify.recipients import Recipient
    from shared.contracts.roster import HandoverNoteCard

    note = HandoverNoteCard(id=uuid.uuid4(), deployment_id=uuid.uuid4(), post_id=uuid.uuid4(), person_id=uuid.uuid4(),
                            key_counterparts="G-CMCoord cell", advice_to_successor="Meet the liaison early.",
                            submitted_at=datetime(2026, 3, 1, tzinfo=UTC))
    ask = note_for_successor(outgoing_deployment_id=note.deployment_id, note=note, outgoing_name="Awa Traoré",
                             incoming=uuid.uuid4())
    reader = Recipient(person_id=uuid.uuid4(), name="", telegram_user_id=1, timezone="Africa/Niamey", regions=())
    assert ask.request.text == "Handover note from Awa Traoré:\nKey counterparts: G-CMCoord cell\nAdvice: Meet the liaison early."
    assert ask.request.text_for(replace(reader, locale="fr")) == (
        "Note de passation de Awa Traoré :\nInterlocuteurs clés : G-CMCoord cell\nConseils : Meet the liaison early.")
    assert ask.request.text_for(replace(reader, locale="ar")).startswith("مذكرة التسليم من Awa Traoré:\nالمحاورون الرئيسيون:")
    escalation, _ = english("escalation", name="Awa Traoré", sent=datetime(2026, 3, 3, 6, 24, tzinfo=UTC), text="…")
    assert "envoyé pour la première fois le mardi 3 mars à 07:24 (Africa/Niamey)" in (
        render(escalation, "fr", "Africa/Niamey") or "")
    assert [b.label for b in ask.request.buttons_for(replace(reader, locale="ar"))] == ["أقرّ بالاستلام"]


def test_the_desk_reads_why_someone_was_not_reached_in_its_language() -> None:
    assert reasons_in("Awa Traoré (blocked; e-mailed)", "fr") == "Awa Traoré (bot bloqué ; envoyé par courriel)"
    assert reasons_in("Awa Traoré (blocked; e-mailed)", "ar") == "Awa Traoré (حظر البوت؛ أُرسلت بالبريد الإلكتروني)"
    assert reasons_in("Awa Traoré (blocked; e-mailed)", "en") == "Awa Traoré (blocked; e-mailed)"
    # a refusal's own words stay; a name with brackets of its own keeps them
    assert reasons_in("Jean (ROWCA) (refused: Bad Request; e-mail refused: 550 5.1.1 <address>)", "fr") == (
        "Jean (ROWCA) (refusé par Telegram : Bad Request ; courriel refusé : 550 5.1.1 <address>)")
    assert reasons_in("Nadia (something new)", "fr") == "Nadia (something new)"
    # a refusal's words with brackets of their own; a line cut at its length limit
    assert reasons_in("Awa (refused: Bad Request: can't parse (entities); e-mailed)", "fr") == (
        "Awa (refusé par Telegram : Bad Request: can't parse (entities) ; envoyé par courriel)")
    assert reasons_in("Awa (blocked; e-mai", "fr") == "Awa (bot bloqué ; e-mai"
