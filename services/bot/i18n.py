"""English, French and Arabic.

The bot's texts are English msgids marked with gettext (`_`, `__` for texts
defined at import time); `shared/locales/<lang>/LC_MESSAGES/messages.po` hold the
translations (shared/i18n.py: one place for every service's catalogues). A user's language is the
one chosen with /lang, else their Telegram app's language when we have it, else
English.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware
from sqlmodel import select

from services.bot.models import LanguageChoice
from shared.i18n import DEFAULT, LANGUAGES, LOCALES, compile_catalogues
from shared.store import Database, upsert

DOMAIN = "messages"


class Catalogues(I18n):
    """aiogram's I18n reading the .po catalogues themselves."""

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        return compile_catalogues(self.domain, Path(self.path))  # an unreviewed (fuzzy) entry stays English

    @property
    def available_locales(self) -> tuple[str, ...]:
        return (DEFAULT, *(code for code in self.locales if code != DEFAULT))

    @contextmanager
    def context(self) -> Iterator[I18n]:
        # aiogram's gettext looks up the current I18n (each subclass would get a context variable of its own)
        token = I18n.set_current(self)
        try:
            yield self
        finally:
            I18n.reset_current(token)


class Languages:
    """Who reads which language. A /lang choice is kept in the bot's store and
    cached, so the common case costs no database round trip."""

    def __init__(self, db: Database, *, path: Path = LOCALES) -> None:
        self.db = db
        self.i18n = Catalogues(path=path, default_locale=DEFAULT, domain=DOMAIN)
        self._chosen: dict[int, str | None] = {}
        self._complete = False

    async def load(self) -> None:
        """Read every choice at once (at start): a few bytes per user, and no update waits for a read."""
        async with self.db.read() as session:
            rows = (await session.exec(select(LanguageChoice))).all()
        self._chosen.update({row.telegram_user_id: row.locale for row in rows})
        self._complete = True

    async def chosen(self, user_id: int) -> str | None:
        if user_id not in self._chosen and not self._complete:
            async with self.db.read() as session:
                row = await session.get(LanguageChoice, user_id)
            self._chosen[user_id] = row.locale if row else None
        return self._chosen.get(user_id)

    async def choose(self, user_id: int, locale: str) -> None:
        if locale not in LANGUAGES:
            raise ValueError(f"unknown language {locale!r}")
        async with self.db.write() as session:
            values = {"telegram_user_id": user_id, "locale": locale, "chosen_at": datetime.now(UTC)}
            statement = upsert(session, LanguageChoice.__table__).values(**values)  # type: ignore[attr-defined]
            await session.exec(statement.on_conflict_do_update(
                index_elements=["telegram_user_id"], set_={"locale": locale, "chosen_at": values["chosen_at"]}))
        self._chosen[user_id] = locale

    async def locale_for(self, user: User | None) -> str:
        return await self.known_for(user) or DEFAULT

    async def known_for(self, user: User | None) -> str | None:
        """The user's /lang choice, else their Telegram app's language when we write it; None when
        neither says (the bot writes English, the roster's languages may know better)."""
        if user is None:
            return None
        chosen = await self.chosen(user.id)
        if chosen is not None:
            return chosen
        code = (user.language_code or "").replace("_", "-").split("-")[0].lower()
        return code if code in self.i18n.available_locales else None

    @contextmanager
    def using(self, locale: str) -> Iterator[None]:
        """Texts outside a handler (errors, flood warnings) in the user's language."""
        with self.i18n.context(), self.i18n.use_locale(locale):
            yield


class LanguageMiddleware(I18nMiddleware):
    def __init__(self, languages: Languages) -> None:
        super().__init__(languages.i18n)
        self.languages = languages

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        data["languages"] = self.languages
        return await self.languages.locale_for(data.get("event_from_user"))
