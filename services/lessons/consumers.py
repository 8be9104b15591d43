"""What lessons consumes: deployment ends (an AAR falls due), the bot's reports and AARs, and the
incidents HNS4D records (restricted observations), in one table: durable name -> the stream it
reads and, by event type, the handler applied in the consumer's transaction
(services/lessons/handlers.py), with the settings it needs bound."""

from __future__ import annotations

from functools import partial

from services.lessons import handlers
from services.lessons.duties import DutyPolicy
from shared import events
from shared.store import Consumes


def consumers(*, policy: DutyPolicy, due_days: int, threshold: float) -> dict[str, Consumes]:
    return {
        "lessons--on_roster": Consumes("ROSTER", {
            events.DeploymentEnded: partial(handlers.on_deployment_ended, policy=policy, due_days=due_days)}),
        "lessons--on_bot": Consumes("BOT", {
            events.ReportSubmitted: partial(handlers.on_report_submitted, threshold=threshold),
            events.AarSubmitted: partial(handlers.on_aar_submitted, threshold=threshold)}),
        "lessons--on_hns4d": Consumes("HNS4D", {
            events.IncidentRecorded: partial(handlers.on_incident_recorded, threshold=threshold)}),
    }
