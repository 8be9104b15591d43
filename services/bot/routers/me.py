"""/me and /help, and the command menu in each language."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import BotCommand, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from services.bot.filters import IsRegistered, is_member
from services.bot.notify_client import NotifyClient, NotifyUnavailable
from services.bot.render import contact_card
from services.bot.routers.texts import NOT_REGISTERED, former_member_help, liaison_help, owed_lines
from shared.contracts.roster import PersonCard

COMMANDS = {
    "contacts": __("Who to call: /contacts Mali, ROWCA, WFP or a name"),
    "me": __("My post, end date and hats"),
    "handover": __("Write the handover note for my successor"),
    "pending": __("What still waits for my answer"),
    "calls": __("My region's next coordination call"),
    "agenda": __("Add an item to my region's next call"),
    "summary": __("Send the summary of a call I chair"),
    "report": __("Report what I observed (a field report)"),
    "aar": __("Write my after action review"),
    "lessons": __("Search the lessons: /lessons checkpoint #access"),
    "profile": __("Update my phone, languages and hats"),
    "send": __("Advisers and the desk: a message to a region"),
    "movement": __("Notify the parties of a movement (receipt, never approval)"),
    "site": __("Notify the parties of a site: a warehouse, an office, a camp"),
    "hns4d": __("What I notified or may see, and each party's acknowledgement"),
    "lang": __("Language: English, français, العربية"),
    "help": __("What this bot does"),
}


def commands() -> list[BotCommand]:
    """The command menu in the current language."""
    return [BotCommand(command=name, description=str(text)) for name, text in COMMANDS.items()]


def help_text() -> str:
    return _(
        "<b>CMCoord Hub</b>\n"
        "/contacts <i>country, region, organisation or name</i>: who to call\n"
        "/me: your post, end date, other hats and flags\n"
        "/handover: write the handover note for your successor\n"
        "/pending: what still waits for your answer\n"
        "/calls: your region's next call (/calls all: every region's; /calls subscribe ROAP: follow another)\n"
        "/agenda <i>text</i>: add an item to your region's next call (/agenda ROAP: <i>text</i> for another)\n"
        "/summary <i>text</i>: the summary of a call you chair, to its participants\n"
        "/report: report what you observed (or in one message: /report #access <i>what happened</i>)\n"
        "/aar: your after action review, five questions\n"
        "/lessons <i>words</i> #<i>theme</i>: search what the community learned\n"
        "/lang: English, français or العربية\n"
        "/help: this message"
    ) + "\n" + _(
        "/profile: update your phone, languages and hats\n"
        "/send: advisers and the CMCS desk, a message to a region to acknowledge (/send status M-…: who did)"
    ) + "\n" + _(
        "/movement: notify the parties to the conflict of a movement; they acknowledge receipt, which is never an "
        "approval\n/hns4d: what you notified or may see by your post, and each party's acknowledgement of receipt or its "
        "silence"
    ) + "\n" + _("/site: notify the parties of a static site (a warehouse, an office, a camp), like /movement")


def build_me_router(*, notify: NotifyClient) -> Router:
    router = Router(name="me")

    @router.message(Command("help"))
    async def help_(message: Message, person: PersonCard | None) -> None:
        if person is None:
            await message.answer(str(NOT_REGISTERED))
        else:
            await message.answer(help_text() if is_member(person) else liaison_help() if person.liaison
                                 else former_member_help())

    @router.message(Command("me"), IsRegistered())
    async def me(message: Message, person: PersonCard) -> None:
        text = _("<b>You</b>") + "\n" + contact_card(person)
        try:
            owed = owed_lines(await notify.pending(person.person_id))
        except NotifyUnavailable:
            owed = [_("(what you still owe is not available right now)")]
        if owed:
            text += "\n\n" + _("<b>You still owe</b>") + "\n" + "\n".join(owed)
        await message.answer(text)

    return router
