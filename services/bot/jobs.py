"""What the bot's store keeps, and for how long (pruned hourly, and once at start: a job
of the service's scheduler, cut short at a stop).

- handled Telegram updates: `inbox_keep_days` (7). Telegram never sends an update
  again once it is confirmed, and never one older than a day; the inbox only has to
  recognise a second poller's copy. Unhandled updates stay whatever their age.
- conversations that ended (no step and no data left): a day after their last step.
  Such a row means nothing a missing row does not.
- drafts (a conversation with a step or data left: a report half written, an AAR
  paused with /cancel, a handover note): `draft_keep_days` (90) after they were last
  touched. /aar and /handover resume a draft "days later"; one untouched for a quarter
  is abandoned, and what it says (field observations, names) is not kept for nothing.
  The same for the drafts kept apart from the conversation (services/bot/store.py
  `Drafts`: a /report, /aar or /handover that /cancel or another command ended).

Each kind goes in batches of `batch` rows, a short write transaction each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog

from services.bot.polling import prune_inbox
from services.bot.store import SqlStorage
from shared.clock import Clock
from shared.store import Database, prune_in_batches

log = structlog.get_logger("bot")

FINISHED_CONVERSATION_KEEP = timedelta(days=1)


@dataclass
class Pruned:
    inbox: int = 0
    conversations: int = 0
    drafts: int = 0


@dataclass
class Housekeeping:
    db: Database
    storage: SqlStorage
    clock: Clock
    inbox_keep: timedelta
    draft_keep: timedelta
    batch: int = 1000
    tick_seconds: float = 3600.0
    name = "bot_housekeeping"  # its job's name (`bot_housekeeping_failed` in the logs)

    async def run_pass(self) -> Pruned:
        now = self.clock.now()
        inbox = await prune_inbox(self.db, handled_before=now - self.inbox_keep, batch=self.batch)

        async def conversations() -> int:
            return await self.storage.prune(finished_before=now - FINISHED_CONVERSATION_KEEP,
                                            abandoned_before=now - self.draft_keep, batch=self.batch)

        async def drafts() -> int:
            return await self.storage.drafts.prune(abandoned_before=now - self.draft_keep, batch=self.batch)

        pruned = Pruned(inbox=inbox, conversations=await prune_in_batches(conversations, batch=self.batch),
                        drafts=await prune_in_batches(drafts, batch=self.batch))
        log.info("bot_store_pruned", inbox=pruned.inbox, conversations=pruned.conversations, drafts=pruned.drafts)
        return pruned
