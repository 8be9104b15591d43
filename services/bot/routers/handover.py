"""/handover: the outgoing officer writes the note for their successor, step by step.

Each answer is kept in the conversation state (the bot's store), so a restart
or a lost connection resumes at the same question. Each answer is kept as the
person's handover draft too (services/bot/drafts.py): after /cancel, or another
command, the next /handover (or "Write it now") offers to resume it or start again,
at the first question not answered. The finished note goes to
the roster as bot.handover.submitted (outbox), which stores it against the
post and tells notify it exists.
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from services.bot import drafts
from services.bot.edits import Pressed
from services.bot.filters import IsRegistered
from services.bot.states import HandoverWriting
from shared import events
from shared.clock import Clock
from shared.contracts.roster import DeploymentCard, PersonCard
from shared.store import Database

MAX_ANSWER = 2000
STEPS: list[tuple[State, Any]] = [
    (HandoverWriting.key_counterparts, __("1/5 Key counterparts: who should your successor meet first, and how?")),
    (HandoverWriting.open_issues, __("2/5 Open access or humanitarian notification issues?")),
    (HandoverWriting.recurring_meetings, __("3/5 Recurring meetings: which, when, who chairs?")),
    (HandoverWriting.where_files_live, __("4/5 Where do the files live?")),
    (HandoverWriting.advice_to_successor, __("5/5 Your advice to your successor?")),
]
KIND = "handover"
STEP_STATES = {str(step.state) for step, _q in STEPS}


def current_deployment(person: PersonCard) -> DeploymentCard | None:
    """The deployment a note is for: the one ending first."""
    deployments = sorted(person.deployments, key=lambda d: d.planned_end)
    return deployments[0] if deployments else None


async def begin(message: Pressed, state: FSMContext, person: PersonCard) -> None:
    """The note under way, or the choice of the draft left, or a new one."""
    current = await state.get_state()
    for i, (step, question) in enumerate(STEPS):
        if current == step.state:  # resume where they were
            await message.answer(_("We were at question {n}.").format(n=i + 1) + "\n\n" + str(question))
            return
    draft = await drafts.found(state, person, KIND, STEP_STATES)
    if draft is not None:
        answered = next(i for i, (step, _q) in enumerate(STEPS) if step.state == draft.step)
        await drafts.offer(message, KIND, _(
            "You have a handover note you did not finish (last written on {day}; {n} of 5 questions answered). "
            "Resume it, or start again? Starting again deletes it.").format(
            day=draft.updated_at.date().isoformat(), n=answered))
        return
    await start(message, state, person)


async def start(message: Pressed, state: FSMContext, person: PersonCard) -> None:
    deployment = current_deployment(person)
    if deployment is None:
        await message.answer(_("You have no current deployment, so there is no handover note to write."))
        return
    await state.set_state(STEPS[0][0])
    await state.set_data({"deployment_id": str(deployment.deployment_id)})
    await message.answer(_("Your handover note for {post}, {station}. Five short questions; send - to skip one, "
                           "/cancel to stop (your answers so far are kept).").format(
        post=escape(deployment.title), station=escape(deployment.duty_station))  # roster data: may hold < or &
        + "\n\n" + str(STEPS[0][1]))


def build_handover_router(*, db: Database, clock: Clock) -> Router:
    router = Router(name="handover")
    router.message.filter(IsRegistered())
    router.callback_query.filter(IsRegistered())

    @router.message(Command("handover"))
    async def handover(message: Message, state: FSMContext, person: PersonCard) -> None:
        await begin(message, state, person)

    drafts.on_choice(router, KIND, STEP_STATES, begin)

    @router.message(Command("cancel"), StateFilter(HandoverWriting))
    async def cancel(message: Message, state: FSMContext, person: PersonCard) -> None:
        await drafts.keep(state, person)
        await state.clear()  # the draft holds the answers: /handover offers it back
        await message.answer(_("Stopped. Your answers are kept: /handover continues where you left off."))

    @router.message(StateFilter(HandoverWriting), F.text, ~F.text.startswith("/"))
    async def answer(message: Message, state: FSMContext, person: PersonCard) -> None:
        text = (message.text or "").strip()
        if len(text) > MAX_ANSWER:
            await message.answer(_("Please keep each answer under {n} characters.").format(n=MAX_ANSWER))
            return
        current = await state.get_state()
        index = next(i for i, (step, _q) in enumerate(STEPS) if step.state == current)
        field = str(STEPS[index][0].state).split(":")[1]
        await state.update_data({field: "" if text == "-" else text})
        if index + 1 < len(STEPS):
            await state.set_state(STEPS[index + 1][0])
            await drafts.keep(state, person)  # the answers so far, whatever ends the conversation now
            await message.answer(str(STEPS[index + 1][1]))
            return
        data = await state.get_data()
        async with db.unit_of_work() as uow:
            uow.emit(events.HandoverNoteSubmitted(
                person_id=person.person_id, deployment_id=data["deployment_id"],
                key_counterparts=data.get("key_counterparts", ""), open_issues=data.get("open_issues", ""),
                recurring_meetings=data.get("recurring_meetings", ""),
                where_files_live=data.get("where_files_live", ""),
                advice_to_successor=data.get("advice_to_successor", ""), submitted_at=clock.now()))
        await drafts.drop(state, person, KIND)
        await state.clear()
        await message.answer(_("Thank you. Your handover note is stored with the post; your successor receives it. "
                               "/handover again replaces it."))

    return router
