from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.sandbox.state import SANDBOX_TOKEN
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """The local Telegram-compatible sandbox: CMCOORD_SANDBOX_ prefix."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_SANDBOX_")

    host: str = "127.0.0.1"
    port: int = 8081
    bot_username: str = "CMCoordHubBot"
    global_per_sec: float = 30.0
    per_chat_per_sec: float = 1.0
    token: str = SANDBOX_TOKEN  # the one bot token answered; any other gets 401, as from Telegram
    inaccessible_after_seconds: float = 48 * 3600  # Telegram's: older messages come as InaccessibleMessage
    smtp_port: int = 0  # the mail catcher's SMTP port (services/sandbox/mail.py); 0: no catcher
    webhook_ca: str = ""  # a CA file the webhook calls trust besides the system's (a private or test CA)
