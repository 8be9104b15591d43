"""What the bot consumes: notify's commands to it, in one table (durable -> stream -> {event type:
handler}, services/bot/handlers.py), consumed chat by chat: the chats side by side, each in order."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from aiogram import Bot
from prometheus_client import Histogram

from services.bot.config import Settings
from services.bot.gate import SendGate
from services.bot.handlers import on_closed, on_deliver, on_expired
from services.bot.i18n import Languages
from shared import events
from shared.bus import Bus, ConsumerRunner, Handler
from shared.clock import Clock
from shared.documents import Documents
from shared.store import Database

DELIVERIES = "bot--on_deliver"
STREAM = "NOTIFY"


def build_consumers(*, bus: Bus, bot: Bot, db: Database, clock: Clock, settings: Settings, languages: Languages,
                    gate: SendGate, forget: Callable[[int], None], latency: Histogram) -> list[ConsumerRunner]:
    handlers: dict[type[events.Event], Handler] = {
        events.DeliverTelegram: partial(on_deliver, bot=bot, db=db, clock=clock, send_gate=gate,
                                        documents=Documents(bus.js), forget=forget, latency=latency),
        events.NotificationClosed: partial(on_closed, bot=bot, db=db, languages=languages),
        events.NotificationExpired: partial(on_expired, bot=bot, db=db, languages=languages),
    }
    return [ConsumerRunner(bus=bus, stream=STREAM, durable=DELIVERIES, handlers=handlers,
                           key=lambda event: event.chat_id,  # type: ignore[attr-defined]
                           batch=settings.delivery_chats_at_once, in_hand=settings.deliveries_in_hand,
                           max_deliver=settings.max_deliver)]
