"""The bot's composition root."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import ErrorEvent
from aiogram.utils.i18n import gettext as _
from aiohttp import web

from services.bot import retry
from services.bot.config import Settings
from services.bot.deliveries import build_replies_router, on_closed, on_deliver
from services.bot.gate import SendGate
from services.bot.housekeeping import Housekeeping
from services.bot.i18n import DEFAULT, LanguageMiddleware, Languages
from services.bot.lessons_client import LessonsClient
from services.bot.middlewares import IdentityMiddleware, InputGuard, Throttle
from services.bot.models import BOT_TABLES
from services.bot.notify_client import NotifyClient
from services.bot.polling import Poller, StoreOutage
from services.bot.roster_client import RosterClient
from services.bot.routers.aar import build_aar_router
from services.bot.routers.calls import build_calls_router
from services.bot.routers.contacts import build_contacts_router
from services.bot.routers.departure import build_departure_router
from services.bot.routers.fallback import build_fallback_router
from services.bot.routers.handover import build_handover_router
from services.bot.routers.language import build_language_router
from services.bot.routers.lessons import build_lessons_router
from services.bot.routers.me import build_me_router, commands
from services.bot.routers.members import build_members_only_router
from services.bot.routers.pending import build_pending_router
from services.bot.routers.profile import build_profile_router
from services.bot.routers.report import build_report_router
from services.bot.routers.send import build_send_router
from services.bot.routers.start import Attempts, build_start_router
from services.bot.storage import SqlStorage, set_busy_timeout, writable
from services.bot.webhook import WebhookSecretMissing, build_webhook_app
from shared import events
from shared.bus import Bus, ConsumerRunner
from shared.clock import Clock, SystemClock, clock_for
from shared.documents import Documents
from shared.health import HealthServer
from shared.metrics import ServiceMetrics
from shared.service import close_infrastructure, open_infrastructure
from shared.store import Database, OutboxRelay

log = structlog.get_logger("bot")
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)  # seconds; quiet hours are not counted here


def make_bot(settings: Settings, gate: SendGate | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.sandbox_url)) if settings.uses_sandbox else None
    bot = Bot(settings.token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    retry.install(bot, gate=gate)
    return bot


def _retries(bot: Bot) -> retry.RetryRequests | None:
    return next((m for m in bot.session.middleware if isinstance(m, retry.RetryRequests)), None)


def make_dispatcher(*, roster: RosterClient, notify: NotifyClient, lessons: LessonsClient, settings: Settings,
                    db: Database, clock: Clock, languages: Languages, storage: SqlStorage) -> Dispatcher:
    dp = Dispatcher(storage=storage)
    language, identity = LanguageMiddleware(languages), IdentityMiddleware(roster)
    dp.message.outer_middleware(language)
    dp.message.outer_middleware(InputGuard())
    dp.message.outer_middleware(identity)
    dp.callback_query.outer_middleware(language)
    dp.callback_query.outer_middleware(identity)
    dp.include_routers(
        build_start_router(roster=roster, attempts=Attempts()),
        build_language_router(),
        build_members_only_router(),  # before the routers it guards
        build_me_router(notify=notify),
        build_pending_router(notify=notify),
        build_calls_router(notify=notify, db=db, clock=clock),
        build_replies_router(db=db, clock=clock, lessons=lessons),
        build_handover_router(db=db, clock=clock),
        build_report_router(db=db, clock=clock),
        build_aar_router(db=db, clock=clock, lessons=lessons),
        build_lessons_router(lessons=lessons),
        build_departure_router(db=db, clock=clock),
        build_send_router(roster=roster, notify=notify, db=db, clock=clock),
        build_profile_router(roster=roster, db=db, clock=clock),
        build_contacts_router(roster=roster, page_size=settings.page_size),
        build_fallback_router(),
    )

    @dp.errors()
    async def on_error(event: ErrorEvent) -> bool:
        log.exception("handler_failed", exc_info=event.exception)
        update: Any = event.update
        message = update.message or (update.callback_query.message if update.callback_query else None)
        user = update.message.from_user if update.message else update.callback_query and update.callback_query.from_user
        if message is not None:
            with languages.using(await languages.locale_for(user)):
                await message.answer(_("Something went wrong on our side. Please try again in a moment."))
        return True

    return dp


@dataclass
class BotApp:
    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    bot: Bot | None = None
    gate: SendGate | None = None
    bus: Bus | None = None
    health: HealthServer | None = None
    relay: OutboxRelay | None = None
    deliveries: ConsumerRunner | None = None
    _poller: Poller | None = None
    _polling: asyncio.Task[None] | None = None
    _stopping: asyncio.Event | None = None
    _webhook: web.AppRunner | None = None
    _housekeeping: Housekeeping | None = None
    metrics: ServiceMetrics = field(default_factory=lambda: ServiceMetrics("bot"))

    async def start(self) -> None:
        s = self.settings
        if s.mode == "webhook" and len(s.webhook_secret) < 16:
            raise WebhookSecretMissing("webhook mode needs CMCOORD_BOT_WEBHOOK_SECRET (16+ characters)")
        self.health, self.bus = await open_infrastructure(
            service="bot", settings=s, db=self.db, tables=BOT_TABLES, readiness=self.readiness, metrics=self.metrics,
            package="services.bot",
        )
        self.gate = SendGate(per_second=s.send_per_second, chat_interval=s.send_chat_interval_seconds)
        self.bot = make_bot(s, self.gate)
        languages = Languages(self.db)
        await languages.load()
        roster = RosterClient(self.bus, timeout=s.query_timeout_seconds, person_cache_seconds=s.person_cache_seconds)
        # polling: this process alone holds the conversations
        storage = SqlStorage(self.db, cache=s.mode == "polling", clock=self.clock)
        await storage.load()
        notify = NotifyClient(self.bus, timeout=s.query_timeout_seconds)
        lessons = LessonsClient(self.bus, timeout=s.query_timeout_seconds)
        dp = make_dispatcher(roster=roster, notify=notify, lessons=lessons, settings=s, db=self.db, clock=self.clock,
                             languages=languages, storage=storage)
        self.relay = OutboxRelay(self.db, self.bus, clock=self.clock, keep_published=s.outbox_keep,
                                 keep_processed=s.processed_events_keep)
        self.bus.on_reconnect(self.relay.wake)
        self.relay.start()
        self.deliveries = ConsumerRunner(
            bus=self.bus, stream="NOTIFY", durable="bot--on_deliver",
            handlers={events.NotificationClosed: partial(on_closed, bot=self.bot, db=self.db, languages=languages),
                      events.DeliverTelegram: partial(on_deliver, bot=self.bot, db=self.db, clock=self.clock,
                                                      send_gate=self.gate, documents=Documents(self.bus.js),
                                                      forget=roster.forget,
                                                      latency=self.metrics.histogram(
                                                          "delivery_seconds", "From notify's deliver command to "
                                                          "Telegram's acceptance", DELIVERY_BUCKETS))},
            key=lambda event: event.chat_id,  # type: ignore[attr-defined]  # chats side by side, each in order
            batch=s.delivery_chats_at_once, in_hand=s.deliveries_in_hand,
            max_deliver=s.max_deliver,
        )
        self.metrics.consumers = [self.deliveries]
        self.deliveries.start()
        for locale in languages.i18n.available_locales:
            with languages.using(locale):
                await self.bot.set_my_commands(commands(), language_code=None if locale == DEFAULT else locale)
        throttle = Throttle(rate=s.throttle_per_second, burst=s.throttle_burst)
        if s.mode == "webhook":
            app = build_webhook_app(bot=self.bot, dp=dp, db=self.db, secret=s.webhook_secret, path=s.webhook_path,
                                    throttle=throttle, languages=languages)
            self._webhook = web.AppRunner(app, access_log=None)
            await self._webhook.setup()
            await web.TCPSite(self._webhook, s.webhook_host, s.webhook_port).start()
            if s.webhook_url:
                await self.bot.set_webhook(s.webhook_url, secret_token=s.webhook_secret,
                                           allowed_updates=["message", "callback_query"])
        else:
            await self.bot.delete_webhook(drop_pending_updates=False)
            self._stopping = asyncio.Event()
            self._poller = Poller(self.bot, dp, self.db, timeout=s.poll_timeout_seconds, throttle=throttle,
                                  languages=languages,
                                  outage=StoreOutage(give_up_after=s.store_outage_exit_seconds))
            self._polling = asyncio.create_task(self._poller.run(self._stopping), name="polling")
        self._housekeeping = Housekeeping(db=self.db, storage=storage, clock=self.clock,
                                          inbox_keep=timedelta(days=s.inbox_keep_days),
                                          draft_keep=timedelta(days=s.draft_keep_days))
        self._housekeeping.start()
        log.info("bot_started", sandbox=s.uses_sandbox, health_port=self.health.port)

    async def readiness(self) -> dict[str, bool]:
        polling = self._polling is not None and not self._polling.done()
        return {
            "nats": bool(self.bus and self.bus.connected),
            "consumers": self.deliveries is not None and self.deliveries.bound,
            "store": await writable(self.db),  # a write could start now (a backup may hold the lock)
            "updates": self._webhook is not None or (polling and self._poller is not None and self._poller.healthy),
        }

    async def failure(self) -> str:
        """Returns, with the reason, when the bot can no longer take updates (the
        polling ended by itself: its store stayed unwritable too long, or a fault);
        the runner then stops it and exits non-zero for its supervisor to restart it."""
        polling = self._polling
        if polling is None:  # webhook mode: aiohttp serves each update on its own
            await asyncio.Event().wait()
        assert polling is not None
        await asyncio.wait({polling})
        if self._stopping is not None and self._stopping.is_set():
            await asyncio.Event().wait()  # stopped on purpose: not a failure
        if polling.cancelled():
            return "update intake cancelled"
        exc = polling.exception()
        return f"update intake ended: {exc!r}" if exc is not None else "update intake ended"

    async def stop(self) -> None:
        """Stop taking work, let what is in hand finish for a short grace (nothing waits
        for Telegram or NATS any longer: what did not go comes again at the next start),
        publish its events, close."""
        grace = self.settings.stop_grace_seconds
        deadline = asyncio.get_running_loop().time() + grace

        def left() -> float:
            return max(0.1, deadline - asyncio.get_running_loop().time())

        if self._housekeeping is not None:
            await self._housekeeping.stop()
        retries = _retries(self.bot) if self.bot is not None else None
        if retries is not None:
            retries.stop()  # no more retries, flood waits or turns: calls not yet made fail at once
        if self.gate is not None:
            self.gate.per_second, self.gate.chat_interval = 0, 0  # waiting sends reach the refusal at once
        if self._stopping is not None:
            self._stopping.set()
        stopping_deliveries = asyncio.ensure_future(self.deliveries.stop()) if self.deliveries is not None else None
        if self._polling is not None:
            # a long poll still waiting holds nothing (its updates are not
            # confirmed), so it is cancelled; updates in hand may finish
            self._polling.cancel()
            try:
                await self._polling
            except asyncio.CancelledError:
                log.info("long_poll_cancelled_at_stop")
            except Exception as exc:  # it had failed already (the runner's reason to stop)
                log.warning("update_intake_had_failed", error=repr(exc)[:300])
            if self._poller is not None:
                await self._poller.drain(timeout=left())
        if stopping_deliveries is not None:
            done, _ = await asyncio.wait({stopping_deliveries}, timeout=left())
            if not done:  # unacknowledged: NATS delivers them again to the next start
                log.warning("deliveries_left_in_hand_at_stop")
        if self._webhook is not None:
            await self._webhook.cleanup()
        if self.bot is not None:
            await self.bot.session.close()  # a call still hanging on an unreachable Telegram ends here
        await close_infrastructure(relay=self.relay, bus=self.bus, health=self.health, db=self.db)
        log.info("bot_stopped", seconds=round(grace - (deadline - asyncio.get_running_loop().time()), 2))


def build(settings: Settings, *, clock: Clock | None = None) -> BotApp:
    db = Database(settings.db_url)
    set_busy_timeout(db, settings.db_busy_timeout_seconds)
    return BotApp(settings=settings, db=db, clock=clock or clock_for(settings.clock_file))
