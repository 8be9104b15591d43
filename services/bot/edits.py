"""Showing the answer to a pressed button as Telegram really behaves.

- A button pressed on a message older than 48 hours arrives with an
  `InaccessibleMessage` (its chat and id only): it cannot be edited, so the
  answer goes as a fresh message in the same chat.
- An edit to what the message already shows (a page turned back to the one
  shown, a button pressed twice) is refused with 400 "message is not
  modified": there is nothing to do.
- A message Telegram no longer lets the bot edit, or one deleted meanwhile:
  a fresh message too.

Every handler answers the callback query first (`callback.answer()`), then
edits through these: an edit that fails never leaves the button spinning.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import CallbackQuery, Chat, InaccessibleMessage, InlineKeyboardMarkup, Message

Pressed = Message | InaccessibleMessage  # what a fresh answer can be sent beside (both have `.answer`)
UNEDITABLE = ("message can't be edited", "message to edit not found")
# a delivered message the bot can no longer rewrite: nothing to do (gone, chat gone, not text)
GONE = (*UNEDITABLE, "message not found", "chat not found", "there is no text in the message to edit")


def not_modified(err: TelegramBadRequest) -> bool:
    return "message is not modified" in err.message.lower()


def uneditable(err: TelegramBadRequest) -> bool:
    return any(reason in err.message.lower() for reason in UNEDITABLE)


def pressed(callback: CallbackQuery) -> Pressed:
    """The message whose button was pressed, or, when Telegram sent none, a stand-in
    for the presser's private chat (fresh answers go there)."""
    if callback.message is not None:
        return callback.message
    stand_in = InaccessibleMessage(chat=Chat(id=callback.from_user.id, type=ChatType.PRIVATE), message_id=0)
    return stand_in.as_(callback.bot)


async def show(callback: CallbackQuery, text: str, *, reply_markup: InlineKeyboardMarkup | None = None) -> None:
    """The pressed message now reads `text`: edited in place, or sent afresh when it cannot be edited."""
    message = callback.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=reply_markup)
            return
        except TelegramBadRequest as err:
            if not_modified(err):
                return
            if not uneditable(err):
                raise
    await pressed(callback).answer(text, reply_markup=reply_markup)


async def set_buttons(callback: CallbackQuery, reply_markup: InlineKeyboardMarkup | None) -> bool:
    """The pressed message's buttons replaced (None: removed). False when the message
    cannot be edited: the caller then says in a fresh message what changed."""
    message = callback.message
    if not isinstance(message, Message):
        return False
    try:
        await message.edit_reply_markup(reply_markup=reply_markup)
    except TelegramBadRequest as err:
        if not_modified(err):
            return True
        if uneditable(err):
            return False
        raise
    return True


async def rewrite(bot: Bot, chat_id: int, message_id: int, text: str) -> bool:
    """A text message the bot sent earlier now reads `text` (HTML), without its buttons. True
    when it reads so now (or already did); False when it can no longer be edited (deleted, too
    old, not a text, the chat gone, the bot blocked): not worth a retry."""
    return await _edit_earlier(bot.edit_message_text(text, chat_id=chat_id, message_id=message_id, reply_markup=None),
                               unchanged=True)


async def unbutton(bot: Bot, chat_id: int, message_id: int) -> bool:
    """A message the bot sent earlier loses its buttons (a file's caption stays as it was). True
    only when they went now: False when they had gone already (an earlier delivery of the same
    close) or the message cannot be edited."""
    return await _edit_earlier(bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id, reply_markup=None),
                               unchanged=False)


async def _edit_earlier(edit: Awaitable[Any], *, unchanged: bool) -> bool:
    """One edit of an earlier message: True when made now, `unchanged` when Telegram finds nothing to
    change, False when the message is gone or can no longer be edited; any other refusal is raised."""
    try:
        await edit
    except TelegramBadRequest as err:
        if not_modified(err):
            return unchanged
        if any(reason in err.message.lower() for reason in GONE):
            return False
        raise
    except TelegramForbiddenError:
        return False
    return True
