"""What a person wrote in a /report, /aar or /handover they did not finish.

Each answer is kept at once as the person's draft of that kind (services/bot/store.py
`Drafts`), so whatever ends the conversation (/cancel, another command that takes over the
chat, the end of a membership) loses nothing. The next command of that kind offers it
back: "Resume" continues at the first question not answered, with the answers kept;
"Start again" deletes it. Submitting deletes it too. A draft with no answer yet (at the
first question) is not kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.callbacks import DraftChoice
from services.bot.edits import Pressed, pressed, set_buttons
from services.bot.states import AarWriting, HandoverWriting, ReportWriting
from services.bot.store import Draft, Drafts, SqlStorage
from shared.contracts.roster import PersonCard

KINDS = {ReportWriting.__full_group_name__: "report", AarWriting.__full_group_name__: "aar",
         HandoverWriting.__full_group_name__: "handover"}
FIRST_STEPS = {ReportWriting.text.state, AarWriting.planned.state, HandoverWriting.key_counterparts.state}


def drafts_of(state: FSMContext) -> Drafts:
    storage = state.storage
    if not isinstance(storage, SqlStorage):
        raise TypeError("the bot keeps drafts in its own store (SqlStorage)")
    return storage.drafts


def _person(person: PersonCard) -> uuid.UUID:
    return person.person_id


def kind_of(step: str | None) -> str | None:
    return KINDS.get((step or "").split(":")[0])


async def keep(state: FSMContext, person: PersonCard) -> None:
    """The conversation under way, as its kind's draft: its step and the answers so far."""
    step = await state.get_state()
    kind = kind_of(step)
    if step is None or kind is None or step in FIRST_STEPS:
        return
    await drafts_of(state).keep(_person(person), kind, step, await state.get_data())


async def found(state: FSMContext, person: PersonCard, kind: str, steps: set[str]) -> Draft | None:
    """The person's draft of `kind`, if it is at one of `steps` (a step the conversation still has)."""
    draft = await drafts_of(state).get(_person(person), kind)
    return draft if draft is not None and draft.step in steps else None


async def drop(state: FSMContext, person: PersonCard, kind: str) -> None:
    await drafts_of(state).drop(_person(person), kind)


async def restore(state: FSMContext, draft: Draft) -> None:
    """The conversation back where the draft was."""
    await state.set_state(draft.step)
    await state.set_data(draft.data)


async def choose(state: FSMContext, person: PersonCard, kind: str, steps: set[str], *, resume: bool) -> None:
    """A press of "Resume" or "Start again": the draft back in the conversation, or deleted
    (with a conversation of its kind under way). The caller then opens the conversation."""
    draft = await found(state, person, kind, steps)
    if resume and draft is not None:
        if kind_of(await state.get_state()) != kind:  # under way already (a second press): as it is
            await restore(state, draft)
        return
    await drop(state, person, kind)
    if kind_of(await state.get_state()) == kind:
        await state.clear()


def offer_keyboard(kind: str) -> InlineKeyboardMarkup:
    keyboard = InlineKeyboardBuilder()
    keyboard.button(text=_("Resume"), callback_data=DraftChoice(k=kind, a="resume"))
    keyboard.button(text=_("Start again"), callback_data=DraftChoice(k=kind, a="new"))
    return keyboard.as_markup()


async def offer(message: Pressed, kind: str, text: str) -> None:
    await message.answer(text, reply_markup=offer_keyboard(kind))


def on_choice(router: Router, kind: str, steps: set[str],
              then: Callable[[Pressed, FSMContext, PersonCard], Awaitable[None]]) -> None:
    """The offer's buttons for `kind` on `router`: the choice is made (the draft restored, or
    deleted), the buttons go, and `then` opens the conversation where the draft left it."""

    @router.callback_query(DraftChoice.filter(F.k == kind))
    async def draft_choice(callback: CallbackQuery, callback_data: DraftChoice, state: FSMContext,
                           person: PersonCard) -> None:
        await callback.answer()
        await set_buttons(callback, None)
        await choose(state, person, kind, steps, resume=callback_data.a == "resume")
        await then(pressed(callback), state, person)
