"""Every query's JSON Schemas (request and reply) and an example of each, as written to
shared/contracts/ beside the events' (`cmcoord events --write shared/contracts`):
`<subject>.request.schema.json`, `<subject>.reply.schema.json`, `<subject>.request.example.json`,
`<subject>.reply.example.json`. tests/unit/test_query_contracts.py checks the files are current
and that both sides' models read the examples."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from shared.contracts import hns4d, lessons, notify, roster
from shared.contracts.query import Query

QUERIES: tuple[Query[Any, Any], ...] = (*roster.QUERIES, *notify.QUERIES, *lessons.QUERIES, *hns4d.QUERIES)

# --- examples (one request and one reply per query) ---------------------------------------------

_P, _D, _POST, _N, _I, _A, _P2 = (uuid.UUID(f"00000000-0000-4000-8000-00000000000{i}") for i in range(1, 8))
_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_JULY_1_8H = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)  # a movement sent to the parties

_DEPLOYMENT = roster.DeploymentCard(
    post_id=_POST, country="ML", country_name="Mali", duty_station="Mopti", region="ROWCA",
    title="CMCoord Officer", deployment_id=_D, role="cmcoord_officer", start=date(2026, 1, 5),
    planned_end=date(2026, 7, 4), hats=["security focal point"])
_CARD = roster.ContactCard(
    person_id=_P, name="Awa Traoré", organisation="OCHA", email="awa@ocha.example", phone="+223 70 00 00 00",
    telegram_username="awa_t", languages=["fr", "bm"], timezone="Africa/Bamako", deployments=[_DEPLOYMENT],
    other_hats=[], flags=[])
_ADVISER = roster.ContactCard(
    person_id=_P2, name="Jean Dupont", organisation="OCHA", email="jean@ocha.example", phone="",
    telegram_username="", languages=["fr", "en"], timezone="Africa/Dakar", deployments=[], other_hats=[], flags=[])
_PERSON = roster.PersonCard(**_CARD.model_dump(), member=True)
_PLACEMENT = roster.Placement(person=_CARD, deployment=_DEPLOYMENT)

EXAMPLES: dict[str, tuple[BaseModel, BaseModel]] = {
    roster.CONTACTS.subject: (
        roster.ContactsRequest(query="Mali", offset=0, limit=10),
        roster.ContactsPage(
            query="Mali", total=1, offset=0, items=[_CARD], matched=[roster.SearchMatch(kind="country", value="ML")],
            gaps=[roster.GapCard(post_id=_N, country="ML", country_name="Mali", duty_station="Gao", region="ROWCA",
                                 title="CMCoord Officer", gapped_since=date(2026, 2, 1), covered_by=[_ADVISER],
                                 cover_role="regional_adviser")],
            gaps_total=1)),
    roster.DIRECTORY.subject: (roster.DirectoryRequest(region="ROWCA"), roster.Directory([_PLACEMENT])),
    roster.PERSON_BY_TELEGRAM.subject: (roster.PersonByTelegramRequest(telegram_user_id=424242), _PERSON),
    roster.POST_HOLDER.subject: (roster.PostHolderRequest(post_id=_POST),
                                 roster.PostHolders(post_id=_POST, holders=[_PLACEMENT])),
    roster.REGISTER.subject: (
        roster.RegisterRequest(token="k3Yq0-invitation-token", telegram_user_id=424242, telegram_username="awa_t"),
        _PERSON),
    roster.COUNTERPARTS.subject: (
        roster.CounterpartsRequest(country="ML", requester_person_id=_P),
        roster.Counterparts([roster.CounterpartCard(country="ML", unit="Civil protection", function="Liaison",
                                                    channel="+223 20 00 00 00", classification="public")])),
    roster.RECIPIENTS.subject: (
        roster.RecipientsRequest(role="regional_adviser", region="ROWCA"),
        roster.Recipients([roster.Recipient(
            person_id=_P2, name="Jean Dupont", telegram_user_id=515151, timezone="Africa/Dakar", regions=["ROWCA"],
            organisation="OCHA", phone="", email="jean@ocha.example", telegram_username="", member=True)])),
    roster.HANDOVER_NOTE.subject: (
        roster.HandoverNoteRequest(deployment_id=_D),
        roster.HandoverNoteCard(id=_N, deployment_id=_D, post_id=_POST, person_id=_P,
                                key_counterparts="Governor's office; MINUSMA civil affairs",
                                open_issues="Access to Konna", recurring_meetings="Access WG, Tuesdays",
                                where_files_live="Team drive / Mopti", advice_to_successor="Meet the governor early",
                                revision=1, submitted_at=_AT)),
    roster.RIGHTS.subject: (roster.RightsRequest(person_id=_P2),
                            roster.Rights(person_id=_P2, member=True, desk=False, adviser_regions=["ROWCA"],
                                         organisation="OCHA")),
    notify.PENDING.subject: (
        notify.PendingRequest(person_id=_P),
        notify.Pending([notify.PendingNotification(
            notification_id=_N, kind="deployment.ending_soon", text="Your deployment in Mopti ends on 4 July.",
            state="sent", sent_at=_AT, buttons=[notify.PendingButton(label="Acknowledge", reply="ack")],
            caught_up=False)])),
    notify.CALLS.subject: (
        notify.CallsRequest(person_id=_P, region="ROWCA"),
        notify.Calls(notify.NextCall(
            region="ROWCA", name="West and Central Africa", start=datetime(2026, 3, 5, 10, tzinfo=UTC),
            end=datetime(2026, 3, 5, 11, tzinfo=UTC), timezone="Africa/Dakar", link="https://meet.example/rowca",
            chair_email="jean@ocha.example", moved=False, agenda=["Awa Traoré: access to Konna"], my_answer="join",
            agenda_full=None, agenda_per_person=3, answers=notify.CallAnswers(join=1, decline=0, none=4),
            you_chair=False))),
    notify.CALL_SUMMARY.subject: (
        notify.CallSummaryRequest(person_id=_P2, region="ROWCA"),
        notify.CallSummaryAudience(region="ROWCA", call_start=datetime(2026, 3, 5, 10, tzinfo=UTC),
                                   timezone="Africa/Dakar", audience=5)),
    notify.MESSAGE_STATUS.subject: (
        notify.MessageStatusRequest(reference="M-7KQ2M9XA"),
        notify.MessageStatus(reference="M-7KQ2M9XA", region="ROWCA", urgent=False, created_at=_AT,
                             text="Message from Jean Dupont ...", total=3, sent=2, acknowledged=["Awa Traoré"],
                             pending=["Moussa Keita"], unreachable=["Nadia Benali"], expired=[])),
    lessons.SEARCH.subject: (
        lessons.SearchRequest(person_id=_P, query="ferry", theme="access", limit=5),
        lessons.SearchPage(total=1, more_than=None, newest_first=False, offset=0, rights_unknown=False, items=[
            lessons.ItemCard(item_id=_I, reference="L-2026-0012", kind="observation", title="Ferry closed at Konna",
                             snippet="The ferry at Konna stopped on 2 March; convoys take the Sévaré road.",
                             country="ML", country_name="Mali", region="ROWCA", themes=["access"],
                             classification="community", status="new", action="", created_at=_AT)])),
    lessons.AARS.subject: (
        lessons.AarsRequest(person_id=_P),
        lessons.OwedAars([lessons.OwedAar(aar_id=_A, country="ML", country_name="Mali",
                                          operation="Mopti floods response", due_on=date(2026, 8, 3))])),
    hns4d.SUBMIT.subject: (
        hns4d.SubmitRequest(submission_id=_A, person_id=_P, submission=hns4d.Submission(
            kind="movement", country="ML", organisation="WFP", name="Bamako–Mopti food convoy",
            points=[(12.6392, -8.0029), (13.4317, -6.2157), (14.4843, -4.1827)], starts_at=_AT,
            ends_at=_AT + timedelta(hours=30), contact="+223 70 00 00 02", vehicles="6 trucks",
            markings="WFP flags")),
        hns4d.Submitted(reference="HN-ML-2026-0007", problems=[], warning="")),
    hns4d.MINE.subject: (
        hns4d.MineRequest(person_id=_P, limit=5),
        hns4d.Mine([hns4d.RecordStatus(
            reference="HN-ML-2026-0007", kind="movement", country="ML", name="Bamako–Mopti food convoy",
            organisation="WFP", asker_submitted=False,  # the country's officer asks
            state="sent", revision=1, lines=["  FAMa: acknowledged receipt at 01 Jul 2026 10:40 UTC",
                                             "  MINUSMA: silent since 01 Jul 2026 08:00 UTC (receipt was due by "
                                             "02 Jul 2026 08:00 UTC)"],
            parties=[hns4d.PartyStatus(party="FAMa", state="acknowledged", sent_at=_JULY_1_8H, due_at=_JULY_1_8H
                                       + timedelta(days=1), acknowledged_at=_JULY_1_8H + timedelta(minutes=160)),
                     hns4d.PartyStatus(party="MINUSMA", state="silent", sent_at=_JULY_1_8H,
                                       due_at=_JULY_1_8H + timedelta(days=1))])])),
}


def query_catalogue() -> list[dict[str, Any]]:
    """Every query with its subject, description and the JSON Schemas of its request and reply."""
    return [{"subject": q.subject, "owner": q.owner, "verb": q.verb, "description": q.description,
             "request": q.request.model_json_schema(), "reply": q.reply.model_json_schema()} for q in QUERIES]


def _schema(query: Query[Any, Any], side: str, model: type[BaseModel]) -> str:
    schema = {"$id": f"{query.subject}.{side}", "title": model.__name__, "description": query.description,
              **model.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _example(model: BaseModel, *, request: bool) -> str:
    """A request as `ask` sends it (the fields set), a reply as the server sends it."""
    return model.model_dump_json(indent=2, exclude_unset=request) + "\n"


def query_contract_files() -> dict[str, str]:
    """File name -> JSON text for every query: the request's and the reply's schema and example."""
    files = {}
    for q in QUERIES:
        request, reply = EXAMPLES[q.subject]
        files[f"{q.subject}.request.schema.json"] = _schema(q, "request", q.request)
        files[f"{q.subject}.reply.schema.json"] = _schema(q, "reply", q.reply)
        files[f"{q.subject}.request.example.json"] = _example(request, request=True)
        files[f"{q.subject}.reply.example.json"] = _example(reply, request=False)
    return files
