from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

# Used only against the local sandbox, which accepts any well-formed token.
SANDBOX_TOKEN = "1000001:sandbox-token-for-local-use-only"


class Settings(ServiceSettings):
    """Bot settings: CMCOORD_BOT_ prefix; the Telegram token from TELEGRAM_BOT_TOKEN."""

    model_config = SettingsConfigDict(env_prefix="CMCOORD_BOT_")

    telegram_bot_token: str = Field(default="", validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "CMCOORD_BOT_TOKEN"))
    sandbox_url: str = Field(default="http://127.0.0.1:8081", validation_alias=AliasChoices("CMCOORD_SANDBOX_URL"))
    health_port: int = 8104
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout_seconds: int = 25
    page_size: int = 5
    query_timeout_seconds: float = 5.0
    person_cache_seconds: float = 10.0
    # what the bot's store keeps (services/bot/jobs.py): handled updates, and drafts
    # (conversations left with a step or data) untouched this long
    inbox_keep_days: float = Field(default=7, gt=0)
    draft_keep_days: float = Field(default=90, gt=0)
    webhook_secret: str = ""
    webhook_url: str = Field(default="", description="the public URL Telegram posts to (setWebhook)")
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_path: str = "/telegram/webhook"
    # Telegram's limits, kept by the bot with a margin (0: off): new messages per second, and
    # seconds between two to one chat (Telegram counts arrivals; a network hiccup moves them)
    send_per_second: float = 28.0
    send_chat_interval_seconds: float = 1.1
    # deliveries: chats worked on at once (waiting for their turn, urgent first) and messages held
    delivery_chats_at_once: int = 500
    deliveries_in_hand: int = 1000
    throttle_per_second: float = 1.0
    throttle_burst: int = 5
    # the store locked or full: how long one write waits for SQLite's lock, and how long the
    # update intake retries before the process exits (code 1) for its supervisor to restart it
    db_busy_timeout_seconds: float = 30.0
    store_outage_exit_seconds: float = 300.0
    # at SIGTERM: how long updates and deliveries in hand may finish (Telegram or NATS may be gone)
    stop_grace_seconds: float = 5.0

    @property
    def token(self) -> str:
        return self.telegram_bot_token or SANDBOX_TOKEN

    @property
    def uses_sandbox(self) -> bool:
        return not self.telegram_bot_token

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url("bot")
