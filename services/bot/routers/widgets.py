"""Buttons /report and /aar share: the themes to tick and who may read it, and the country
a report or review is about unless the person says otherwise."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot import drafts
from services.bot.callbacks import LessonStep
from services.bot.edits import pressed, set_buttons
from services.bot.render import theme_of
from shared.contracts.roster import PersonCard
from shared.themes import THEMES


def post_country(person: PersonCard) -> str | None:
    deployments = person.deployments
    return deployments[0].country if deployments else None


def themes_keyboard(chosen: list[str]) -> InlineKeyboardMarkup:
    keyboard = InlineKeyboardBuilder()
    for code in THEMES:
        keyboard.button(text=("✓ " if code in chosen else "") + theme_of(code),
                        callback_data=LessonStep(a="theme", v=code))
    keyboard.button(text=_("Done"), callback_data=LessonStep(a="done"))
    keyboard.adjust(1)  # one a row: a French or Arabic theme's name is long for half a phone's width
    return keyboard.as_markup()


async def toggle_theme(callback: CallbackQuery, callback_data: LessonStep, state: FSMContext,
                       person: PersonCard) -> None:
    """A theme button of /report or /aar: the theme on or off, and the buttons show it."""
    await callback.answer()
    chosen = list((await state.get_data()).get("themes", []))
    if callback_data.v in THEMES:
        chosen = [t for t in chosen if t != callback_data.v] if callback_data.v in chosen else [*chosen, callback_data.v]
        await state.update_data({"themes": chosen})
        await drafts.keep(state, person)
    if not await set_buttons(callback, themes_keyboard(chosen)):  # an old message: the buttons anew
        await pressed(callback).answer(_("Themes: press all that apply, then Done."),
                                       reply_markup=themes_keyboard(chosen))


def classification_labels() -> dict[str, str]:
    return {"public": _("Public: anyone"), "community": _("Community: verified members"),
            "restricted": _("Restricted: CMCS desk and my regional adviser")}


def classification_keyboard(current: str) -> InlineKeyboardMarkup:
    keyboard = InlineKeyboardBuilder()
    for code, label in classification_labels().items():
        keyboard.button(text=("● " if code == current else "") + label, callback_data=LessonStep(a="class", v=code))
    keyboard.adjust(1)
    return keyboard.as_markup()
