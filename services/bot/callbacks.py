from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class ContactsPage(CallbackData, prefix="cp"):
    """A page of /contacts results (the query is re-run: answers stay current)."""

    q: str
    o: int
