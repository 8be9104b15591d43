"""The bot's composition root."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.methods.base import Response
from aiogram.types import ErrorEvent, Message, Update
from aiogram.utils.i18n import gettext as _
from aiohttp import web

from services.bot import retry
from services.bot.config import Settings
from services.bot.consumers import build_consumers
from services.bot.gate import SendGate
from services.bot.i18n import LanguageMiddleware, Languages
from shared.i18n import DEFAULT
from services.bot.jobs import Housekeeping
from services.bot.hns4d_client import Hns4dClient
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
from services.bot.routers.language import ReaderLanguage, build_language_router
from services.bot.routers.lessons import build_lessons_router
from services.bot.routers.me import build_me_router, commands
from services.bot.routers.members import build_members_only_router
from services.bot.routers.movement import build_hns4d_router, build_movement_router
from services.bot.routers.site import build_site_router
from services.bot.routers.pending import build_pending_router
from services.bot.routers.profile import build_profile_router
from services.bot.routers.replies import build_replies_router
from services.bot.routers.report import build_report_router
from services.bot.routers.send import build_send_router
from services.bot.routers.start import Attempts, build_start_router
from services.bot.store import SqlStorage, open_store, set_busy_timeout, writable
from services.bot.webhook import WebhookSecretMissing, build_webhook_app
from shared.bus import ConsumerRunner
from shared.clock import Clock, clock_for
from shared.service import ServiceHost
from shared.store import Database

log = structlog.get_logger("bot")
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)  # seconds; quiet hours are not counted here


# aiogram reads each answer as Response[<the method's result>]; pydantic keeps those classes only while
# something else holds them, and a fan-out profile showed them rebuilt after collections (a schema
# built again for a send). The answers the bot's own calls get are held here for the process's life.
_ANSWERS = (Response[Message], Response[Message | bool], Response[bool], Response[list[Update]])


def make_bot(settings: Settings, gate: SendGate | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.sandbox_url)) if settings.uses_sandbox else None
    bot = Bot(settings.token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    retry.install(bot, gate=gate)
    return bot


def _retries(bot: Bot) -> retry.RetryRequests | None:
    return next((m for m in bot.session.middleware if isinstance(m, retry.RetryRequests)), None)


def make_dispatcher(*, roster: RosterClient, notify: NotifyClient, lessons: LessonsClient, hns4d: Hns4dClient,
                    settings: Settings, db: Database, clock: Clock, languages: Languages,
                    storage: SqlStorage) -> Dispatcher:
    dp = Dispatcher(storage=storage)
    language, identity = LanguageMiddleware(languages), IdentityMiddleware(roster)
    reader = ReaderLanguage(db=db, clock=clock, languages=languages)
    dp.message.outer_middleware(language)
    dp.message.outer_middleware(InputGuard())
    dp.message.outer_middleware(identity)
    dp.message.outer_middleware(reader)
    dp.callback_query.outer_middleware(language)
    dp.callback_query.outer_middleware(identity)
    dp.callback_query.outer_middleware(reader)
    dp.include_routers(
        build_start_router(roster=roster, attempts=Attempts(), reader=reader),
        build_language_router(reader=reader),
        build_hns4d_router(hns4d=hns4d),  # members and parties' liaisons, each what HNS4D shows them
        build_members_only_router(),  # before the routers it guards
        build_me_router(notify=notify),
        build_pending_router(notify=notify),
        build_calls_router(notify=notify, db=db, clock=clock),
        build_replies_router(db=db, clock=clock, lessons=lessons),
        build_handover_router(db=db, clock=clock),
        build_report_router(db=db, clock=clock),
        build_aar_router(db=db, clock=clock, lessons=lessons),
        build_lessons_router(lessons=lessons),
        build_movement_router(hns4d=hns4d),
        build_site_router(hns4d=hns4d),
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
class BotParts:
    """What only the bot has: the Telegram client and its send gate, the deliveries consumer,
    the update intake (a poller, or a webhook server) and the store's housekeeping (a job)."""

    bot: Bot | None = None
    gate: SendGate | None = None
    deliveries: ConsumerRunner | None = None
    poller: Poller | None = None
    polling: asyncio.Task[None] | None = None
    stopping: asyncio.Event | None = None
    webhook: web.AppRunner | None = None
    housekeeping: Housekeeping | None = None


BotApp = ServiceHost[BotParts]  # the bot as built and started


async def compose(host: BotApp) -> None:
    s, parts, db, clock = host.settings, host.parts, host.db, host.clock
    assert isinstance(s, Settings)
    if s.mode == "webhook" and len(s.webhook_secret) < 16:
        raise WebhookSecretMissing("webhook mode needs CMCOORD_BOT_WEBHOOK_SECRET (16+ characters)")
    await host.enter_store(BOT_TABLES, package="services.bot",
                           check=partial(writable, db))  # a write could start now (a backup may hold the lock)
    await host.enter_health()
    bus = await host.enter_bus()
    gate = parts.gate = SendGate(per_second=s.send_per_second, chat_interval=s.send_chat_interval_seconds)
    bot = parts.bot = make_bot(s, gate)
    host.on_stop(bot.session.close)  # after the deliveries: a call still hanging on an unreachable Telegram ends here
    languages = Languages(db)
    await languages.load()
    roster = RosterClient(bus, timeout=s.query_timeout_seconds, person_cache_seconds=s.person_cache_seconds)
    # polling: this process alone holds the conversations
    storage = SqlStorage(db, cache=s.mode == "polling", clock=clock)
    await storage.load()
    notify = NotifyClient(bus, timeout=s.query_timeout_seconds)
    lessons = LessonsClient(bus, timeout=s.query_timeout_seconds)
    hns4d = Hns4dClient(bus, timeout=s.query_timeout_seconds)
    dp = make_dispatcher(roster=roster, notify=notify, lessons=lessons, hns4d=hns4d, settings=s, db=db, clock=clock,
                         languages=languages, storage=storage)
    host.enter_relay(linger=0.05)  # a fan-out's reports, 30 a second: a few to a publish, not one each
    (parts.deliveries,) = build_consumers(
        bus=bus, bot=bot, db=db, clock=clock, settings=s, languages=languages, gate=gate, forget=roster.forget,
        latency=host.metrics.histogram("delivery_seconds", "From notify's deliver command to Telegram's acceptance",
                                       DELIVERY_BUCKETS))
    # unacknowledged at the end of the grace: NATS delivers them again to the next start
    host.enter_consumers([parts.deliveries], stop_within=lambda: host.stop_budget_left(s.stop_grace_seconds))
    for locale in languages.i18n.available_locales:
        with languages.using(locale):
            await bot.set_my_commands(commands(), language_code=None if locale == DEFAULT else locale)
    throttle = Throttle(rate=s.throttle_per_second, burst=s.throttle_burst)
    if s.mode == "webhook":
        app = build_webhook_app(bot=bot, dp=dp, db=db, secret=s.webhook_secret, path=s.webhook_path,
                                throttle=throttle, languages=languages)
        parts.webhook = web.AppRunner(app, access_log=None)
        await parts.webhook.setup()
        host.on_stop(_stop_intake(host))
        await web.TCPSite(parts.webhook, s.webhook_host, s.webhook_port).start()
        if s.webhook_url:
            await bot.set_webhook(s.webhook_url, secret_token=s.webhook_secret,
                                  allowed_updates=["message", "callback_query"])
    else:
        await bot.delete_webhook(drop_pending_updates=False)
        parts.stopping = asyncio.Event()
        parts.poller = Poller(bot, dp, db, timeout=s.poll_timeout_seconds, throttle=throttle, languages=languages,
                              outage=StoreOutage(give_up_after=s.store_outage_exit_seconds))
        parts.polling = asyncio.create_task(parts.poller.run(parts.stopping), name="polling")
        host.on_stop(_stop_intake(host))
        host.watch(partial(_intake_failure, parts))

    async def taking_updates() -> bool:
        polling = parts.polling is not None and not parts.polling.done()
        return parts.webhook is not None or (polling and parts.poller is not None and parts.poller.healthy)

    host.check("updates", taking_updates)
    parts.housekeeping = Housekeeping(db=db, storage=storage, clock=clock, inbox_keep=timedelta(days=s.inbox_keep_days),
                                      draft_keep=timedelta(days=s.draft_keep_days))
    # cut short at a stop: a batch cut short is rolled back, and the next start prunes it
    host.scheduler.every(parts.housekeeping.tick_seconds, parts.housekeeping.run_pass, name=Housekeeping.name,
                         cancel_at_stop=True)
    host.enter_jobs()
    host.started_details["sandbox"] = s.uses_sandbox


def _stop_intake(host: BotApp) -> Callable[[], Awaitable[None]]:
    """Stop taking work and let what is in hand finish for a short grace (nothing waits for
    Telegram or NATS any longer: what did not go comes again at the next start)."""
    parts = host.parts
    assert isinstance(host.settings, Settings)
    grace = host.settings.stop_grace_seconds

    async def stop() -> None:
        retries = _retries(parts.bot) if parts.bot is not None else None
        if retries is not None:
            retries.stop()  # no more retries, flood waits or turns: calls not yet made fail at once
        if parts.gate is not None:
            parts.gate.per_second, parts.gate.chat_interval = 0, 0  # waiting sends reach the refusal at once
        if parts.stopping is not None:
            parts.stopping.set()
        host.stop_consumers_soon()  # the deliveries take nothing new while the updates in hand finish
        if parts.polling is not None:
            # a long poll still waiting holds nothing (its updates are not
            # confirmed), so it is cancelled; updates in hand may finish
            parts.polling.cancel()
            try:
                await parts.polling
            except asyncio.CancelledError:
                log.info("long_poll_cancelled_at_stop")
            except Exception as exc:  # it had failed already (the runner's reason to stop)
                log.warning("update_intake_had_failed", error=repr(exc)[:300])
            if parts.poller is not None:
                await parts.poller.drain(timeout=host.stop_budget_left(grace))
        if parts.webhook is not None:
            await parts.webhook.cleanup()

    return stop


async def _intake_failure(parts: BotParts) -> str:
    """Returns, with the reason, when the bot can no longer take updates (the polling ended
    by itself: its store stayed unwritable too long, or a fault); the runner then stops it
    and exits non-zero for its supervisor to restart it."""
    polling = parts.polling
    assert polling is not None
    await asyncio.wait({polling})
    if parts.stopping is not None and parts.stopping.is_set():
        await asyncio.Event().wait()  # stopped on purpose: not a failure
    if polling.cancelled():
        return "update intake cancelled"
    exc = polling.exception()
    return f"update intake ended: {exc!r}" if exc is not None else "update intake ended"


def build(settings: Settings, *, clock: Clock | None = None) -> BotApp:
    clock = clock or clock_for(settings.clock_file)
    db = open_store(settings.db_url, clock=clock)
    set_busy_timeout(db, settings.db_busy_timeout_seconds)
    return ServiceHost(service="bot", settings=settings, clock=clock, db=db,
                       parts=BotParts(), compose=compose, checks=("nats", "consumers", "store", "updates"))
