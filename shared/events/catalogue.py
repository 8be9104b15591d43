"""Every event's JSON Schema and an example envelope, as written to shared/contracts/."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from shared.events.bot import (
    AarSubmitted,
    CallAgendaAdded,
    CallSubscriptionChanged,
    CallSummarySent,
    DeliveryFailed,
    DeliverySent,
    DepartureChanged,
    HandoverNoteSubmitted,
    NotificationReplied,
    ProfileUpdated,
    ReportSubmitted,
)
from shared.events.envelope import REGISTRY, Envelope, Event, deterministic_id
from shared.events.hns4d import IncidentRecorded, PartyAcknowledged, PartySilent, RecordSent
from shared.events.lessons import AarCompleted, AarDue, AarOverdue, LessonRecorded, LessonReviewed
from shared.events.notify import (
    DeliverEmail,
    DeliverTelegram,
    NotificationClosed,
    NotificationExpired,
    NotificationRequested,
    NotificationTransitioned,
    NotificationsSettled,
    Notice,
    ReplyButton,
)
from shared.events.roster import (
    DeploymentAssigned,
    DeploymentEnded,
    DeploymentEndingSoon,
    DeploymentStarted,
    HandoverRecorded,
    PersonChanged,
    PostFilled,
    PostGapped,
    TelegramLinkHeld,
    TelegramLinked,
    TelegramUnlinked,
)


def catalogue() -> list[dict[str, Any]]:
    """Every registered event with its subject and JSON Schema (for docs and tests)."""
    return [
        {
            "type": cls.type,
            "version": cls.version,
            "subject": cls.subject(),
            "description": (cls.__doc__ or "").strip(),
            "schema": cls.model_json_schema(),
        }
        for (_, _), cls in sorted(REGISTRY.items())
    ]


_P, _D, _POST, _N = (uuid.UUID(f"00000000-0000-4000-8000-00000000000{i}") for i in range(1, 5))
_FACTS = dict(deployment_id=_D, person_id=_P, post_id=_POST, country="ML", region="ROWCA", role="cmcoord_officer",
              start=date(2026, 1, 5), planned_end=date(2026, 7, 4))

EXAMPLES: dict[type[Event], Event] = {
    DeploymentAssigned: DeploymentAssigned(**_FACTS),  # type: ignore[arg-type]
    DeploymentStarted: DeploymentStarted(**_FACTS),  # type: ignore[arg-type]
    DeploymentEndingSoon: DeploymentEndingSoon(**_FACTS, days_left=21, successor_person_id=None),  # type: ignore[arg-type]
    DeploymentEnded: DeploymentEnded(**_FACTS, ended_on=date(2026, 7, 4)),  # type: ignore[arg-type]
    PostGapped: PostGapped(post_id=_POST, country="ML", region="ROWCA", title="CMCoord Officer", duty_station="Mopti",
                           gapped_since=date(2026, 7, 5), alert_number=1, last_deployment_id=_D),
    PostFilled: PostFilled(post_id=_POST, country="ML", region="ROWCA", deployment_id=_D, person_id=_P,
                           filled_on=date(2026, 8, 1), gapped_since=date(2026, 7, 5)),
    PersonChanged: PersonChanged(person_id=_P, created=True),
    TelegramLinked: TelegramLinked(person_id=_P, telegram_user_id=424242),
    TelegramUnlinked: TelegramUnlinked(person_id=_P, telegram_user_id=424242, reason="revoked"),
    TelegramLinkHeld: TelegramLinkHeld(person_id=_P, telegram_user_id=434343, telegram_username="a_new_phone"),
    HandoverRecorded: HandoverRecorded(note_id=_N, deployment_id=_D, post_id=_POST, person_id=_P, revision=1),
    DeliverTelegram: DeliverTelegram(
        notification_id=_N, attempt=1, person_id=_P, chat_id=424242, kind="post.gapped",
        text="CMCoord Officer post in Mopti (Mali) has been gapped since 5 July.",
        buttons=[ReplyButton(label="Acknowledge", reply="ack")], urgent=False),
    DeliverEmail: DeliverEmail(notification_id=_N, reason="no Telegram link"),
    NotificationRequested: NotificationRequested(
        kind="aar.reminder", about=str(_D), occurrence="due-7d", person_ids=[_P],
        text="Your after action review of your deployment in Mali is due on 3 August 2026. It takes five short "
             "questions: what was planned, what happened, why the difference, what to sustain, what to improve. "
             "Send /aar, or press the button.",
        notice=Notice(key="aar.reminder.country", params={"country": "ML", "due": "2026-08-03"}),
        buttons=[ReplyButton(label="Write it now", reply="aar")]),
    NotificationClosed: NotificationClosed(
        notification_id=_N, person_id=_P, chat_id=424242, text="CMCoord Officer post in Mopti (Mali) has been gapped "
        "since 5 July.", acknowledged_by="Jean Ndiaye", acknowledged_at=datetime(2026, 7, 5, 6, 24, tzinfo=UTC)),
    NotificationExpired: NotificationExpired(
        notification_id=_N, person_id=_P, chat_id=424242, text="CMCoord Officer post in Mopti (Mali) has been gapped "
        "since 5 July.", closed_at=datetime(2026, 7, 9, 11, 0, tzinfo=UTC)),
    NotificationTransitioned: NotificationTransitioned(
        notification_id=_N, kind="post.gapped", about=str(_POST), occurrence="2026-07-05#1", person_id=_P,
        region="ROWCA", from_state="queued", to_state="sent", reason="Telegram accepted it",
        at=datetime(2026, 7, 5, 8, 0, tzinfo=UTC)),
    DeliverySent: DeliverySent(notification_id=_N, attempt=1, person_id=_P, message_id=17),
    DeliveryFailed: DeliveryFailed(notification_id=_N, attempt=1, person_id=_P, reason="blocked"),
    NotificationReplied: NotificationReplied(notification_id=_N, person_id=_P, reply="ack",
                                             replied_at=datetime(2026, 7, 5, 8, 0, tzinfo=UTC)),
    DepartureChanged: DepartureChanged(person_id=_P, deployment_id=_D, planned_end=date(2026, 7, 18),
                                       changed_at=datetime(2026, 7, 2, 9, 30, tzinfo=UTC)),
    CallAgendaAdded: CallAgendaAdded(person_id=_P, region="ROWCA", text="Access to Mopti since the bridge closed",
                                     added_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    CallSubscriptionChanged: CallSubscriptionChanged(person_id=_P, region="ROAP", subscribed=True,
                                                     at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    CallSummarySent: CallSummarySent(person_id=_P, region="ROWCA", sent_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC),
                                     text="Convoys to Mopti: notify 72 h ahead until the bridge reopens."),
    HandoverNoteSubmitted: HandoverNoteSubmitted(
        person_id=_P, deployment_id=_D, key_counterparts="Liaison officer of the MINUSMA force HQ (via the G-CMCoord cell)",
        open_issues="Two humanitarian notifications for Mopti routes still unacknowledged",
        recurring_meetings="Access working group, Mondays 10:00", where_files_live="OCHA Mali SharePoint > CMCoord",
        advice_to_successor="Call the liaison officer in your first week.",
        submitted_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    ProfileUpdated: ProfileUpdated(person_id=_P, phone="+223 70 00 00 01", languages=["fr", "en", "bm"],
                                   hats=["HNS4D focal point"], updated_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    ReportSubmitted: ReportSubmitted(
        report_id=_N, reference="R-7KQ2M9", person_id=_P, country="ML", themes=["access", "hns4d"],
        text="The Mopti bridge checkpoint turned back two convoys that had been notified 72 hours ahead.",
        classification="community", submitted_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC)),
    AarSubmitted: AarSubmitted(
        aar_id=_N, person_id=_P, planned="Notify every convoy 72 h ahead.", happened="Two convoys turned back.",
        difference="The checkpoint had no copy of the notifications.", sustain="The 72 h rule.",
        improve="Share notifications with the checkpoint commanders too.", themes=["hns4d"],
        classification="restricted", submitted_at=datetime(2026, 8, 1, 9, 30, tzinfo=UTC)),
    AarDue: AarDue(aar_id=_N, person_id=_P, deployment_id=_D, operation="", country="ML", region="ROWCA",
                   due_on=date(2026, 8, 3)),
    AarOverdue: AarOverdue(aar_id=_N, person_id=_P, country="ML", region="ROWCA", due_on=date(2026, 8, 3),
                           escalated_to="regional_adviser"),
    AarCompleted: AarCompleted(aar_id=_N, person_id=_P, region="ROWCA", due_on=date(2026, 8, 3),
                               submitted_on=date(2026, 8, 1), item_id=_N),
    LessonRecorded: LessonRecorded(item_id=_N, reference="R-7KQ2M9", kind="observation", country="ML", region="ROWCA",
                                   themes=["access"], classification="community"),
    LessonReviewed: LessonReviewed(item_id=_N, reference="R-7KQ2M9", action="identified", status="identified",
                                   by="desk@ocha.example", at=datetime(2026, 7, 5, 8, 0, tzinfo=UTC)),
    NotificationsSettled: NotificationsSettled(kinds=["hns4d.notification"], about=str(_N),
                                               reason="acknowledged by the party"),
    RecordSent: RecordSent(record_id=_N, reference="HN-ML-2026-0007", revision=1, kind="movement", country="ML",
                           region="ROWCA", parties=3, sent_at=datetime(2026, 7, 1, 8, 0, tzinfo=UTC)),
    PartyAcknowledged: PartyAcknowledged(record_id=_N, reference="HN-ML-2026-0007", revision=1, party_id=_POST,
                                         country="ML", via="telegram",
                                         acknowledged_at=datetime(2026, 7, 1, 11, 40, tzinfo=UTC), on_time=True),
    PartySilent: PartySilent(record_id=_N, reference="HN-ML-2026-0007", revision=1, party_id=_POST, country="ML",
                             region="ROWCA", due_at=datetime(2026, 7, 2, 8, 0, tzinfo=UTC),
                             escalated_to="cmcoord_officer"),
    IncidentRecorded: IncidentRecorded(
        incident_id=_D, record_id=_N, reference="HN-ML-2026-0007", country="ML", region="ROWCA", party_id=None,
        occurred_at=datetime(2026, 7, 3, 14, 0, tzinfo=UTC), recorded_by=_P,
        what="The convoy was held four hours at the Konna checkpoint; the notification was not known there.",
        recorded_at=datetime(2026, 7, 3, 18, 0, tzinfo=UTC)),
}

def example_envelope(cls: type[Event]) -> Envelope:
    return Envelope.wrap(EXAMPLES[cls], source=cls.type.split(".")[0], occurred_at=datetime(2026, 6, 20, 9, 30, tzinfo=UTC),
                         id=deterministic_id("example", cls.type, cls.version))


def contract_files() -> dict[str, str]:
    """File name -> JSON text for every event: its schema and an example envelope."""
    import json

    files = {}
    for (_, _), cls in sorted(REGISTRY.items()):
        stem = f"{cls.type}.v{cls.version}"
        schema = {"$id": cls.subject(), "title": cls.__name__, **cls.model_json_schema()}
        files[f"{stem}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        files[f"{stem}.example.json"] = example_envelope(cls).model_dump_json(indent=2) + "\n"
    return files
