from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """The local Telegram-compatible sandbox: CMCOORD_SANDBOX_ prefix."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_SANDBOX_")

    host: str = "127.0.0.1"
    port: int = 8081
    bot_username: str = "CMCoordHubBot"
    global_per_sec: float = 30.0
    per_chat_per_sec: float = 1.0
    webhook_ca: str = ""  # a CA file the webhook calls trust besides the system's (a private or test CA)
