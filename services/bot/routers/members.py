"""What only members of the community may use, and the polite answer for those who no longer are.

The roster says whether a linked person is a member today (`member` on their card): a
deployment not ended, or ended within its grace period (CMCOORD_ROSTER_MEMBER_GRACE_DAYS).
After that they keep /me and their own open duties (/aar, /handover, /pending and the
buttons of their messages, the departure date); the community's commands (contacts, calls,
agendas, summaries, reports, lessons) get this router's answer instead, and a conversation
with one of them under way ends (a report draft they can no longer send goes too). A party's
liaison (humanitarian notifications) was never a member: they get what they can do instead. It is
included before the routers it guards, which check
membership themselves too (services/bot/filters.py).
"""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from services.bot import drafts
from services.bot.callbacks import ContactsPage
from services.bot.filters import IsFormerMember, IsLiaison
from services.bot.routers.texts import liaison_help, members_only
from services.bot.states import ContactsSearch, MovementWriting, ReportWriting, SiteWriting
from shared.contracts.roster import PersonCard

MEMBER_COMMANDS = ("contacts", "calls", "agenda", "summary", "report", "lessons", "movement", "site", "hns4d")
MEMBER_STATES = (ContactsSearch, ReportWriting, MovementWriting, SiteWriting)
LIAISON_CLOSED = ("aar", "handover", "profile", "send", "me")  # a party's liaison owes none of these


def build_members_only_router() -> Router:
    router = Router(name="members-only")
    router.message.filter(IsFormerMember())
    router.callback_query.filter(IsFormerMember())

    async def end_member_conversation(state: FSMContext, person: PersonCard) -> None:
        current = await state.get_state()
        if current is not None and any(current in group.__all_states_names__ for group in MEMBER_STATES):
            await state.clear()
        await drafts.drop(state, person, "report")

    @router.message(IsLiaison(), Command(*MEMBER_COMMANDS, *LIAISON_CLOSED))  # /hns4d answered before
    async def liaison_command(message: Message, state: FSMContext, person: PersonCard) -> None:
        await end_member_conversation(state, person)
        await message.answer(liaison_help())

    @router.message(Command(*MEMBER_COMMANDS))
    async def command(message: Message, state: FSMContext, person: PersonCard) -> None:
        await end_member_conversation(state, person)
        await message.answer(members_only())

    @router.message(StateFilter(*MEMBER_STATES))
    async def in_conversation(message: Message, state: FSMContext, person: PersonCard) -> None:
        await end_member_conversation(state, person)
        await message.answer(members_only())

    @router.callback_query(ContactsPage.filter())
    async def contacts_page(callback: CallbackQuery, state: FSMContext) -> None:
        await callback.answer(_("This is for members of the CMCoord community only."), show_alert=True)

    @router.callback_query(StateFilter(*MEMBER_STATES))
    async def member_step(callback: CallbackQuery, state: FSMContext, person: PersonCard) -> None:
        await end_member_conversation(state, person)
        await callback.answer(_("This is for members of the CMCoord community only."), show_alert=True)

    return router
