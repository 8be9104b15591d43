"""/report: a field report (an observation) for the lessons service.

Step by step: what happened, where (the officer's post by default), themes,
classification (community by default), an optional photo or document, then a
confirmation with the report's reference. Each step is kept in the conversation
state (the bot's store): a restart or a lost connection resumes where it was. Each
answer is kept as the person's report draft too (services/bot/drafts.py): after
/cancel, or another command, the next /report offers to resume it or start again.
On a bad connection, one message does it all: `/report #access what happened`
(the post's country, community). A report of #tags alone is refused: the
conversation goes on at "What happened?", with the themes named kept.

The report reaches lessons as bot.report.submitted (outbox); its reference is
derived from its id, so the officer has it at once.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot import drafts
from services.bot.callbacks import LessonStep
from services.bot.edits import Pressed, pressed
from services.bot.filters import IsMember
from services.bot.quality import nudges
from services.bot.render import country_of, theme_of
from services.bot.routers.widgets import (
    classification_keyboard,
    classification_labels,
    post_country,
    themes_keyboard,
    toggle_theme,
)
from services.bot.states import ReportWriting
from shared import events
from shared.clock import Clock
from shared.contracts.roster import PersonCard
from shared.regions import resolve_country
from shared.store import Database
from shared.themes import (
    CLASSIFICATIONS,
    DEFAULT_CLASSIFICATION,
    reference,
    resolve_theme,
)

MAX_TEXT = 6000


def nudge_text(text: str) -> str:
    """Advice on the report as written; it is kept whatever the advice."""
    tips = {"too_short": _("Say who, where and when, so that someone who was not there understands it."),
            "too_long": _("About a page at most: keep what others can use."),
            "acronyms": _("Spell out acronyms the first time, e.g. Military and Civil Defence Assets (MCDA): {d}"),
            "opinion": _("Facts rather than opinions (\"{d}\"): what happened, what it caused."),
            "context": _("Make it stand on its own (\"{d}\"): readers do not have the earlier messages.")}
    found = nudges(text)
    if not found:
        return ""
    return _("Tips (your report is kept as written):") + "\n" + "\n".join(
        "• " + tips[kind].format(d=escape(detail)) for kind, detail in found)


def themes_in(text: str) -> tuple[list[str], str]:
    """#hashtags that name themes, and the text without them."""
    themes, words = [], []
    for word in text.split(" "):
        theme = resolve_theme(word) if word.startswith("#") else None
        if theme is not None:
            themes.append(theme)
        else:
            words.append(word)
    return list(dict.fromkeys(themes)), " ".join(words).strip()


def has_content(text: str) -> bool:
    """Words besides #tags: something a reader learns from."""
    return any(ch.isalnum() for word in text.split() if not word.startswith("#") for ch in word)


def unknown_tags(text: str) -> list[str]:
    return [word for word in text.split() if word.startswith("#") and len(word) > 1 and resolve_theme(word) is None]


def _summary(data: dict[str, Any]) -> str:
    themes = ", ".join(theme_of(t) for t in data.get("themes", [])) or _("none")
    lines = [_("<b>Your report</b>"), escape(data["text"]),
             _("Where: {country}").format(country=escape(country_of(data["country"]))),
             _("Themes: {themes}").format(themes=escape(themes)),
             _("Who can read it: {c}").format(c=classification_labels()[data["classification"]])]
    if data.get("attachment_name"):
        lines.append(_("Attached: {name}").format(name=escape(data["attachment_name"])))
    return "\n".join(lines)


async def submit(db: Database, clock: Clock, person: PersonCard, data: dict[str, Any]) -> str:
    report_id = uuid.UUID(data["report_id"])
    ref = reference("R", report_id)
    await db.emit_once([(events.deterministic_id("report", report_id), events.ReportSubmitted(
        report_id=report_id, reference=ref, person_id=person.person_id, text=data["text"],
        country=data["country"], themes=data.get("themes", []), classification=data["classification"],
        attachment_kind=data.get("attachment_kind"), attachment_file_id=data.get("attachment_file_id"),
        attachment_name=data.get("attachment_name"), submitted_at=clock.now()))])  # a replayed "Send": sent once
    return ref


STEP_NUMBER: dict[str, int] = {str(s.state): i + 1 for i, s in enumerate(
    (ReportWriting.text, ReportWriting.country, ReportWriting.themes, ReportWriting.classification,
     ReportWriting.attachment, ReportWriting.confirm))}
KIND = "report"


def empty_report(text: str) -> str:
    """Why a report of #tags alone is not taken (what to write comes with the next question)."""
    refused = _("A report needs a few words on what happened, not only themes.")
    unknown = unknown_tags(text)
    if unknown:
        refused += " " + _("Not a theme I know: {tags}. You choose themes from a list after the text.").format(
            tags=escape(", ".join(unknown)))
    return refused


def build_report_router(*, db: Database, clock: Clock) -> Router:
    router = Router(name="report")
    router.message.filter(IsMember())
    router.callback_query.filter(IsMember())

    async def ask(message: Pressed, state: FSMContext, person: PersonCard) -> None:
        """The question of the step the conversation is at."""
        current, data = await state.get_state(), await state.get_data()
        if current == ReportWriting.text.state:
            await message.answer(_("What happened? A few lines: who, where, when, what it caused. "
                                   "/cancel stops (what you wrote is kept)."))
        elif current == ReportWriting.country.state:
            keyboard = InlineKeyboardBuilder()
            home = post_country(person)
            if home:
                keyboard.button(text=country_of(home), callback_data=LessonStep(a="country", v=home))
            await message.answer(_("Where? Press your post's country or write another country's name."),
                                 reply_markup=keyboard.as_markup() if home else None)
        elif current == ReportWriting.themes.state:
            await message.answer(_("Themes: press all that apply, then Done."),
                                 reply_markup=themes_keyboard(data.get("themes", [])))
        elif current == ReportWriting.classification.state:
            await message.answer(_("Who may read it?"), reply_markup=classification_keyboard(data["classification"]))
        elif current == ReportWriting.attachment.state:
            keyboard = InlineKeyboardBuilder()
            keyboard.button(text=_("No attachment"), callback_data=LessonStep(a="skip"))
            await message.answer(_("A photo or a document? Send it now, or press No attachment."),
                                 reply_markup=keyboard.as_markup())
        elif current == ReportWriting.confirm.state:
            keyboard = InlineKeyboardBuilder()
            keyboard.button(text=_("Send"), callback_data=LessonStep(a="send"))
            keyboard.button(text=_("Cancel"), callback_data=LessonStep(a="cancel"))
            await message.answer(_summary(data), reply_markup=keyboard.as_markup())

    async def to(step: Any, message: Pressed, state: FSMContext, person: PersonCard) -> None:
        await state.set_state(step)
        await drafts.keep(state, person)  # the answers so far, whatever ends the conversation now
        await ask(message, state, person)

    async def open_report(message: Pressed, state: FSMContext, person: PersonCard,
                          themes: list[str] | None = None) -> None:
        """The report under way, or the choice of the draft left, or a new one (with `themes` chosen)."""
        current = await state.get_state()
        if current in STEP_NUMBER:  # resume where they were
            await message.answer(_("We were at step {n} of 6.").format(n=STEP_NUMBER[current]))
            await ask(message, state, person)
            return
        draft = await drafts.found(state, person, KIND, set(STEP_NUMBER))
        if draft is not None:
            await drafts.offer(message, KIND, _(
                "You have a report you did not finish (last written on {day}, at step {n} of 6). Resume it, or "
                "start again? Starting again deletes it.").format(day=draft.updated_at.date().isoformat(),
                                                                  n=STEP_NUMBER[draft.step]))
            return
        await state.set_data({"report_id": str(uuid.uuid4()), "classification": DEFAULT_CLASSIFICATION,
                              "themes": themes or []})
        await to(ReportWriting.text, message, state, person)

    @router.message(Command("report"))
    async def report(message: Message, command: CommandObject, state: FSMContext, person: PersonCard) -> None:
        if command.args and command.args.strip():
            await one_message(message, command.args, state, person)
            return
        await open_report(message, state, person)

    drafts.on_choice(router, KIND, set(STEP_NUMBER), lambda message, state, person: open_report(message, state, person))

    async def one_message(message: Message, args: str, state: FSMContext, person: PersonCard) -> None:
        themes, text = themes_in(args)
        country = post_country(person)
        if not has_content(text):  # nothing but #tags: the conversation asks what happened
            await message.answer(empty_report(text))
            await open_report(message, state, person, themes)
            return
        if country is None:
            await message.answer(_("Write what happened after the command, e.g. /report #access Checkpoint at "
                                   "the bridge closed to convoys since Monday. Without a current post, send "
                                   "/report alone and I ask where."))
            return
        if len(text) > MAX_TEXT:
            await message.answer(_("Please keep a report under {n} characters.").format(n=MAX_TEXT))
            return
        data = {"report_id": str(uuid.uuid4()), "text": text, "country": country, "themes": themes,
                "classification": DEFAULT_CLASSIFICATION}
        ref = await submit(db, clock, person, data)
        tips = nudge_text(text)
        await message.answer(_("Report received, reference {ref} ({country}, community).").format(
            ref=ref, country=escape(country_of(country))) + ("\n\n" + tips if tips else ""))

    @router.message(Command("cancel"), StateFilter(ReportWriting))
    async def cancel(message: Message, state: FSMContext, person: PersonCard) -> None:
        await drafts.keep(state, person)
        await state.clear()  # the draft holds the answers: /report offers it back
        await message.answer(_("Stopped. What you wrote is kept: /report continues where you left off."))

    @router.message(StateFilter(ReportWriting.text), F.text, ~F.text.startswith("/"))
    async def text(message: Message, state: FSMContext, person: PersonCard) -> None:
        body = (message.text or "").strip()
        if len(body) > MAX_TEXT:
            await message.answer(_("Please keep a report under {n} characters.").format(n=MAX_TEXT))
            return
        themes, rest = themes_in(body)
        if not has_content(rest):  # #tags alone: the themes kept, the question again
            chosen = list((await state.get_data()).get("themes", []))
            await state.update_data({"themes": list(dict.fromkeys([*chosen, *themes]))})
            await message.answer(empty_report(rest))
            await ask(message, state, person)
            return
        await state.update_data({"text": body})
        tips = nudge_text(body)
        if tips:
            await message.answer(tips)
        await to(ReportWriting.country, message, state, person)

    @router.message(StateFilter(ReportWriting.country), F.text, ~F.text.startswith("/"))
    async def country_typed(message: Message, state: FSMContext, person: PersonCard) -> None:
        code = resolve_country(message.text or "")
        if code is None:
            await message.answer(_("I do not know that country. Write its name or its two-letter code, e.g. Mali "
                                   "or ML."))
            return
        await state.update_data({"country": code})
        await to(ReportWriting.themes, message, state, person)

    @router.callback_query(StateFilter(ReportWriting.country), LessonStep.filter(F.a == "country"))
    async def country_pressed(callback: CallbackQuery, callback_data: LessonStep, state: FSMContext,
                              person: PersonCard) -> None:
        await callback.answer()
        if resolve_country(callback_data.v) is None:
            return
        await state.update_data({"country": resolve_country(callback_data.v)})
        await to(ReportWriting.themes, pressed(callback), state, person)

    router.callback_query(StateFilter(ReportWriting.themes), LessonStep.filter(F.a == "theme"))(toggle_theme)

    @router.callback_query(StateFilter(ReportWriting.themes), LessonStep.filter(F.a == "done"))
    async def themes_done(callback: CallbackQuery, state: FSMContext, person: PersonCard) -> None:
        await callback.answer()
        await to(ReportWriting.classification, pressed(callback), state, person)

    @router.callback_query(StateFilter(ReportWriting.classification), LessonStep.filter(F.a == "class"))
    async def classification(callback: CallbackQuery, callback_data: LessonStep, state: FSMContext,
                             person: PersonCard) -> None:
        await callback.answer()
        if callback_data.v in CLASSIFICATIONS:
            await state.update_data({"classification": callback_data.v})
            await to(ReportWriting.attachment, pressed(callback), state, person)

    @router.message(StateFilter(ReportWriting.attachment), F.photo | F.document)
    async def attachment(message: Message, state: FSMContext, person: PersonCard) -> None:
        if message.photo:
            found = {"attachment_kind": "photo", "attachment_file_id": message.photo[-1].file_id,
                     "attachment_name": "photo"}
        else:
            assert message.document is not None
            found = {"attachment_kind": "document", "attachment_file_id": message.document.file_id,
                     "attachment_name": (message.document.file_name or "document")[:200]}
        await state.update_data(found)
        await to(ReportWriting.confirm, message, state, person)

    @router.callback_query(StateFilter(ReportWriting.attachment), LessonStep.filter(F.a == "skip"))
    async def no_attachment(callback: CallbackQuery, state: FSMContext, person: PersonCard) -> None:
        await callback.answer()
        await to(ReportWriting.confirm, pressed(callback), state, person)

    @router.callback_query(StateFilter(ReportWriting.confirm), LessonStep.filter(F.a == "send"))
    async def send(callback: CallbackQuery, state: FSMContext, person: PersonCard) -> None:
        await callback.answer()
        ref = await submit(db, clock, person, await state.get_data())
        await drafts.drop(state, person, KIND)
        await state.clear()
        await pressed(callback).answer(_("Report sent, reference {ref}. Thank you: the CMCS desk reviews "
                                         "every report.").format(ref=ref))

    @router.callback_query(StateFilter(ReportWriting.confirm), LessonStep.filter(F.a == "cancel"))
    async def discard(callback: CallbackQuery, state: FSMContext, person: PersonCard) -> None:
        await callback.answer()
        await drafts.drop(state, person, KIND)
        await state.clear()
        await pressed(callback).answer(_("Report discarded."))

    @router.message(StateFilter(ReportWriting), ~F.text.startswith("/"))
    async def unexpected(message: Message, state: FSMContext, person: PersonCard) -> None:
        """Something that does not answer the question: ask it again."""
        await ask(message, state, person)

    return router
