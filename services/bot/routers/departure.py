"""The new departure date, after "Change the date" on notify's departure question.

The date goes to the roster as bot.departure.changed (outbox); the roster moves
the planned end, and the handover campaign follows the new date.
"""

from __future__ import annotations

from datetime import date, timedelta

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from services.bot.edits import Pressed
from services.bot.filters import IsRegistered
from services.bot.routers.handover import current_deployment
from services.bot.states import DepartureChange
from shared import events
from shared.clock import Clock
from shared.contracts.roster import PersonCard
from shared.store import Database

FURTHEST = timedelta(days=730)


async def ask(message: Pressed, state: FSMContext, person: PersonCard) -> None:
    deployment = current_deployment(person)
    if deployment is None:
        await message.answer(_("You have no current deployment, so there is no departure date to change."))
        return
    await state.set_state(DepartureChange.new_date)
    await state.set_data({"deployment_id": str(deployment.deployment_id)})
    await message.answer(_("Send your new departure date as YYYY-MM-DD, for example {example}.").format(
        example=deployment.planned_end + timedelta(days=14)))


def build_departure_router(*, db: Database, clock: Clock) -> Router:
    router = Router(name="departure")
    router.message.filter(IsRegistered())

    @router.message(StateFilter(DepartureChange.new_date), F.text, ~F.text.startswith("/"))
    async def new_date(message: Message, state: FSMContext, person: PersonCard) -> None:
        today = clock.now().date()
        try:
            day = date.fromisoformat((message.text or "").strip())
        except ValueError:
            await message.answer(_("I could not read that date. Please write it as YYYY-MM-DD, for example {example}.")
                                 .format(example=today + timedelta(days=30)))
            return
        if not today <= day <= today + FURTHEST:
            await message.answer(_("Please give a date from today to two years ahead."))
            return
        data = await state.get_data()
        async with db.unit_of_work() as uow:
            uow.emit(events.DepartureChanged(person_id=person.person_id, deployment_id=data["deployment_id"],
                                             planned_end=day, changed_at=clock.now()))
        await state.clear()
        await message.answer(_("Thank you: your departure is now on {day}. The roster is updated; your reminders "
                               "and your successor follow the new date.").format(day=day.isoformat()))

    return router
