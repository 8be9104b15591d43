"""/profile: an officer updates their own phone, languages and hats.

Three questions, each showing what the roster has now ("-" keeps it): the phone in
international form, the languages (ISO 639 codes or English names), the other hats from the
known list (only with a current deployment: hats belong to a deployment). An answer that is
not one of these is refused with what is expected, and nothing is sent. The result goes to
the roster as bot.profile.updated (outbox); the roster writes it and announces the change
like an import's (roster.person.changed). A later import that has those columns sets them again.
"""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message
from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _

from services.bot.filters import IsRegistered
from services.bot.roster_client import RosterClient
from shared import events
from shared.clock import Clock
from shared.contracts.roster import PersonCard
from shared.languages import language_label
from shared.profile import (
    KNOWN_HATS,
    ProfileValueError,
    hat_names,
    language_codes,
    normalise_phone,
)
from shared.store import Database

KEEP = "-"


class ProfileEditing(StatesGroup):
    phone = State()
    languages = State()
    hats = State()


def _languages(codes: list[str]) -> str:
    """The languages named in the reader's language ("arabe (ar), anglais (en)")."""
    locale = get_i18n().current_locale
    return ", ".join(f"{language_label(c, locale)} ({c})" for c in codes) or "-"


def _hats(person: PersonCard) -> list[str]:
    return list(dict.fromkeys(h for d in person.deployments for h in d.hats))


def build_profile_router(*, roster: RosterClient, db: Database, clock: Clock) -> Router:
    router = Router(name="profile")
    router.message.filter(IsRegistered())

    @router.message(Command("profile"))
    async def profile(message: Message, state: FSMContext, person: PersonCard) -> None:
        await state.set_state(ProfileEditing.phone)
        await state.set_data({})
        await message.answer(
            _("<b>Your profile</b>\nPhone: {phone}\nLanguages: {languages}\nOther hats: {hats}").format(
                phone=escape(person.phone or "-"), languages=escape(_languages(person.languages)),
                hats=escape(", ".join(_hats(person)) or "-"))
            + "\n\n" + _("1/3 Your phone number in international form, for example +223 70 00 00 01. "
                         "Send - to keep it, /cancel to stop."))

    @router.message(Command("cancel"), StateFilter(ProfileEditing))
    async def cancel(message: Message, state: FSMContext) -> None:
        await state.clear()
        await message.answer(_("Stopped: your profile is unchanged."))

    @router.message(StateFilter(ProfileEditing.phone), F.text, ~F.text.startswith("/"))
    async def phone(message: Message, state: FSMContext) -> None:
        text = (message.text or "").strip()
        if text != KEEP:
            try:
                await state.update_data({"phone": normalise_phone(text)})
            except ProfileValueError:
                await message.answer(_("That is not a phone number in international form: start with + and the "
                                       "country code, then the number, for example +223 70 00 00 01. Nothing was "
                                       "changed; send the number again, or - to keep yours."))
                return
        await state.set_state(ProfileEditing.languages)
        await message.answer(_("2/3 The languages you work in, separated by commas: codes or English names, for "
                               "example fr, en, Arabic. Send - to keep them."))

    @router.message(StateFilter(ProfileEditing.languages), F.text, ~F.text.startswith("/"))
    async def languages(message: Message, state: FSMContext, person: PersonCard) -> None:
        text = (message.text or "").strip()
        if text != KEEP:
            try:
                await state.update_data({"languages": language_codes(text)})
            except ProfileValueError as bad:
                await message.answer(_("I do not know the language “{word}”. Write ISO codes or English names, "
                                       "separated by commas, for example fr, en, Arabic.").format(
                    word=escape(bad.value)))
                return
        if not person.deployments:  # hats belong to a deployment
            await finish(message, state, person)
            return
        await state.set_state(ProfileEditing.hats)
        await message.answer(_("3/3 Your other hats, separated by commas, from: {known}. Send none for no other "
                               "hat, or - to keep them.").format(known=escape(", ".join(KNOWN_HATS))))

    @router.message(StateFilter(ProfileEditing.hats), F.text, ~F.text.startswith("/"))
    async def hats(message: Message, state: FSMContext, person: PersonCard) -> None:
        text = (message.text or "").strip()
        if text != KEEP:
            try:
                await state.update_data({"hats": hat_names(text)})
            except ProfileValueError as bad:
                await message.answer(_("“{word}” is not one of the known hats: {known}.").format(
                    word=escape(bad.value), known=escape(", ".join(KNOWN_HATS))))
                return
        await finish(message, state, person)

    async def finish(message: Message, state: FSMContext, person: PersonCard) -> None:
        data = await state.get_data()
        await state.clear()
        phone_ = data.get("phone") if data.get("phone") != person.phone else None
        languages_ = data.get("languages") if data.get("languages") != person.languages else None
        hats_ = data.get("hats") if data.get("hats") is not None and data.get("hats") != _hats(person) else None
        if phone_ is None and languages_ is None and hats_ is None:
            await message.answer(_("Nothing changed: your profile stays as it is."))
            return
        async with db.unit_of_work() as uow:
            uow.emit(events.ProfileUpdated(person_id=person.person_id, phone=phone_, languages=languages_,
                                           hats=hats_, updated_at=clock.now()))
        if message.chat is not None:
            roster.forget(message.chat.id)  # the next update asks the roster again
        lines = [_("Saved. The roster and the directory show it in a moment.")]
        if phone_ is not None:
            lines.append(_("Phone: {phone}").format(phone=escape(phone_)))
        if languages_ is not None:
            lines.append(_("Languages: {languages}").format(languages=escape(_languages(languages_))))
        if hats_ is not None:
            lines.append(_("Other hats: {hats}").format(hats=escape(", ".join(hats_) or "-")))
        await message.answer("\n".join(lines))

    @router.message(StateFilter(ProfileEditing), ~F.text.startswith("/"))
    async def unexpected(message: Message) -> None:
        await message.answer(_("Please answer the question above, or /cancel."))

    return router
