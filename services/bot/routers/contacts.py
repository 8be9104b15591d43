"""/contacts <text>: who to call, by country, region, organisation or name."""

from __future__ import annotations

from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.callbacks import ContactsPage
from services.bot.edits import show
from services.bot.filters import IsMember
from services.bot.render import contact_card, counterparts_text
from services.bot.roster_client import RosterClient
from services.bot.states import ContactsSearch
from shared.regions import country_name, resolve_country

MAX_QUERY_BYTES = 48  # the query rides in the page buttons' callback data (64 bytes in all)


def usage() -> str:
    return _("Tell me who you are looking for: /contacts Mali, /contacts ROWCA, /contacts WFP or /contacts Diallo.")


def build_contacts_router(*, roster: RosterClient, page_size: int) -> Router:
    router = Router(name="contacts")
    router.message.filter(IsMember())
    router.callback_query.filter(IsMember())

    async def page(query: str, offset: int) -> tuple[str, InlineKeyboardMarkup | None]:
        result = await roster.contacts(query, offset=offset, limit=page_size)
        total = result["total"]
        if total == 0:
            return _("Nobody found for “{query}”. Try a country, a region (ROWCA), an organisation or a name.").format(
                query=escape(query)), None
        shown = _("{first}–{last} of {total}").format(first=offset + 1, last=offset + len(result["items"]), total=total)
        text = f"<b>{escape(query)}</b>: {shown}\n\n" + "\n\n".join(contact_card(c) for c in result["items"])
        keyboard = InlineKeyboardBuilder()
        if offset > 0:
            keyboard.button(text=_("◀ Previous"), callback_data=ContactsPage(q=query, o=max(0, offset - page_size)))
        if offset + page_size < total:
            keyboard.button(text=_("Next ▶"), callback_data=ContactsPage(q=query, o=offset + page_size))
        return text, keyboard.as_markup() if keyboard.buttons else None

    async def search(message: Message, raw: str, person: dict[str, Any]) -> None:
        query = " ".join(raw.replace(":", " ").split())  # ":" separates callback data fields
        if len(query.encode()) > MAX_QUERY_BYTES:
            await message.answer(_("That is too long for a search: a country, region, organisation or name will do. ")
                                 + usage())
            return
        text, markup = await page(query, 0)
        await message.answer(text, reply_markup=markup)
        country = resolve_country(query)
        if country is not None and person["deployments"]:
            # Counterpart (armed actor) contacts: the roster answers only CMCoord
            # officers and regional advisers of the country's region.
            found = await roster.counterparts(country, requester_person_id=person["person_id"])
            if found:
                await message.answer(counterparts_text(country_name(country), found))

    @router.message(Command("contacts"))
    async def contacts(message: Message, command: CommandObject, state: FSMContext, person: dict[str, Any]) -> None:
        if not (command.args or "").strip():
            await state.set_state(ContactsSearch.waiting_for_query)
            await message.answer(_("Who are you looking for? Send a country, a region (ROWCA), an organisation or a "
                                   "name."))
            return
        await search(message, command.args or "", person)

    @router.message(ContactsSearch.waiting_for_query, F.text, ~F.text.startswith("/"))
    async def contacts_answer(message: Message, state: FSMContext, person: dict[str, Any]) -> None:
        await state.clear()
        await search(message, message.text or "", person)

    @router.callback_query(ContactsPage.filter(F.o >= 0))
    async def turn_page(callback: CallbackQuery, callback_data: ContactsPage, person: dict[str, Any]) -> None:
        await callback.answer()
        text, markup = await page(callback_data.q, callback_data.o)
        await show(callback, text, reply_markup=markup)  # the same page again is no error; an old message: anew

    return router
