from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class ContactsPage(CallbackData, prefix="cp"):
    """A page of /contacts results (the query is re-run: answers stay current)."""

    q: str
    o: int


class NotificationReply(CallbackData, prefix="nr"):
    """A button of a delivered notification: who pressed it is checked on arrival."""

    n: str  # notification id, hex
    r: str  # the reply


class LanguagePick(CallbackData, prefix="lg"):
    """A language button of /lang."""

    code: str


class LessonStep(CallbackData, prefix="ls"):
    """A button of /report or /aar: `a` what it does (country, other, theme, done, class, skip, send, cancel)."""

    a: str
    v: str = ""


class DraftChoice(CallbackData, prefix="dc"):
    """Resume (`a`="resume") or start again (`a`="new") a draft of /report, /aar or /handover (`k`)."""

    k: str
    a: str


class MovementStep(CallbackData, prefix="mv"):
    """The last step of /movement: `a` send, emergency (send flagged as an emergency) or cancel."""

    a: str


class SiteStep(CallbackData, prefix="st"):
    """The last step of /site: `a` send or cancel (a /movement summary's buttons never answer a site's)."""

    a: str
