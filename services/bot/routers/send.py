"""/send: an ad-hoc message from a regional adviser (to their region) or the CMCS desk (to any
region, or everyone), with acknowledgement figures.

A short conversation: region, text, urgent or not, then a confirmation. Who may send is the
roster's word (`rights`: the desk, and the regions a person advises), asked when the
conversation starts and again when it is sent. The message goes to notify as notification
requests (bot is one of notify.notification.requested's senders), one notification per person
deployed in the region, each with an Acknowledge button, under notify's usual policies.
`/send status M-…` shows how many were sent, acknowledged, pending and unreachable, with names
(the desk any message's, an adviser those of their region).
"""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from nats.errors import Error as NatsError

from services.bot.edits import Pressed, pressed
from services.bot.filters import IsMember
from services.bot.notify_client import NotifyClient, NotifyUnavailable
from services.bot.roster_client import RosterClient
from shared import adhoc
from shared.bus import QueryError
from shared.clock import Clock
from shared.contracts.notify import MessageStatus
from shared.contracts.roster import PersonCard
from shared.contracts.roster import Rights as RosterRights
from shared.regions import fold, resolve_region
from shared.store import Database

EVERYONE_WORDS = frozenset({"everyone", "all", "tous", "tout le monde", "الجميع"})
NAMES_SHOWN = 40  # per line of the figures: a message stays well within Telegram's 4,096 characters


class SendWriting(StatesGroup):
    region = State()
    text = State()
    urgent = State()
    confirm = State()


class SendStep(CallbackData, prefix="sd"):
    """A button of /send: `a` is urgent, normal, send or cancel."""

    a: str


class Rights:
    def __init__(self, answer: RosterRights) -> None:
        self.desk = answer.desk
        self.regions = list(answer.adviser_regions)

    @property
    def any(self) -> bool:
        return self.desk or bool(self.regions)

    def may_send_to(self, region: str | None) -> bool:
        return self.desk or (region is not None and region in self.regions)


def _names(names: list[str]) -> str:
    shown = ", ".join(escape(n) for n in names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return (shown + _(" and {n} more").format(n=more)) if more > 0 else (shown or "-")


def figures_text(found: MessageStatus) -> str:
    lines = [_("<b>Message {ref}</b> to {audience}").format(
        ref=escape(found.reference), audience=escape(found.region or _("everyone"))),
        _("Sent {sent} of {total}: acknowledged {acknowledged}, pending {pending}, unreachable {unreachable}").format(
            sent=found.sent, total=found.total, acknowledged=len(found.acknowledged),
            pending=len(found.pending), unreachable=len(found.unreachable)),
        _("Acknowledged: {names}").format(names=_names(found.acknowledged)),
        _("Pending: {names}").format(names=_names(found.pending)),
        _("Unreachable: {names}").format(names=_names(found.unreachable))]
    return "\n".join(lines)


def build_send_router(*, roster: RosterClient, notify: NotifyClient, db: Database, clock: Clock) -> Router:
    router = Router(name="send")
    router.message.filter(IsMember())
    router.callback_query.filter(IsMember())

    async def rights_of(message: Pressed, person: PersonCard) -> Rights | None:
        try:
            return Rights(await roster.rights(person.person_id))
        except (QueryError, NatsError, TimeoutError):
            await message.answer(_("I cannot reach the roster right now. Please try again in a moment."))
            return None

    def refusal() -> str:
        return _("Only regional advisers (to their region) and the CMCS desk can send messages with /send.")

    async def sender_rights(message: Pressed, person: PersonCard) -> Rights | None:
        """The person's rights if they may send at all (an adviser or the desk); else they are told why."""
        rights = await rights_of(message, person)
        if rights is not None and not rights.any:
            await message.answer(refusal())
            return None
        return rights

    @router.message(Command("send"))
    async def send(message: Message, command: CommandObject, state: FSMContext, person: PersonCard) -> None:
        words = (command.args or "").split()
        if words[:1] == ["status"]:
            await status(message, words[1] if len(words) > 1 else "", person)
            return
        rights = await sender_rights(message, person)
        if rights is None:
            return
        await state.set_state(SendWriting.region)
        await state.set_data({})
        choices = ", ".join(rights.regions) if not rights.desk else _("any region, or everyone")
        await message.answer(_("A message to acknowledge, for everyone deployed in a region. Which region? "
                               "You may send to: {choices}. /cancel stops.").format(choices=escape(choices)))

    @router.message(Command("cancel"), StateFilter(SendWriting))
    async def cancel(message: Message, state: FSMContext) -> None:
        await state.clear()
        await message.answer(_("Stopped: nothing was sent."))

    @router.message(StateFilter(SendWriting.region), F.text, ~F.text.startswith("/"))
    async def region(message: Message, state: FSMContext, person: PersonCard) -> None:
        rights = await rights_of(message, person)
        if rights is None:
            return
        answer = message.text or ""
        everyone = fold(answer) in EVERYONE_WORDS
        code = None if everyone else resolve_region(answer)
        if not everyone and code is None:
            await message.answer(_("I do not know that region. Write its code, for example ROWCA or ROAP."))
            return
        if (everyone and not rights.desk) or not rights.may_send_to(code):
            await message.answer(_("You can send to your own region only: {regions}.").format(
                regions=escape(", ".join(rights.regions))))
            return
        await state.update_data({"region": code, "everyone": everyone})
        await state.set_state(SendWriting.text)
        await message.answer(_("Write the message (up to {n} characters).").format(n=adhoc.TEXT_LIMIT))

    @router.message(StateFilter(SendWriting.text), F.text, ~F.text.startswith("/"))
    async def text(message: Message, state: FSMContext) -> None:
        body = (message.text or "").strip()
        if not body or len(body) > adhoc.TEXT_LIMIT:
            await message.answer(_("Please keep the message under {n} characters.").format(n=adhoc.TEXT_LIMIT))
            return
        await state.update_data({"text": body})
        await state.set_state(SendWriting.urgent)
        keyboard = InlineKeyboardBuilder()
        keyboard.button(text=_("Urgent"), callback_data=SendStep(a="urgent"))
        keyboard.button(text=_("Not urgent"), callback_data=SendStep(a="normal"))
        await message.answer(_("Urgent? An urgent message is not held by quiet hours (22:00 to 07:00 where each "
                               "person is)."), reply_markup=keyboard.as_markup())

    @router.callback_query(StateFilter(SendWriting.urgent), SendStep.filter(F.a.in_({"urgent", "normal"})))
    async def urgent(callback: CallbackQuery, callback_data: SendStep, state: FSMContext) -> None:
        await callback.answer()
        data = await state.get_data()
        # the reference is fixed before the confirmation: a replayed confirmation makes the same events
        await state.update_data({"urgent": callback_data.a == "urgent",
                                 "ref": data.get("ref") or adhoc.new_reference()})
        await state.set_state(SendWriting.confirm)
        data = await state.get_data()
        keyboard = InlineKeyboardBuilder()
        keyboard.button(text=_("Send"), callback_data=SendStep(a="send"))
        keyboard.button(text=_("Cancel"), callback_data=SendStep(a="cancel"))
        audience = _("everyone") if data.get("everyone") else data["region"]
        await pressed(callback).answer(
            _("To: {audience}{urgent}").format(audience=escape(audience),
                                                 urgent=_(" (urgent)") if data["urgent"] else "")
            + "\n\n" + escape(data["text"]), reply_markup=keyboard.as_markup())

    @router.callback_query(StateFilter(SendWriting.confirm), SendStep.filter(F.a == "cancel"))
    async def discard(callback: CallbackQuery, state: FSMContext) -> None:
        await callback.answer()
        await state.clear()
        await pressed(callback).answer(_("Stopped: nothing was sent."))

    @router.callback_query(StateFilter(SendWriting.confirm), SendStep.filter(F.a == "send"))
    async def confirm(callback: CallbackQuery, state: FSMContext, person: PersonCard) -> None:
        await callback.answer()
        message = pressed(callback)
        data = await state.get_data()
        rights = await rights_of(message, person)
        if rights is None:
            return
        region, everyone = data.get("region"), bool(data.get("everyone"))
        if (everyone and not rights.desk) or (not everyone and not rights.may_send_to(region)):
            await state.clear()
            await message.answer(refusal())
            return
        people = []
        if not everyone:
            assert region is not None
            try:
                people = await adhoc.region_members(roster.bus, region, timeout=roster.timeout)
            except (QueryError, NatsError, TimeoutError):
                await message.answer(_("I cannot reach the roster right now. Please try again in a moment."))
                return
            if not people:
                await state.clear()
                await message.answer(_("Nobody is deployed in {region} today: nothing was sent.").format(region=region))
                return
        ref = data.get("ref") or adhoc.new_reference()
        role = "CMCS desk" if rights.desk else "regional adviser"
        body = adhoc.message_text(sender=f"{person.name} ({role})", audience="everyone" if everyone else
                                  f"everyone in {region}", text=data["text"], ref=ref)
        # a replayed confirmation makes the same events (from the reference): recognised, not sent again
        await db.emit_once(adhoc.requests(ref=ref, text=body, urgent=bool(data.get("urgent")), region=region,
                                          everyone=everyone, person_ids=people))
        await state.clear()
        whom = _("every member linked to the bot") if everyone else _(
            "{n} person in {region}", "{n} people in {region}", len(people)).format(n=len(people), region=region)
        await message.answer(_("Sent to {whom}. Reference {ref}: /send status {ref} shows who acknowledged.").format(
            whom=whom, ref=ref))

    async def status(message: Message, reference: str, person: PersonCard) -> None:
        ref = adhoc.clean_reference(reference)
        if ref is None:
            await message.answer(_("Give the message's reference, for example /send status M-7KQ2M9XA."))
            return
        rights = await sender_rights(message, person)
        if rights is None:
            return
        try:
            found = await notify.message_status(ref)
        except NotifyUnavailable:
            await message.answer(_("I cannot reach the notifications right now. Please try again in a moment."))
            return
        if found is None:
            await message.answer(_("No message {ref} (yet).").format(ref=ref))
            return
        if not rights.may_send_to(found.region):
            await message.answer(_("You can see the figures of messages to your own region only."))
            return
        await message.answer(figures_text(found))

    @router.message(StateFilter(SendWriting), ~F.text.startswith("/"))
    async def unexpected(message: Message) -> None:
        await message.answer(_("Please answer the question above, or /cancel."))

    return router
