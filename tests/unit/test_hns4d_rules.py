"""HNS4D's rules and exports, without I/O: positions inside the country, lead times, acknowledgement
deadlines, what a party's answer reads as (receipt, never approval), the evidence per party, and exports
read back by other people's parsers (geojson, libhxl, fastkml)."""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geojson
import hxl
import pytest
from fastkml import kml as fastkml

from services.hns4d.exports import geojson as to_geojson
from services.hns4d.exports import hxl_csv, kml
from services.hns4d.rules import (
    DEFAULT_POLICY,
    SILENCE_AUDIENCES,
    Kind,
    Point,
    acknowledgement_due,
    lead_problem,
    lead_warning,
    party_figures,
    party_state,
    point_problem,
    UNKNOWN_PARTY,
    route_problems,
    silence_step_at,
    status_line,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MOPTI, SEVARE, BANDIAGARA = Point(14.4843, -4.1827), Point(14.5333, -4.1000), Point(14.3500, -3.6100)
# what no text may say of an acknowledgement
APPROVAL = re.compile(r"approv|clear(ed|ance)|authori[sz]|permi(t|ssion)|guarantee", re.IGNORECASE)


def test_a_position_is_checked_against_the_country() -> None:
    assert point_problem("ML", MOPTI) is None
    assert point_problem("ml", Point(10.0, -12.4)) is None  # just outside the box, by the border: the margin
    swapped = point_problem("ML", Point(MOPTI.lon, MOPTI.lat))
    assert swapped is not None and "check the order" in swapped
    paris = point_problem("ML", Point(48.85, 2.35))
    assert paris is not None and "outside ML" in paris and "order" not in paris
    adana = point_problem("SY", Point(37.0, 35.3))  # a real place beside Syria, inside it once swapped: no hint
    assert adana == "37.0, 35.3 is outside SY"
    assert "not a country code" in (point_problem("XX", Point(0, 0)) or "")
    assert "not a position" in (point_problem("ML", Point(95, 10)) or "")
    assert point_problem("PS", Point(31.50, 34.45)) is None  # Gaza: one of the country's two boxes
    assert point_problem("XK", Point(42.6, 21.1)) is None  # no box known: the ranges only


def test_a_route_has_two_points_or_more_each_in_the_country() -> None:
    assert route_problems("ML", [MOPTI, SEVARE, BANDIAGARA]) == []
    assert route_problems("ML", [MOPTI])[0].startswith("a route has at least two points")
    (problem,) = route_problems("ML", [MOPTI, Point(48.85, 2.35)])
    assert problem.startswith("point 2: ")


def test_a_movement_is_notified_48_hours_ahead_or_flagged_as_an_emergency() -> None:
    def refused(hours: float, emergency: bool = False) -> str | None:
        return lead_problem(start=NOW + timedelta(hours=hours), submitted_at=NOW, policy=DEFAULT_POLICY,
                            emergency=emergency)

    assert refused(50) is None and refused(48) is None
    assert "at least 48 hours ahead" in (refused(20) or "") and "emergency" in (refused(20) or "")
    assert refused(20, emergency=True) is None  # sent, with a warning
    assert "already started" in (refused(-1, emergency=True) or "")
    warning = lead_warning(start=NOW + timedelta(hours=20), submitted_at=NOW, policy=DEFAULT_POLICY, emergency=True)
    assert warning is not None and "20 hours" in warning and "24 hours" in warning
    assert lead_warning(start=NOW + timedelta(hours=30), submitted_at=NOW, policy=DEFAULT_POLICY,
                        emergency=True) is None


def test_each_party_is_asked_to_acknowledge_by_a_deadline() -> None:
    start = NOW + timedelta(hours=50)
    assert acknowledgement_due(sent_at=NOW, start=start, policy=DEFAULT_POLICY) == start - timedelta(hours=24)
    late = NOW + timedelta(hours=20)  # an emergency: the window is never shorter than four hours
    assert acknowledgement_due(sent_at=NOW, start=late, policy=DEFAULT_POLICY) == NOW + timedelta(hours=4)
    assert acknowledgement_due(sent_at=NOW, start=None, policy=DEFAULT_POLICY) == NOW + timedelta(hours=72)
    soon = NOW + timedelta(hours=2)  # sent two hours before it leaves: due by the start, never after it
    assert acknowledgement_due(sent_at=NOW, start=soon, policy=DEFAULT_POLICY) == soon


def test_a_party_s_answer_reads_as_receipt_or_silence_never_approval() -> None:
    due = NOW + timedelta(hours=26)
    lines = {
        "waiting": status_line(party="FAMa", sent_at=NOW, due_at=due, acknowledged_at=None, now=NOW),
        "acknowledged": status_line(party="MINUSMA", sent_at=NOW, due_at=due, acknowledged_at=NOW + timedelta(hours=3),
                                    now=NOW + timedelta(hours=5)),
        "silent": status_line(party="CSP", sent_at=NOW, due_at=due, acknowledged_at=None, now=due),
    }
    assert lines["acknowledged"] == "MINUSMA: acknowledged receipt at 02 Mar 2026 11:00 UTC"
    assert lines["silent"].startswith("CSP: silent since 02 Mar 2026 08:00 UTC")
    assert "receipt asked for by 03 Mar 2026 10:00 UTC" in lines["waiting"]
    assert party_state(acknowledged_at=None, due_at=due, now=due - timedelta(seconds=1)) == "waiting"
    texts = [*lines.values(),
             lead_problem(start=NOW + timedelta(hours=20), submitted_at=NOW, policy=DEFAULT_POLICY, emergency=False),
             lead_warning(start=NOW + timedelta(hours=2), submitted_at=NOW, policy=DEFAULT_POLICY, emergency=True),
             lead_problem(start=NOW - timedelta(hours=1), submitted_at=NOW, policy=DEFAULT_POLICY, emergency=True),
             point_problem("ML", Point(MOPTI.lon, MOPTI.lat)), point_problem("ML", Point(95, 10)),
             *route_problems("ML", [MOPTI]), kml(RECORDS), hxl_csv(RECORDS)]
    for text in texts:
        assert text is not None and not APPROVAL.search(text), text


@dataclass
class Delivery:
    country: str
    party: str
    sent_at: datetime
    due_at: datetime
    acknowledged_at: datetime | None = None
    superseded: bool = False


@dataclass
class Incident:
    country: str
    party: str | None


def test_the_evidence_per_party_counts_what_happened() -> None:
    due = NOW + timedelta(hours=24)
    deliveries = [Delivery("ML", "FAMa", NOW, due, NOW + timedelta(hours=2)),  # on time, 2 h
                  Delivery("ML", "FAMa", NOW, due, NOW + timedelta(hours=30)),  # late, 30 h
                  Delivery("ML", "FAMa", NOW, due, NOW + timedelta(hours=6)),  # on time, 6 h
                  Delivery("ML", "FAMa", NOW, due),  # silent
                  Delivery("ML", "FAMa", NOW, NOW + timedelta(days=5)),  # still waiting: neither
                  Delivery("ML", "CSP", NOW, due),
                  Delivery("ML", "CSP", NOW, due, superseded=True),  # replaced by a change: sent, not silence
                  Delivery("NE", "FAMa", NOW, due, NOW + timedelta(hours=1))]  # another country's party of that name
    figures = party_figures(deliveries, [Incident("ML", "FAMa"), Incident("ML", None), Incident("ML", "CSP")],
                            now=NOW + timedelta(days=2))
    fama = figures[("ML", "FAMa")]
    assert (fama.sent, fama.acknowledged, fama.acknowledged_on_time, fama.silent, fama.incidents) == (5, 3, 2, 1, 1)
    assert fama.median_hours_to_acknowledge == 6
    csp = figures[("ML", "CSP")]
    assert (csp.sent, csp.acknowledged, csp.silent, csp.incidents) == (2, 0, 1, 1)
    assert csp.median_hours_to_acknowledge is None
    assert figures[("NE", "FAMa")].sent == 1
    assert figures[("ML", UNKNOWN_PARTY)].incidents == 1  # nobody knows whose: counted for the country


@dataclass
class Record:
    reference: str
    kind: Kind
    points: list[Point]
    country: str = "ML"
    organisation: str = "=WFP"  # a formula, as a spreadsheet would read it
    name: str = "Convoy <Mopti> & Bandiagara\x0b"  # a vertical tab, as a pasted message may hold
    starts_at: datetime | None = NOW + timedelta(hours=50)
    ends_at: datetime | None = NOW + timedelta(hours=60)
    extra: dict[str, str] = field(default_factory=dict)


RECORDS = [Record("HN-ML-0001", "movement", [MOPTI, SEVARE, BANDIAGARA]),
           Record("HN-ML-0002", "site", [MOPTI], name="Mopti warehouse", starts_at=None, ends_at=None)]


def test_geojson_is_valid_for_a_geometry_library() -> None:
    data = to_geojson(RECORDS)
    parsed = geojson.loads(json.dumps(data))
    assert parsed.is_valid, parsed.errors()
    route, site = parsed["features"]
    assert route["geometry"]["type"] == "LineString" and route["geometry"]["coordinates"][0] == [MOPTI.lon, MOPTI.lat]
    assert site["geometry"]["type"] == "Point" and site["properties"]["reference"] == "HN-ML-0002"


def test_hxl_reads_back_by_hashtag(tmp_path: Path) -> None:
    path = tmp_path / "notifications.csv"
    path.write_text(hxl_csv(RECORDS))
    rows = list(hxl.data(str(path), hxl.InputOptions(allow_local=True)))
    assert len(rows) == 4  # three route points and the site
    assert [(r.get("#meta+ref"), float(r.get("#geo+lat")), float(r.get("#geo+lon"))) for r in rows][0] == (
        "HN-ML-0001", MOPTI.lat, MOPTI.lon)
    assert rows[0].get("#org") == "'=WFP"  # never a formula
    odd = Record("HN-ML-0003", "site", [MOPTI], name="@SUM(A1)", organisation="OCHA")
    (row,) = list(hxl.data(str(_written(tmp_path, [odd])), hxl.InputOptions(allow_local=True)))
    assert row.get("#loc+name") == "'@SUM(A1)"


def _written(tmp_path: Path, records: list[Record]) -> Path:
    path = tmp_path / "odd.csv"
    path.write_text(hxl_csv(records))
    return path


def test_a_record_of_the_wrong_shape_is_refused_not_exported() -> None:
    for bad in (Record("HN-X-1", "movement", [MOPTI]), Record("HN-X-2", "site", [MOPTI, SEVARE]),
                Record("HN-X-3", "site", [])):
        for export in (to_geojson, hxl_csv, kml):
            with pytest.raises(ValueError, match="a site has one point and a movement two or more"):
                export([bad])


def test_kml_parses_with_its_points_and_route() -> None:
    text = kml(RECORDS)
    document = fastkml.KML.from_string(text.encode())
    (folder,) = document.features
    route, site = folder.features
    assert route.name == "HN-ML-0001: Convoy <Mopti> & Bandiagara"
    assert [(round(c[0], 4), round(c[1], 4)) for c in route.geometry.coords] == [
        (MOPTI.lon, MOPTI.lat), (SEVARE.lon, SEVARE.lat), (BANDIAGARA.lon, BANDIAGARA.lat)]
    assert (round(site.geometry.x, 4), round(site.geometry.y, 4)) == (MOPTI.lon, MOPTI.lat)


def test_a_silent_party_is_told_to_the_officer_then_the_adviser_then_the_desk_once_each() -> None:
    due = NOW + timedelta(hours=26)
    steps = [silence_step_at(due_at=due, step=n, policy=DEFAULT_POLICY) for n in range(4)]
    assert steps == [due, due + timedelta(hours=6), due + timedelta(hours=12), None]
    assert SILENCE_AUDIENCES == ("cmcoord_officer", "regional_adviser", "cmcs_desk")


# What the parties and the officers read, in each language: receipt asked, never approval granted. A text
# may say what an acknowledgement is *not* ("not an approval"); none may say something was approved or cleared.
GRANTED = {"en": re.compile(r"\b(approved|cleared|clearance|authori[sz]ed|permitted)\b", re.IGNORECASE),
           "fr": re.compile(r"\b(approuvée?s?|autorisée?s?|validée?s?|feu vert)\b", re.IGNORECASE),
           "ar": re.compile(r"(تمت الموافقة|موافق عليه|مصرح به|تصريح)")}
RECEIPT = {"en": "acknowledge receipt", "fr": "accuser réception", "ar": "الإقرار بالاستلام"}


@pytest.mark.parametrize("locale", ["en", "fr", "ar"])
def test_no_hns4d_text_says_approved_or_cleared_in_any_language(locale: str) -> None:
    from shared import notices

    params = {"reference": "HN-ML-2026-0001", "organisation": "WFP", "country": "ML", "name": "Convoy",
              "start": NOW, "end": NOW + timedelta(hours=8), "due": NOW - timedelta(hours=24), "sent": NOW,
              "route": "12.6, -8.0 → 14.5, -4.2", "point": "14.5, -4.2", "vehicles": "6 trucks", "markings": "flags",
              "contact": "+223 2", "function": "warehouse", "occupancy": 40, "party": "FAMa",
              "problems": "no parties are listed for ML", "period": "2026 Q3", "notified": 3, "acknowledged": 2,
              "on_time": 1, "silent": 1, "incidents": 0, "parties": "FAMa: 3 / 2 / 1 / 2.0 / 1 / 0"}
    keys = [key for key in notices.TEMPLATES if key.startswith("hns4d.")]
    assert len(keys) == 9
    for key in keys:
        notice, english = notices.english(key, **{k: v for k, v in params.items()
                                                  if k in notices.TEMPLATES[key].placeholders()})
        shown = notices.render(notice, locale)
        assert shown is not None and (locale == "en" or shown != english), (key, locale)  # translated
        assert not GRANTED[locale].search(shown), (key, shown)
        if key not in ("hns4d.silence", "hns4d.refused", "hns4d.figures"):
            assert RECEIPT[locale] in shown.lower(), (key, shown)


def test_a_submission_is_reviewed_by_the_country_s_officers_or_the_desk_without_a_region() -> None:
    import uuid

    from services.hns4d.models import Record as Stored
    from services.hns4d.records import review_request

    at = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    record = Stored(id=uuid.uuid4(), reference="HN-ML-0001", kind="movement", country="ML", region="ROWCA",
                    organisation="WFP", submitted_by=uuid.uuid4(), name="Bamako–Mopti food convoy",
                    points="[[12.6392, -8.0029], [14.4843, -4.1827]]", starts_at=at + timedelta(hours=50),
                    ends_at=at + timedelta(hours=60), submitted_at=at, changed_at=at)
    asked = review_request(record)
    assert (asked.role, asked.region, asked.country, asked.urgent) == ("cmcoord_officer", "ROWCA", "ML", True)
    record.region = None  # a country in no region the roster knows
    asked = review_request(record)
    assert (asked.role, asked.region, asked.country) == ("cmcs_desk", None, None)


def test_the_bot_shows_an_older_hns4d_s_english_lines_as_they_came() -> None:
    from services.bot.routers.movement import status_lines
    from shared.contracts.hns4d import RecordStatus

    older = RecordStatus.model_validate({  # a reply without `parties`, as HNS4D answered before it had them
        "reference": "HN-ML-2026-0007", "kind": "movement", "country": "ML", "name": "Convoy", "state": "sent",
        "revision": 1, "lines": ["  FAMa: acknowledged receipt at 01 Jul 2026 10:40 UTC", "  A & B: silent since …"]})
    assert older.parties is None
    assert status_lines(older) == ["FAMa: acknowledged receipt at 01 Jul 2026 10:40 UTC", "A &amp; B: silent since …"]


def test_the_quarter_s_figures_go_to_the_desk_alone_a_message_per_country() -> None:
    from shared import notices
    from services.hns4d.records import figures_requests

    def row(country: str, party: str, sent: int, median: float | None) -> dict[str, object]:
        return {"country": country, "party": party, "sent": sent, "acknowledged": 1, "acknowledged_on_time": 1,
                "median_hours_to_acknowledge": median, "silent": sent - 1, "incidents": 1}

    rows = [row("ML", "FAMa", 3, 2.0), row("ML", "MINUSMA", 2, None), row("YE", "Coalition", 1, 30.25)]
    told = figures_requests(rows, period="2026 Q3")
    assert [(r.role, r.region, r.person_ids, r.everyone) for r in told] == [("cmcs_desk", None, [], False)] * 2
    mali = told[0].text
    assert "Humanitarian notifications in Mali, 2026 Q3, for the CMCS desk only. Sent to the parties: 5." in mali
    assert "Receipt acknowledged: 2, 2 of them by the deadline. Silent past the deadline: 3. Incidents: 2." in mali
    assert mali.endswith("FAMa: 3 / 1 / 1 / 2.0 / 2 / 1\nMINUSMA: 2 / 1 / 1 / – / 1 / 1")  # no answer: no median
    assert "Coalition: 1 / 1 / 1 / 30.2 / 0 / 1" in told[1].text and "Yemen" in told[1].text
    assert [r.occurrence for r in figures_requests(rows, period="2026 Q3")] == [r.occurrence for r in told]
    changed = figures_requests([row("ML", "FAMa", 4, 2.0)] + rows[1:], period="2026 Q3")
    assert changed[0].occurrence != told[0].occurrence and changed[1].occurrence == told[1].occurrence
    many = figures_requests([row("ML", f"Party {n:03} " + "x" * 100, 1, 1.0) for n in range(60)], period="2026 Q3")
    assert len(many[0].text) <= 3500 and many[0].text.endswith("(cmcoord hns4d figures)")  # the rest: named
    assert "Party 000" in many[0].text and "Party 059" not in many[0].text
    french = notices.render(told[0].notice, "fr")  # type: ignore[arg-type]
    assert french is not None and "pour le bureau de la CMCS uniquement" in french and "3e trimestre 2026" in french
