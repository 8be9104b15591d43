"""/calls and /agenda: the regional coordination calls, from an officer's phone.

- /calls: my region's next call, in my time zone: link, chair, my answer and
  the counts, the agenda so far; the chair also sees who answered what (notify
  decides who chairs and sends the names to the chair only; the bot shows what
  it gets). /calls ROAP: another region's. /calls all: every region's next call.
- /calls subscribe ROAP (or unsubscribe): follow a region's calls without being
  deployed there (bot.call.subscription_changed).
- /agenda text, or /agenda ROAP: text: an item for the region's next call
  (bot.call.agenda_added); notify puts it on the agenda the chair and the
  participants get 24 h before. /agenda alone shows the agenda so far, each
  item with who added it.
- /summary [ROAP:] text, from the call's chair only: the summary goes to those
  invited to the call that last took place, and is kept (bot.call.summary_sent);
  notify is asked first, and with no call taken place yet or nobody invited to it
  the chair is told so and nothing is sent.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _

from services.bot.filters import IsMember
from services.bot.notify_client import NotifyClient, NotifyUnavailable
from shared import events
from shared.clock import Clock
from shared.contracts.notify import NextCall
from shared.contracts.roster import PersonCard
from shared.notices import local_time, region_name, zone
from shared.regions import resolve_region
from shared.store import Database

AGENDA_MAX = 500


def own_region(person: PersonCard) -> str | None:
    regions = [d.region for d in person.deployments]
    return regions[0] if regions else None


def _local(when: datetime, person: PersonCard) -> str:
    """A call's time in the asker's zone and language: "Tuesday 03 March, 06:00 (Africa/Dakar)"."""
    return local_time(when, zone(person.timezone).key, get_i18n().current_locale)


def _region(code: str) -> str:
    """A region's name in the reader's language (notify sends its English name; the code is enough)."""
    return region_name(code, get_i18n().current_locale)


def _call_text(call: NextCall, person: PersonCard) -> str:
    answer = {"join": _("you will join"), "decline": _("you cannot join")}.get(call.my_answer or "",
                                                                           _("not answered yet"))
    lines = [f"<b>{escape(_region(call.region))}</b>", _local(call.start, person)]
    if call.link:
        lines.append(_("Link: {link}").format(link=escape(call.link)))
    if call.chair_name or call.chair_email:  # the chair by name; an older notify gives the e-mail only
        lines.append(_("Chair: {name}").format(name=escape(call.chair_name or call.chair_email)))
    lines.append(_("Your answer: {answer}").format(answer=answer))
    lines.append(_("Answers: {join} will join, {decline} cannot, {none} not yet").format(join=call.answers.join, decline=call.answers.decline, none=call.answers.none))
    # notify's word, not the bot's; an older notify (names for everyone, no "you_chair") shows none
    if call.you_chair:
        for name, reply in call.answers_by_name or []:
            said = {"join": _("will join"), "decline": _("cannot join")}.get(reply or "", _("no answer yet"))
            lines.append(f"  {escape(name)}: {said}")
    lines.append(_("<b>Agenda</b>"))
    lines += [f"• {escape(item)}" for item in call.agenda] or [_("• nothing yet: add an item with /agenda")]
    return "\n".join(lines)


def _chairs(call: NextCall, person: PersonCard) -> bool:
    """Whether the person chairs the call, as notify says; an older notify does not say (the e-mails
    compared then, as before: notify keeps the summary's audience, the bot only gates the command)."""
    if "you_chair" in call.model_fields_set:
        return call.you_chair
    return bool(call.chair_email) and call.chair_email == (person.email or "").lower()


def _region_and_text(args: str, person: PersonCard) -> tuple[str | None, str]:
    """"ROAP: text" names the region; plain text is for the person's own region."""
    text = args.strip()
    head, sep, rest = text.partition(":")
    if sep and " " not in head.strip() and resolve_region(head.strip()) is not None:
        return resolve_region(head.strip()), rest.strip()
    return own_region(person), text


def build_calls_router(*, notify: NotifyClient, db: Database, clock: Clock) -> Router:
    router = Router(name="calls")
    router.message.filter(IsMember())

    @router.message(Command("calls"))
    async def calls(message: Message, command: CommandObject, person: PersonCard) -> None:
        words = (command.args or "").split()
        if words[:1] in (["subscribe"], ["unsubscribe"]):
            await _subscription(message, person, words)
            return
        try:
            if words[:1] == ["all"]:
                found = await notify.next_calls(person.person_id)
                lines = [_("<b>Next regional calls</b>")]
                lines += [f"{escape(c.region)} · {escape(_region(c.region))}: {_local(c.start, person)}" for c in found]
                await message.answer("\n".join(lines))
                return
            region = resolve_region(words[0]) if words else own_region(person)
            if region is None:
                await message.answer(_("Which region? For example /calls ROAP, or /calls all for every region."))
                return
            await message.answer(_call_text(await notify.next_call(person.person_id, region), person))
        except NotifyUnavailable:
            await message.answer(_("I cannot reach the call schedules right now. Please try again in a moment."))

    async def _subscription(message: Message, person: PersonCard, words: list[str]) -> None:
        region = resolve_region(words[1]) if len(words) > 1 else None
        if region is None:
            await message.answer(_("Which region? For example /calls subscribe ROAP."))
            return
        subscribed = words[0] == "subscribe"
        async with db.unit_of_work() as uow:
            uow.emit(events.CallSubscriptionChanged(person_id=person.person_id, region=region, subscribed=subscribed,
                                                    at=clock.now()))
        await message.answer((_("You will get the {region} call's reminders.") if subscribed
                              else _("You will no longer get the {region} call's reminders, unless you are "
                                     "deployed there.")).format(region=region))

    @router.message(Command("summary"))
    async def summary(message: Message, command: CommandObject, person: PersonCard) -> None:
        region, text = _region_and_text(command.args or "", person)
        if not text or region is None:
            await message.answer(_("Write the summary after the command, for example:\n/summary ROAP: what was "
                                   "agreed, who follows up"))
            return
        try:
            call = await notify.next_call(person.person_id, region)
        except NotifyUnavailable:
            await message.answer(_("I cannot reach the call schedules right now. Please try again in a moment."))
            return
        if not _chairs(call, person):
            await message.answer((_("I cannot check who chairs the {region} call right now. Please try again in a "
                                    "moment.") if call.chair_unknown else
                                  _("Only the chair of the {region} call sends its summary.")).format(region=region))
            return
        try:  # notify says what the summary would do: the bot claims nothing it did not do
            would = await notify.summary_audience(person.person_id, region)
        except NotifyUnavailable:
            await message.answer(_("I cannot reach the call schedules right now. Please try again in a moment."))
            return
        if would.call_start is None:
            await message.answer(_("No {region} call has taken place yet, so there is nobody to send a summary "
                                   "to: nothing was sent or kept. Send it after the call.").format(region=region))
            return
        held = _local(would.call_start, person)
        if not would.audience:
            await message.answer(_("Nobody was invited to the {region} call of {when}, so there is nobody to send "
                                   "the summary to: nothing was sent or kept.").format(region=region, when=held))
            return
        async with db.unit_of_work() as uow:
            uow.emit(events.CallSummarySent(person_id=person.person_id, region=region, text=text[:3000],
                                            sent_at=clock.now()))
        await message.answer(_("Sent to those invited to the {region} call of {when}, and kept.").format(
            region=region, when=held))

    async def _agenda_so_far(region: str | None, person: PersonCard) -> list[str]:
        """The next call's agenda as it stands, each item with who added it (nothing when notify is away)."""
        if region is None:
            return []
        try:
            call = await notify.next_call(person.person_id, region)
        except NotifyUnavailable:
            return []
        lines = [_("<b>Agenda of the next {region} call</b>").format(region=region)]
        lines += [f"• {escape(item)}" for item in call.agenda] or [_("• nothing yet: add an item with /agenda")]
        return ["\n".join(lines)]

    @router.message(Command("agenda"))
    async def agenda(message: Message, command: CommandObject, person: PersonCard) -> None:
        region, text = _region_and_text(command.args or "", person)
        if not text:
            hint = _("Write the item after the command, for example:\n/agenda Access to Mopti since "
                     "the bridge closed\nor for another region: /agenda ROAP: your item")
            await message.answer("\n\n".join([hint, *await _agenda_so_far(region, person)]))
            return
        if len(text) > AGENDA_MAX:
            await message.answer(_("Please keep an agenda item under {n} characters.").format(n=AGENDA_MAX))
            return
        if region is None:
            await message.answer(_("You are not deployed in a region now: name one, for example /agenda ROAP: "
                                   "your item."))
            return
        try:
            full = (await notify.next_call(person.person_id, region)).agenda_full
        except NotifyUnavailable:
            full = None  # notify holds the same bounds when the item reaches it
        if full == "person":
            await message.answer(_("You already have the most items one person can add to the next {region} call. "
                                   "Raise the rest during the call.").format(region=region))
            return
        if full == "call":
            await message.answer(_("The agenda of the next {region} call is full. Raise your item during the call, "
                                   "or write to the chair.").format(region=region))
            return
        async with db.unit_of_work() as uow:
            uow.emit(events.CallAgendaAdded(person_id=person.person_id, region=region, text=text,
                                            added_at=clock.now()))
        await message.answer(_("Added to the agenda of the next {region} call.").format(region=region))

    return router
