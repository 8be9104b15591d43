"""/contacts <text>: who to call, by country (in English, French or Arabic, or its ISO code), region,
organisation, duty station, hat, role, language spoken or name; a gapped post answers with who
covers it; counterpart contacts of a country follow, under their classification."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.callbacks import ContactsPage
from services.bot.edits import show
from services.bot.filters import IsMember
from services.bot.render import contact_card, counterparts_text, gaps_text, matched_text
from services.bot.roster_client import RosterClient
from services.bot.states import ContactsSearch
from shared.contracts.roster import PersonCard, SearchMatch
from shared.countries import country_label, resolve_country
from shared.regions import region_for_country

MAX_QUERY_BYTES = 48  # the query rides in the page buttons' callback data (64 bytes in all)
MAX_QUERY_CHARS = 100  # longer than any country's name in the three languages
TELEGRAM_MAX_TEXT = 4096


def paging_key(query: str, matched: list[SearchMatch]) -> str | None:
    """What the page buttons carry to search again: the query, or (too long for a button: an
    Arabic country name) the one country, region or role it was understood as; None: no buttons."""
    if len(query.encode()) <= MAX_QUERY_BYTES:
        return query
    if len(matched) == 1 and matched[0].kind in ("region", "role"):
        return matched[0].value
    if len(matched) == 1 and matched[0].kind == "country":
        # its English name: a bare code may name a language too ("AR" is Arabic as well as Argentina)
        name = country_label(matched[0].value, "en")
        return name if len(name.encode()) <= MAX_QUERY_BYTES and resolve_country(name) else None
    return None


def usage() -> str:
    return _("Tell me who you are looking for: /contacts Mali, /contacts ROWCA, /contacts WFP or /contacts Diallo.")


def build_contacts_router(*, roster: RosterClient, page_size: int) -> Router:
    router = Router(name="contacts")
    router.message.filter(IsMember())
    router.callback_query.filter(IsMember())

    async def page(query: str, offset: int) -> tuple[str, InlineKeyboardMarkup | None]:
        result = await roster.contacts(query, offset=offset, limit=page_size)
        total, matched, gaps = result.total, result.matched, result.gaps
        understood = matched_text(matched)
        heading = f"<b>{escape(query)}</b>" + (f" ({understood})" if understood else "")
        gap_block = gaps_text(gaps, result.gaps_total) if gaps and offset == 0 else ""
        if total == 0:
            country = next((m.value for m in matched if m.kind == "country"), None)
            if not gap_block and country is None:
                return _("Nobody found for “{query}”. Try a country, a region (ROWCA), an organisation, a hat, a "
                         "language or a name.").format(query=escape(query)), None
            text = _("Nobody is in post for {query} at the moment.").format(query=heading)
            region = region_for_country(country) if country else None
            if gap_block:
                text += "\n\n" + gap_block
            elif region:
                text += "\n" + _("The region's advisers: /contacts {region}").format(region=region)
            return text, None
        shown = _("{first}–{last} of {total}").format(first=offset + 1, last=offset + len(result.items), total=total)
        cards = f"{heading}: {shown}\n\n" + "\n\n".join(contact_card(c) for c in result.items)
        text = cards + ("\n\n" + gap_block if gap_block else "")
        if len(text) > TELEGRAM_MAX_TEXT:  # the people asked for come first
            text = cards
        key = paging_key(query, matched)
        keyboard = InlineKeyboardBuilder()
        if key is not None and offset > 0:
            keyboard.button(text=_("◀ Previous"), callback_data=ContactsPage(q=key, o=max(0, offset - page_size)))
        if key is not None and offset + page_size < total:
            keyboard.button(text=_("Next ▶"), callback_data=ContactsPage(q=key, o=offset + page_size))
        return text, keyboard.as_markup() if keyboard.buttons else None

    async def search(message: Message, raw: str, person: PersonCard) -> None:
        query = " ".join(raw.replace(":", " ").split())  # ":" separates callback data fields
        if len(query) > MAX_QUERY_CHARS:
            await message.answer(_("That is too long for a search: a country, region, organisation or name will do. ")
                                 + usage())
            return
        text, markup = await page(query, 0)
        await message.answer(text, reply_markup=markup)
        country = resolve_country(query)
        if country is not None:
            # Counterpart (armed actor) contacts: the roster answers with what the person may see of
            # them (restricted ones: CMCoord officers and advisers of the region, and the CMCS desk).
            found = await roster.counterparts(country, requester_person_id=person.person_id)
            if found:
                await message.answer(counterparts_text(country, found))

    @router.message(Command("contacts"))
    async def contacts(message: Message, command: CommandObject, state: FSMContext, person: PersonCard) -> None:
        if not (command.args or "").strip():
            await state.set_state(ContactsSearch.waiting_for_query)
            await message.answer(_("Who are you looking for? Send a country, a region (ROWCA), an organisation or a "
                                   "name."))
            return
        await search(message, command.args or "", person)

    @router.message(ContactsSearch.waiting_for_query, F.text, ~F.text.startswith("/"))
    async def contacts_answer(message: Message, state: FSMContext, person: PersonCard) -> None:
        await state.clear()
        await search(message, message.text or "", person)

    @router.callback_query(ContactsPage.filter(F.o >= 0))
    async def turn_page(callback: CallbackQuery, callback_data: ContactsPage, person: PersonCard) -> None:
        await callback.answer()
        text, markup = await page(callback_data.q, callback_data.o)
        await show(callback, text, reply_markup=markup)  # the same page again is no error; an old message: anew

    return router
