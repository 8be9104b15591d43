"""/movement: a humanitarian notification of a movement (a convoy, staff on the road), step by step;
/hns4d: what the person notified or may see, with each party's acknowledgement of receipt or its
silence; a party's liaison, what was addressed to their party (/site, a static site, is in `site`).

The route is shared as Telegram locations (📎 → Location), one per point, in order; a point may be
typed as "latitude, longitude" too. The organisation and the country are the person's, from the
roster. Each answer is kept in the conversation state (the bot's store): a restart resumes the step.
HNS4D checks the whole (positions inside the country, lead time, duplicates) and answers with the
reference, or each problem. Receipt by the parties is never approval, and the texts say so.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import ValidationError

from services.bot.callbacks import MovementStep
from services.bot.edits import pressed
from services.bot.filters import IsLiaison, IsMember
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
from services.bot.states import MovementWriting
from shared.contracts.hns4d import PartyStatus, RecordStatus, Submission
from shared.contracts.roster import PersonCard

MAX_POINTS = 50
MESSAGE_BUDGET = 3800  # of Telegram's 4,096 characters a message, what the notifications listed may take
TEXT_STEPS: dict[State, tuple[str, State | None]] = {  # the answer kept as `field`, then the next step
    MovementWriting.name: ("name", MovementWriting.route),
    MovementWriting.vehicles: ("vehicles", MovementWriting.markings),
    MovementWriting.markings: ("markings", MovementWriting.contact),
    MovementWriting.contact: ("contact", MovementWriting.confirm),
}


def _lines_within(text: str, budget: int) -> str:
    """Whole lines of `text` (never a tag or an entity cut) within `budget` characters, and "…" if cut."""
    kept: list[str] = []
    for line in text.split("\n"):
        if sum(len(k) + 1 for k in kept) + len(line) > budget - 2:
            return "\n".join(kept + ["…"])
        kept.append(line)
    return text


def question(step: State) -> str:
    questions = {
        MovementWriting.name: _("1/7 What is the movement? A short name, for example: Bamako–Mopti food convoy."),
        MovementWriting.route: _("2/7 The route: share each point as a location (📎, then Location), in order, "
                                 "from where it starts to where it ends. You may also type \"latitude, "
                                 "longitude\". Send /done after the last point."),
        MovementWriting.start: _("3/7 When does it start? The day and time in UTC, for example: 2026-12-02 06:00"),
        MovementWriting.end: _("4/7 When does it end? The day and time in UTC, for example: 2026-12-03 18:00"),
        MovementWriting.vehicles: _("5/7 Which vehicles? For example: 6 trucks, 1 escort car"),
        MovementWriting.markings: _("6/7 Their markings? For example: WFP flags, blue roofs"),
        MovementWriting.contact: _("7/7 Who is the contact on the road, and how to reach them?"),
    }
    return questions[step]


def summary(data: dict[str, Any], person: PersonCard) -> str:
    points = " → ".join(shown_point(lat, lon) for lat, lon in data["points"])
    return _("<b>Movement to notify</b>\n{name}\nOrganisation: {organisation}\nRoute: {route}\nFrom {start} to "
             "{end} UTC\nVehicles: {vehicles}\nMarkings: {markings}\nContact: {contact}").format(
        name=escape(data["name"]), organisation=escape(person.organisation), route=points,
        start=shown_time(data["start"]), end=shown_time(data["end"]), vehicles=escape(data["vehicles"]),
        markings=escape(data["markings"]), contact=escape(data["contact"])) + "\n\n" + receipt_only()


def _utc(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M}"


def party_line(p: PartyStatus) -> str:
    """One party's answer in the reader's language: receipt, or silence; never more."""
    party = escape(p.party)
    if p.state == "acknowledged" and p.acknowledged_at is not None:
        line = _("{party}: acknowledged receipt at {time} UTC").format(party=party, time=_utc(p.acknowledged_at))
        if p.recorded_how or p.recorded_by:
            line += " " + _("({how}, {who}; recorded by the CMCoord officer)").format(
                how=escape(p.recorded_how), who=escape(p.recorded_by))
        return line
    if p.state == "silent":
        return _("{party}: silent since {sent} UTC (receipt was due by {due} UTC)").format(
            party=party, sent=_utc(p.sent_at), due=_utc(p.due_at))
    return _("{party}: sent {sent} UTC, receipt asked for by {due} UTC").format(
        party=party, sent=_utc(p.sent_at), due=_utc(p.due_at))


def status_lines(record: RecordStatus) -> list[str]:
    """What the submitter reads of a record: its warning, then each party's answer (an older HNS4D's
    English lines as they came)."""
    if record.parties is None:
        return [escape(line.strip()) for line in record.lines]
    lines = [_("Warning: {warning}").format(warning=escape(record.warning))] if record.warning else []
    if not record.parties:
        return lines + [_("Not sent to the parties yet.")]
    return lines + [party_line(p) for p in record.parties]


def confirm_keyboard() -> Any:
    keyboard = InlineKeyboardBuilder()
    keyboard.button(text=_("Submit"), callback_data=MovementStep(a="send"))
    keyboard.button(text=_("Submit as an emergency"), callback_data=MovementStep(a="emergency"))
    keyboard.button(text=_("Cancel"), callback_data=MovementStep(a="cancel"))
    keyboard.adjust(1)
    return keyboard.as_markup()


def build_movement_router(*, hns4d: Hns4dClient) -> Router:
    router = Router(name="movement")
    router.message.filter(IsMember())
    router.callback_query.filter(IsMember())

    @router.message(Command("movement"))
    async def begin(message: Message, state: FSMContext, person: PersonCard) -> None:
        if post_country(person) is None:
            await message.answer(_("A movement is notified in the country of your deployment, and the roster "
                                   "has none for you. Please ask the CMCS desk."))
            return
        await state.set_state(MovementWriting.name)
        await state.set_data({"submission_id": uuid.uuid4().hex, "points": []})
        await message.answer(question(MovementWriting.name))

    @router.message(Command("cancel"), StateFilter(MovementWriting))
    async def cancel(message: Message, state: FSMContext) -> None:
        await state.clear()
        await message.answer(_("Nothing was submitted."))

    @router.message(StateFilter(*TEXT_STEPS), F.text, ~F.text.startswith("/"))
    async def text_step(message: Message, state: FSMContext, person: PersonCard) -> None:
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
        if following == MovementWriting.confirm:
            await message.answer(summary(await state.get_data(), person), reply_markup=confirm_keyboard())
        else:
            await message.answer(question(following))  # type: ignore[arg-type]

    @router.message(MovementWriting.route, F.location)
    async def shared_point(message: Message, state: FSMContext) -> None:
        assert message.location is not None
        await _add_point(message, state, message.location.latitude, message.location.longitude)

    @router.message(MovementWriting.route, Command("done"))
    async def route_done(message: Message, state: FSMContext) -> None:
        points = (await state.get_data())["points"]
        if len(points) < 2:
            await message.answer(_("A route has at least two points: where it starts and where it ends. Share "
                                   "the next one as a location."))
            return
        await state.set_state(MovementWriting.start)
        await message.answer(question(MovementWriting.start))

    @router.message(MovementWriting.route, F.text, ~F.text.startswith("/"))
    async def point_typed(message: Message, state: FSMContext) -> None:
        assert message.text is not None
        point = typed_point(message.text)
        if point is None:
            await message.answer(point_help())
            return
        await _add_point(message, state, *point)

    async def _add_point(message: Message, state: FSMContext, lat: float, lon: float) -> None:
        points = (await state.get_data())["points"]
        if (problem := position_problem(lat, lon)) is not None:
            await message.answer(problem)
            return
        if len(points) >= MAX_POINTS:
            await message.answer(_("That is {n} points already: send /done.").format(n=MAX_POINTS))
            return
        points.append([lat, lon])
        await state.update_data({"points": points})
        await message.answer(_("Point {n}: {point}. The next one, or /done after the last.").format(
            n=len(points), point=shown_point(lat, lon)))

    @router.message(StateFilter(MovementWriting.start, MovementWriting.end), F.text, ~F.text.startswith("/"))
    async def time_step(message: Message, state: FSMContext) -> None:
        assert message.text is not None
        at = typed_time(message.text)
        if at is None:
            await message.answer(time_help())
            return
        starting = await state.get_state() == MovementWriting.start.state
        if not starting and at <= datetime.fromisoformat((await state.get_data())["start"]):
            await message.answer(_("It ends before it starts. When does it end?"))
            return
        await state.update_data({"start" if starting else "end": at.isoformat()})
        following = MovementWriting.end if starting else MovementWriting.vehicles
        await state.set_state(following)
        await message.answer(question(following))

    @router.callback_query(MovementWriting.confirm, MovementStep.filter())
    async def confirm(callback: CallbackQuery, callback_data: MovementStep, state: FSMContext,
                      person: PersonCard) -> None:
        await callback.answer()
        where = pressed(callback)
        if callback_data.a == "cancel":
            await state.clear()
            await where.answer(_("Nothing was submitted."))
            return
        data = await state.get_data()
        country = post_country(person)
        try:
            submission = Submission(
                kind="movement", country=country or "", organisation=person.organisation, name=data["name"],
                points=[(lat, lon) for lat, lon in data["points"]], starts_at=datetime.fromisoformat(data["start"]),
                ends_at=datetime.fromisoformat(data["end"]), vehicles=data["vehicles"], markings=data["markings"],
                contact=data["contact"], emergency=callback_data.a == "emergency")
            answer = await hns4d.submit(uuid.UUID(data["submission_id"]), person.person_id, submission)
        except ValidationError:
            await state.clear()
            await where.answer(_("Something in it cannot be sent. Please start again with /movement."))
            return
        except Hns4dUnavailable:
            await where.answer(unreachable(), reply_markup=confirm_keyboard())
            return
        if answer.reference is None:
            await where.answer(_("Not submitted:\n{problems}\nIf it is an emergency, press Submit as an emergency; "
                                 "otherwise send /movement to start again.").format(problems=problems_list(answer)),
                               reply_markup=confirm_keyboard())
            return
        await state.clear()
        await where.answer(submitted(answer))

    return router


def build_hns4d_router(*, hns4d: Hns4dClient) -> Router:
    """/hns4d: for a member, the records they may see with each party's answer; for a party's liaison,
    the records addressed to their party with their own answer only (HNS4D decides both)."""
    router = Router(name="hns4d")
    router.message.filter(or_f(IsMember(), IsLiaison()))

    @router.message(Command("hns4d"))
    async def mine(message: Message, person: PersonCard) -> None:
        try:
            found = await hns4d.mine(person.person_id)
        except Hns4dUnavailable:
            await message.answer(_("I could not reach the humanitarian notification service. Please try again in "
                                   "a moment."))
            return
        if not found:
            await message.answer(_("No humanitarian notification has been addressed to your organisation yet.")
                                 if person.liaison else
                                 _("You have not notified any site or movement. /movement notifies one."))
            return
        blocks = [f"<b>{escape(r.reference)}</b> {escape(r.name)}"
                  + ("" if r.asker_submitted else f" ({escape(r.organisation)})") + "\n" + "\n".join(status_lines(r))
                  for r in found]
        shown = [_lines_within(blocks[0], MESSAGE_BUDGET)]  # the newest always; the rest while they fit
        for block in blocks[1:]:
            if sum(len(b) + 2 for b in shown) + len(block) > MESSAGE_BUDGET:
                break
            shown.append(block)
        await message.answer("\n\n".join(shown))

    return router
