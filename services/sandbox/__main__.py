"""python -m services.sandbox: the local Telegram-compatible sandbox, and its mail catcher when
CMCOORD_SANDBOX_SMTP_PORT is set."""

from __future__ import annotations

from aiohttp import web

from services.sandbox.app import build_app
from services.sandbox.config import Settings
from services.sandbox.mail import MailCatcher
from services.sandbox.state import Faults, Sandbox
from shared.logging import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(service="sandbox", fmt=settings.log_format, level=settings.log_level)
    sandbox = Sandbox(bot_username=settings.bot_username,
                      faults=Faults(global_per_sec=settings.global_per_sec, per_chat_per_sec=settings.per_chat_per_sec,
                                    inaccessible_after_seconds=settings.inaccessible_after_seconds),
                      token=settings.token,
                      webhook_ca=settings.webhook_ca or None)
    mail = MailCatcher() if settings.smtp_port else None
    app = build_app(sandbox, mail=mail)
    if mail is not None:  # the mail catcher's SMTP server, on the same loop as the pages that show what it caught
        async def catch(_app: web.Application) -> None:
            await mail.start(settings.host, settings.smtp_port)

        async def release(_app: web.Application) -> None:
            await mail.stop()

        app.on_startup.append(catch)
        app.on_cleanup.append(release)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
