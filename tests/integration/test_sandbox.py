"""The Telegram sandbox, driven by aiogram's real client over HTTP."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ"


@pytest.fixture
async def bot(sandbox_url: str) -> AsyncIterator[Bot]:
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox_url)))
    yield b
    await b.session.close()


async def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as http:
        if body is None:
            async with http.get(url + path) as resp:
                return await resp.json()
        async with http.post(url + path, json=body) as resp:
            return await resp.json()


async def test_get_me_and_updates_with_offset_semantics(bot: Bot, sandbox_url: str) -> None:
    me = await bot.get_me()
    assert me.username == "CMCoordHubBot" and me.is_bot
    await control(sandbox_url, "/sandbox/send", {"user_id": 1001, "text": "/start tok3n", "first_name": "Aminata",
                                                 "language_code": "fr"})
    await control(sandbox_url, "/sandbox/send", {"user_id": 1002, "text": "hello"})
    updates = await bot.get_updates(timeout=1)
    assert [u.message.text for u in updates] == ["/start tok3n", "hello"]
    first = updates[0].message
    assert first.from_user.id == first.chat.id == 1001 and first.from_user.language_code == "fr"
    assert first.entities[0].type == "bot_command"
    # not confirmed yet: delivered again; confirmed by the next offset: gone
    assert len(await bot.get_updates(timeout=0)) == 2
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == []


async def test_long_polling_returns_when_an_update_arrives(bot: Bot, sandbox_url: str) -> None:
    import asyncio

    polling = asyncio.create_task(bot.get_updates(timeout=20))
    await asyncio.sleep(0.2)  # let the long poll reach the server before the user writes
    await control(sandbox_url, "/sandbox/send", {"user_id": 1001, "text": "/help"})
    updates = await asyncio.wait_for(polling, timeout=10)
    assert [u.message.text for u in updates] == ["/help"]


async def test_buttons_press_answer_and_edit(bot: Bot, sandbox_url: str) -> None:
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Acknowledge", callback_data="ack:42")]])
    sent = await bot.send_message(1001, "<b>Gap alert</b>: Mopti", parse_mode="HTML", reply_markup=markup)
    shown = await control(sandbox_url, "/sandbox/chats/1001/messages")
    assert shown[-1]["text"] == "<b>Gap alert</b>: Mopti"
    assert shown[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ack:42"
    await control(sandbox_url, "/sandbox/press", {"user_id": 1001, "message_id": sent.message_id, "data": "ack:42"})
    update = (await bot.get_updates(timeout=1))[-1]
    assert update.callback_query.data == "ack:42" and update.callback_query.from_user.id == 1001
    assert update.callback_query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(update.callback_query.id, text="Thanks")
    await bot.edit_message_text("Acknowledged ✓", chat_id=1001, message_id=sent.message_id)
    shown = await control(sandbox_url, "/sandbox/chats/1001/messages")
    assert shown[-1]["text"] == "Acknowledged ✓" and shown[-1]["edited"] and shown[-1]["reply_markup"] is None
    refused = await control(sandbox_url, "/sandbox/press", {"user_id": 1001, "message_id": sent.message_id, "data": "ack:99"})
    assert refused["error_code"] == 400


async def test_limits_and_faults_answer_like_telegram(bot: Bot, sandbox_url: str) -> None:
    await bot.send_message(2001, "first")
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(2001, "second within the same second")
    assert err.value.retry_after >= 1
    await bot.send_message(2002, "another chat is fine")

    await control(sandbox_url, "/sandbox/faults", {"blocked_user_ids": [3001]})
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(3001, "you blocked me")
    await control(sandbox_url, "/sandbox/faults", {"blocked_user_ids": [], "error_rate": 1.0, "error_status": 502})
    with pytest.raises(TelegramServerError):
        await bot.send_message(3002, "flaky")
    await control(sandbox_url, "/sandbox/faults", {"error_rate": 0})
    stats = await control(sandbox_url, "/sandbox/stats")
    assert (stats["accepted"], stats["rate_limited"], stats["blocked"], stats["errors"]) == (2, 1, 1, 1)


async def test_global_limit_of_30_per_second(bot: Bot, sandbox_url: str) -> None:
    for chat in range(30):
        await bot.send_message(5000 + chat, "bulk")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(6000, "one too many")


async def test_bad_requests(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="reserved"):
        await bot.send_message(1001, "Diallo & <Co>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="Unsupported start tag"):
        await bot.send_message(1001, "<script>x</script>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="too long"):
        await bot.send_message(1001, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="not found"):
        await bot.edit_message_text("nope", chat_id=1001, message_id=999)
    sent = await bot.send_message(1001, "Diallo &amp; &lt;Co&gt;", parse_mode="HTML")
    assert sent.text == "Diallo &amp; &lt;Co&gt;"


async def test_documents_and_commands(bot: Bot, sandbox_url: str) -> None:
    await bot.send_document(1001, BufferedInputFile(b"# Digest\n", filename="digest-2026Q3.md"), caption="Quarterly digest")
    shown = await control(sandbox_url, "/sandbox/chats/1001/messages")
    assert shown[-1]["document"] == "digest-2026Q3.md" and shown[-1]["text"] == "Quarterly digest"
    await bot.set_my_commands([BotCommand(command="contacts", description="Who to call")])
    assert [c.command for c in await bot.get_my_commands()] == ["contacts"]
    assert await bot.delete_webhook(drop_pending_updates=False)


async def test_the_page_is_served(sandbox_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(sandbox_url + "/") as resp:
        text = await resp.text()
    assert resp.status == 200 and "/sandbox/send" in text
    assert "DOMParser" in text and "innerHTML" not in text  # formatting rendered without injecting markup


async def test_waiting_for_the_bots_next_message(bot: Bot, sandbox_url: str) -> None:
    import asyncio

    await control(sandbox_url, "/sandbox/faults", {"per_chat_per_sec": 0})  # about waiting, not limits
    first = await bot.send_message(1001, "one")
    waiting = asyncio.create_task(control(sandbox_url, f"/sandbox/chats/1001/wait?after={first.message_id}&timeout=10"))
    await asyncio.sleep(0.2)  # the waiter is parked before the bot writes
    await bot.send_message(1002, "another chat does not wake it")
    assert not waiting.done()
    second = await bot.send_message(1001, "two")
    found = await asyncio.wait_for(waiting, 5)
    assert [m["message_id"] for m in found] == [second.message_id] and found[0]["text"] == "two"
    assert await control(sandbox_url, f"/sandbox/chats/1001/wait?after={second.message_id}&timeout=0.2") == []
