"""Versioned event contracts: the only coupling between services.

An event travels in an `Envelope` (id, type, version, occurred_at, source,
correlation_id, data) on the subject `cmcoord.<type>.v<version>`, where `type`
is `<owner>.<entity>.<event>`. Both envelope and data ignore fields they do not
know, so a producer may add fields within a major version; a breaking change is
a new class with `version = 2`, published on its own subject beside v1 until
every consumer has moved.

Events (past tense) state facts; commands (imperative) ask the owner to act.

One module per owner (`roster`, `notify`, `bot`, `lessons`, `hns4d`), the envelope and the base
class in `envelope`, every schema and example in `catalogue`; importing the package
registers every event, and each name is importable from `shared.events`.
"""

from shared.events.envelope import (
    EVENT_NAMESPACE,
    REGISTRY,
    SUBJECT_ROOT,
    TEXT_MAX,
    Envelope,
    Event,
    deterministic_id,
    register,
)
from shared.events.roster import (
    LINK_CHANGED_KINDS,
    TELEGRAM_LINK_CONFIRMED_KIND,
    TELEGRAM_LINK_HELD_KIND,
    TELEGRAM_UNLINKED_KIND,
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
from shared.events.hns4d import IncidentRecorded, PartyAcknowledged, PartySilent, RecordSent
from shared.events.lessons import AarCompleted, AarDue, AarOverdue, LessonKind, LessonRecorded, LessonReviewed
from shared.events.catalogue import EXAMPLES, catalogue, contract_files, example_envelope
from shared.roles import ROLES, Role

__all__ = [
    "EVENT_NAMESPACE", "EXAMPLES", "LINK_CHANGED_KINDS", "REGISTRY", "ROLES", "SUBJECT_ROOT",
    "TELEGRAM_LINK_CONFIRMED_KIND", "TELEGRAM_LINK_HELD_KIND", "TELEGRAM_UNLINKED_KIND", "TEXT_MAX", "AarCompleted",
    "AarDue", "AarOverdue", "AarSubmitted", "CallAgendaAdded", "CallSubscriptionChanged", "CallSummarySent",
    "DeliverEmail", "DeliverTelegram", "DeliveryFailed", "DeliverySent", "DepartureChanged", "DeploymentAssigned",
    "DeploymentEnded", "DeploymentEndingSoon", "DeploymentStarted", "Envelope", "Event", "HandoverNoteSubmitted",
    "HandoverRecorded", "IncidentRecorded", "LessonKind", "LessonRecorded", "LessonReviewed", "NotificationClosed",
    "NotificationExpired",
    "NotificationReplied", "NotificationRequested", "NotificationTransitioned", "NotificationsSettled", "PartyAcknowledged",
    "PartySilent", "PersonChanged", "RecordSent", "PostFilled",
    "Notice", "PostGapped", "ProfileUpdated", "ReplyButton", "ReportSubmitted", "Role", "TelegramLinkHeld", "TelegramLinked",
    "TelegramUnlinked", "catalogue", "contract_files", "deterministic_id", "example_envelope", "register",
]
