"""Webhook mode: Telegram POSTs updates to us.

aiogram's own handler accepts every request when no secret is set and
answers 200 before the handler has run; here a secret is mandatory, checked
in constant time, and the answer comes only after the update was handled and
recorded, so Telegram redelivers an update the bot died on.
"""

from __future__ import annotations

import hmac

import structlog
from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from services.bot.i18n import Languages
from services.bot.middlewares import Throttle
from services.bot.polling import chat_of, drop_throttled, handle_once
from shared.store import Database

log = structlog.get_logger("bot")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookSecretMissing(RuntimeError):
    pass


def build_webhook_app(*, bot: Bot, dp: Dispatcher, db: Database, secret: str, path: str, throttle: Throttle,
                      languages: Languages) -> web.Application:
    if len(secret) < 16:
        raise WebhookSecretMissing("webhook mode needs CMCOORD_BOT_WEBHOOK_SECRET (16+ characters)")

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook_rejected", reason="secret missing or wrong")
            return web.Response(status=401)
        try:
            update = Update.model_validate(await request.json(), context={"bot": bot})
        except (ValueError, ValidationError):
            return web.Response(status=400)
        allowed, warn = throttle.allow(chat_of(update))
        if allowed:
            await handle_once(bot, dp, db, update)
        else:  # a flooding user: dropped (once told), as in polling mode
            await drop_throttled(bot, db, update, warn=warn, languages=languages)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post(path, receive)
    return app
