"""/aar: the after action review the officer owes, five questions at a time.

The AAR comes from lessons (the oldest due first); with none owed, the officer
may still write one about their current post. Each answer is kept as a draft in
the conversation state (the bot's store) as soon as it is given, so the review
can be finished days later or after a restart; and as the person's AAR draft
(services/bot/drafts.py): after /cancel, or another command, the next /aar offers
to resume it or start again. Then themes and classification;
the review goes to lessons as bot.aar.submitted (outbox), which ends its reminders.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any, cast

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from services.bot import drafts
from services.bot.callbacks import LessonStep
from services.bot.edits import Pressed, pressed
from services.bot.filters import IsRegistered
from services.bot.lessons_client import LessonsClient, LessonsUnavailable
from services.bot.render import country_of, date_of
from services.bot.routers.widgets import (
    classification_keyboard,
    post_country,
    themes_keyboard,
    toggle_theme,
)
from services.bot.states import AarWriting
from shared import events
from shared.clock import Clock
from shared.contracts.roster import PersonCard
from shared.store import Database
from shared.themes import CLASSIFICATIONS, DEFAULT_CLASSIFICATION, Classification, reference

MAX_ANSWER = 3000
QUESTIONS: list[tuple[State, Any]] = [
    (AarWriting.planned, __("1/5 What was planned? What did you set out to do?")),
    (AarWriting.happened, __("2/5 What actually happened?")),
    (AarWriting.difference, __("3/5 Why was there a difference?")),
    (AarWriting.sustain, __("4/5 What should be sustained: what worked and should be done again?")),
    (AarWriting.improve, __("5/5 What should be improved, and how?")),
]
KIND = "aar"
STEP_STATES = {str(s.state) for s in (*(step for step, _q in QUESTIONS), AarWriting.themes, AarWriting.classification)}


def _field(step: State) -> str:
    return str(step.state).split(":")[1]


async def begin(message: Pressed, state: FSMContext, person: PersonCard, *, lessons: LessonsClient) -> None:
    """Start the review owed (or resume one under way, or offer the draft left)."""
    current = await state.get_state()
    for i, (step, question) in enumerate(QUESTIONS):
        if current == step.state:
            await message.answer(_("We were at question {n}; your answers so far are kept.").format(n=i + 1)
                                 + "\n\n" + str(question))
            return
    if current == AarWriting.themes.state:
        await message.answer(_("Themes: press all that apply, then Done."),
                             reply_markup=themes_keyboard((await state.get_data()).get("themes", [])))
        return
    if current == AarWriting.classification.state:
        await message.answer(_("Who may read it?"),
                             reply_markup=classification_keyboard((await state.get_data())["classification"]))
        return
    draft = await drafts.found(state, person, KIND, STEP_STATES)
    if draft is not None:
        answered = next((i for i, (step, _q) in enumerate(QUESTIONS) if step.state == draft.step), len(QUESTIONS))
        await drafts.offer(message, KIND, _(
            "You have an after action review you did not finish (last written on {day}; {n} of 5 questions "
            "answered). Resume it, or start again? Starting again deletes it.").format(
            day=draft.updated_at.date().isoformat(), n=answered))
        return
    try:
        owed = await lessons.aars(person.person_id)
    except LessonsUnavailable:
        await message.answer(_("I cannot reach the lessons service right now. Please try again in a moment."))
        return
    if owed:
        aar = owed[0]
        about = escape(aar.operation or "") or _("your deployment in {country}").format(
            country=escape(country_of(aar.country)))
        intro = _("Your after action review of {about}, due on {due}.").format(
            about=about, due=date_of(aar.due_on))
        if len(owed) > 1:
            intro += " " + _("({n} more after this one.)").format(n=len(owed) - 1)
        data = {"aar_id": str(aar.aar_id), "country": aar.country}
    else:
        country = post_country(person)
        if country is None:
            await message.answer(_("You owe no after action review now."))
            return
        intro = _("You owe no after action review now; this one is about your post in {country}, and welcome.") \
            .format(country=escape(country_of(country)))
        data = {"aar_id": str(uuid.uuid4()), "country": country}
    await state.set_data({**data, "themes": [], "classification": DEFAULT_CLASSIFICATION})
    await state.set_state(QUESTIONS[0][0])
    await message.answer(intro + "\n" + _("Five questions; send - to skip one, /cancel to pause (answers are "
                                          "kept).") + "\n\n" + str(QUESTIONS[0][1]))


def build_aar_router(*, db: Database, clock: Clock, lessons: LessonsClient) -> Router:
    router = Router(name="aar")
    router.message.filter(IsRegistered())
    router.callback_query.filter(IsRegistered())

    @router.message(Command("aar"))
    async def aar(message: Message, state: FSMContext, person: PersonCard) -> None:
        await begin(message, state, person, lessons=lessons)

    drafts.on_choice(router, KIND, STEP_STATES, lambda message, state, person: begin(message, state, person,
                                                                                    lessons=lessons))

    @router.message(Command("cancel"), StateFilter(AarWriting))
    async def pause(message: Message, state: FSMContext, person: PersonCard) -> None:
        await drafts.keep(state, person)
        await state.clear()  # the draft holds the answers: /aar offers it back
        await message.answer(_("Paused. Your answers are kept: /aar continues where you left off."))

    @router.message(StateFilter(*[s for s, _q in QUESTIONS]), F.text, ~F.text.startswith("/"))
    async def answer(message: Message, state: FSMContext, person: PersonCard) -> None:
        text = (message.text or "").strip()
        if len(text) > MAX_ANSWER:
            await message.answer(_("Please keep each answer under {n} characters.").format(n=MAX_ANSWER))
            return
        current = await state.get_state()
        index = next(i for i, (step, _q) in enumerate(QUESTIONS) if step.state == current)
        await state.update_data({_field(QUESTIONS[index][0]): "" if text == "-" else text})  # the draft, kept
        if index + 1 < len(QUESTIONS):
            await state.set_state(QUESTIONS[index + 1][0])
            await drafts.keep(state, person)  # whatever ends the conversation now
            await message.answer(str(QUESTIONS[index + 1][1]))
            return
        await state.set_state(AarWriting.themes)
        await drafts.keep(state, person)
        await message.answer(_("Themes: press all that apply, then Done."), reply_markup=themes_keyboard([]))

    router.callback_query(StateFilter(AarWriting.themes), LessonStep.filter(F.a == "theme"))(toggle_theme)

    @router.callback_query(StateFilter(AarWriting.themes), LessonStep.filter(F.a == "done"))
    async def themes_done(callback: CallbackQuery, state: FSMContext, person: PersonCard) -> None:
        await callback.answer()
        await state.set_state(AarWriting.classification)
        await drafts.keep(state, person)
        await pressed(callback).answer(_("Who may read it?"),
                                       reply_markup=classification_keyboard(DEFAULT_CLASSIFICATION))

    @router.callback_query(StateFilter(AarWriting.classification), LessonStep.filter(F.a == "class"))
    async def submit(callback: CallbackQuery, callback_data: LessonStep, state: FSMContext,
                     person: PersonCard) -> None:
        await callback.answer()
        if callback_data.v not in CLASSIFICATIONS:
            return
        data = await state.get_data()
        aar_id = uuid.UUID(data["aar_id"])
        await db.emit_once([(events.deterministic_id("aar.submitted", aar_id), events.AarSubmitted(
            aar_id=aar_id, person_id=person.person_id, planned=data.get("planned", ""),
            happened=data.get("happened", ""), difference=data.get("difference", ""),
            sustain=data.get("sustain", ""), improve=data.get("improve", ""), themes=data.get("themes", []),
            classification=cast(Classification, callback_data.v), country=data.get("country", ""),
            submitted_at=clock.now()))])  # a replay: once
        await drafts.drop(state, person, KIND)
        await state.clear()
        await pressed(callback).answer(
            _("Thank you: your after action review is submitted, reference {ref}. Its reminders stop.").format(
                ref=reference("A", aar_id)))

    return router
