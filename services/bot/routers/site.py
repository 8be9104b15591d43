"""/site: a humanitarian notification of a static site (a warehouse, an office, a camp), step by step.

Its position is one Telegram location (📎 → Location), or "latitude, longitude" typed; the organisation
and the country are the person's, from the roster. Each answer is kept in the conversation state (the
bot's store): a restart resumes the step. HNS4D checks the whole (the position inside the country, the
dates) and answers with the reference, or each problem. Receipt by the parties is never approval.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import ValidationError

from services.bot.callbacks import SiteStep
from services.bot.edits import pressed
from services.bot.filters import IsMember
from services.bot.hns4d_client import Hns4dClient, Hns4dUnavailable
from services.bot.routers.notifying import (
    MAX_TEXT,
    point_help,
    position_problem,
    problems_list,
    receipt_only,
    shown_point,
    shown_time,
    submitted,
    time_help,
    typed_point,
    typed_time,
    unreachable,
)
from services.bot.routers.widgets import post_country
from services.bot.states import SiteWriting
from shared.contracts.hns4d import Submission
from shared.contracts.roster import PersonCard

MAX_OCCUPANCY = 1_000_000
TEXT_STEPS: dict[State, tuple[str, State]] = {  # the answer kept as `field`, then the next step
    SiteWriting.name: ("name", SiteWriting.function),
    SiteWriting.function: ("function", SiteWriting.point),
}


def question(step: State) -> str:
    questions = {
        SiteWriting.name: _("1/6 What is the site? Its name, for example: WFP warehouse, Sévaré."),
        SiteWriting.function: _("2/6 Its humanitarian function? For example: food warehouse, health centre, "
                                "staff residence."),
        SiteWriting.point: _("3/6 Where is it? Share its location (📎, then Location), or type \"latitude, "
                             "longitude\"."),
        SiteWriting.occupancy: _("4/6 How many people are usually there? A number, or - when you do not know."),
        SiteWriting.start: _("5/6 From when is it notified? The day and time in UTC, for example: "
                             "2026-12-02 06:00"),
        SiteWriting.end: _("6/6 Until when? The day and time in UTC, for example: 2027-06-30 18:00"),
    }
    return questions[step]


def summary(data: dict[str, Any], person: PersonCard) -> str:
    lat, lon = data["point"]
    occupancy = data["occupancy"]
    return _("<b>Site to notify</b>\n{name}\nOrganisation: {organisation}\nFunction: {function}\nPosition: "
             "{point}\nPeople usually there: {occupancy}\nFrom {start} to {end} UTC").format(
        name=escape(data["name"]), organisation=escape(person.organisation), function=escape(data["function"]),
        point=shown_point(lat, lon), occupancy="-" if occupancy is None else occupancy,
        start=shown_time(data["start"]), end=shown_time(data["end"])) + "\n\n" + receipt_only()


def confirm_keyboard() -> Any:
    keyboard = InlineKeyboardBuilder()
    keyboard.button(text=_("Submit"), callback_data=SiteStep(a="send"))
    keyboard.button(text=_("Cancel"), callback_data=SiteStep(a="cancel"))
    keyboard.adjust(1)
    return keyboard.as_markup()


def build_site_router(*, hns4d: Hns4dClient) -> Router:
    router = Router(name="site")
    router.message.filter(IsMember())
    router.callback_query.filter(IsMember())

    @router.message(Command("site"))
    async def begin(message: Message, state: FSMContext, person: PersonCard) -> None:
        if post_country(person) is None:
            await message.answer(_("A site is notified in the country of your deployment, and the roster has none "
                                   "for you. Please ask the CMCS desk."))
            return
        await state.set_state(SiteWriting.name)
        await state.set_data({"submission_id": uuid.uuid4().hex})
        await message.answer(question(SiteWriting.name))

    @router.message(Command("cancel"), StateFilter(SiteWriting))
    async def cancel(message: Message, state: FSMContext) -> None:
        await state.clear()
        await message.answer(_("Nothing was submitted."))

    @router.message(StateFilter(*TEXT_STEPS), F.text, ~F.text.startswith("/"))
    async def text_step(message: Message, state: FSMContext) -> None:
        assert message.text is not None
        current = await state.get_state()
        step = next(s for s in TEXT_STEPS if s.state == current)
        field, following = TEXT_STEPS[step]
        answer = message.text.strip()
        if len(answer) > MAX_TEXT:
            await message.answer(_("That is too long: at most {n} characters.").format(n=MAX_TEXT))
            return
        await state.update_data({field: answer})
        await state.set_state(following)
        await message.answer(question(following))

    async def located(message: Message, state: FSMContext, lat: float, lon: float) -> None:
        if (problem := position_problem(lat, lon)) is not None:
            await message.answer(problem)
            return
        await state.update_data({"point": [lat, lon]})
        await state.set_state(SiteWriting.occupancy)
        await message.answer(question(SiteWriting.occupancy))

    @router.message(SiteWriting.point, F.location)
    async def shared_point(message: Message, state: FSMContext) -> None:
        assert message.location is not None
        await located(message, state, message.location.latitude, message.location.longitude)

    @router.message(SiteWriting.point, F.text, ~F.text.startswith("/"))
    async def point_typed(message: Message, state: FSMContext) -> None:
        assert message.text is not None
        point = typed_point(message.text)
        if point is None:
            await message.answer(point_help())
            return
        await located(message, state, *point)

    @router.message(SiteWriting.occupancy, F.text, ~F.text.startswith("/"))
    async def occupancy(message: Message, state: FSMContext) -> None:
        assert message.text is not None
        typed = "".join(message.text.split()).replace(",", "").replace("٬", "")  # 1 200, 1,200, ١٬٢٠٠
        unknown = typed in ("-", "–", "—")
        if not unknown and not (typed.isdecimal() and int(typed) <= MAX_OCCUPANCY):  # any script's digits: ٤٠
            await message.answer(_("That is not a number of people. Write a number, for example 40, or - when you "
                                   "do not know."))
            return
        await state.update_data({"occupancy": None if unknown else int(typed)})
        await state.set_state(SiteWriting.start)
        await message.answer(question(SiteWriting.start))

    @router.message(StateFilter(SiteWriting.start, SiteWriting.end), F.text, ~F.text.startswith("/"))
    async def time_step(message: Message, state: FSMContext, person: PersonCard) -> None:
        assert message.text is not None
        at = typed_time(message.text)
        if at is None:
            await message.answer(time_help())
            return
        starting = await state.get_state() == SiteWriting.start.state
        if not starting and at <= datetime.fromisoformat((await state.get_data())["start"]):
            await message.answer(_("It ends before it starts. When does it end?"))
            return
        await state.update_data({"start" if starting else "end": at.isoformat()})
        if starting:
            await state.set_state(SiteWriting.end)
            await message.answer(question(SiteWriting.end))
            return
        await state.set_state(SiteWriting.confirm)
        await message.answer(summary(await state.get_data(), person), reply_markup=confirm_keyboard())

    @router.callback_query(SiteWriting.confirm, SiteStep.filter(F.a.in_({"send", "cancel"})))
    async def confirm(callback: CallbackQuery, callback_data: SiteStep, state: FSMContext,
                      person: PersonCard) -> None:
        await callback.answer()
        where = pressed(callback)
        if callback_data.a == "cancel":
            await state.clear()
            await where.answer(_("Nothing was submitted."))
            return
        data = await state.get_data()
        try:
            submission = Submission(
                kind="site", country=post_country(person) or "", organisation=person.organisation, name=data["name"],
                function=data["function"], points=[tuple(data["point"])], occupancy=data["occupancy"],
                starts_at=datetime.fromisoformat(data["start"]), ends_at=datetime.fromisoformat(data["end"]))
            answer = await hns4d.submit(uuid.UUID(data["submission_id"]), person.person_id, submission)
        except ValidationError:
            await state.clear()
            await where.answer(_("Something in it cannot be sent. Please start again with /site."))
            return
        except Hns4dUnavailable:
            await where.answer(unreachable(), reply_markup=confirm_keyboard())
            return
        if answer.reference is None:
            await state.clear()
            await where.answer(_("Not submitted:\n{problems}\nSend /site to start again.").format(
                problems=problems_list(answer)))
            return
        await state.clear()
        await where.answer(submitted(answer))

    return router
