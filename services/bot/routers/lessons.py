"""/lessons <words> [#theme]: search what the community learned, as the asker may read it
(lessons applies the classification: restricted items reach only their author, the CMCS
desk and the region's adviser; it asks the roster who the asker is, the bot says only
their person id). When the roster could not tell it, lessons shows the public lessons
and the officer is told there may be more."""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from services.bot.filters import IsMember
from services.bot.lessons_client import LessonsClient, LessonsUnavailable
from services.bot.render import country_of
from services.bot.routers.report import themes_in
from shared.contracts.lessons import ItemCard
from shared.contracts.roster import PersonCard
from shared.themes import THEMES

SHOWN = 5
MAX_QUERY = 300  # characters: what lessons' search takes


def _card(item: ItemCard) -> str:
    status = {"identified": _("lesson identified"), "learned": _("lesson learned")}.get(item.status, "")
    head = f"<b>{escape(item.reference)}</b> {escape(item.title)}"
    meta = " · ".join(p for p in (escape(country_of(item.country)), status) if p)
    lines = [head, f"<i>{meta}</i>", escape(item.snippet)]
    if item.action:
        lines.append(_("Action taken: {action}").format(action=escape(item.action)))
    return "\n".join(lines)


def build_lessons_router(*, lessons: LessonsClient) -> Router:
    router = Router(name="lessons")
    router.message.filter(IsMember())

    @router.message(Command("lessons"))
    async def search(message: Message, command: CommandObject, person: PersonCard) -> None:
        themes, words = themes_in((command.args or "").strip())
        if not words and not themes:
            await message.answer(_("What are you looking for? For example: /lessons checkpoint convoy, or "
                                   "/lessons #access. Themes: {themes}").format(
                themes=", ".join(f"#{t}" for t in THEMES)))
            return
        if len(words) > MAX_QUERY:
            await message.answer(_("That search is too long: at most {n} characters. A few words will do, for "
                                   "example: /lessons checkpoint convoy").format(n=MAX_QUERY))
            return
        try:
            found = await lessons.search(person.person_id, query=words, theme=themes[0] if themes else None,
                                         limit=SHOWN)
        except ValueError:  # lessons refused the search itself
            await message.answer(_("I cannot search for that. A few words will do, for example: /lessons "
                                   "checkpoint convoy"))
            return
        except LessonsUnavailable:
            await message.answer(_("I cannot reach the lessons service right now. Please try again in a moment."))
            return
        # the roster did not tell lessons what the asker may read: the public lessons only, and said so
        partial = [_("I could not check just now what else you may read, so only public lessons are shown. "
                     "Try again in a moment to see them all.")] if found.rights_unknown else []
        if not found.items:
            await message.answer("\n\n".join([_("Nothing found. Try fewer or other words."), *partial]))
            return
        if found.more_than is not None:
            head = _("More than {total} found; the {n} newest (add a word to narrow it down):").format(
                total=found.more_than, n=len(found.items))
        elif found.newest_first:
            head = _("{total} found; the {n} newest:").format(total=found.total, n=len(found.items))
        else:
            head = _("{total} found; the {n} most relevant:").format(total=found.total, n=len(found.items))
        await message.answer("\n\n".join([head, *(_card(i) for i in found.items), *partial]))

    return router
