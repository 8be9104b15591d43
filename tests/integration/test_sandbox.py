"""The Telegram sandbox, driven by aiogram's real client over HTTP."""

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InaccessibleMessage,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from services.sandbox.state import SANDBOX_TOKEN, Sandbox

TOKEN = SANDBOX_TOKEN


@pytest.fixture
async def bot(sandbox_url: str) -> AsyncIterator[Bot]:
    b = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(sandbox_url)))
    await started(sandbox_url, 1001, 1002)  # two users who pressed Start earlier
    yield b
    await b.session.close()


async def started(url: str, *user_ids: int) -> None:
    await control(url, "/sandbox/users", {"started": list(user_ids)})


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
    await started(sandbox_url, 2001, 2002, 3002)
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
    await started(sandbox_url, *range(5000, 5030), 6000)
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
    assert sent.text == "Diallo & <Co>"  # the Bot API answers with the parsed text, as Telegram does


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
    assert 'div.dir = "auto"' in text  # each message in its own direction: Arabic right to left
    assert '<input id="text" dir="auto"' in text and 'btn.dir = "auto"' in text  # what one writes, and buttons too


async def test_the_page_opens_the_user_in_its_address_and_loads_nothing_from_elsewhere(sandbox_url: str) -> None:
    """No browser here: what the served page says it does (a browser runs the same script)."""
    async with aiohttp.ClientSession() as http, http.get(sandbox_url + "/?user=4711&name=Awa&lang=ar") as resp:
        text = await resp.text()
        policy = resp.headers["Content-Security-Policy"]
    assert resp.status == 200 and resp.charset == "utf-8"
    assert 'new URLSearchParams(location.search)' in text  # ?user=<id>&name=…&lang=… opens that chat
    assert all(f'asked.get("{key}")' in text for key in ("user", "name", "lang", "username"))
    assert 'username: $("username").value' in text  # sent with each message: the roster checks it at registration
    assert "history.replaceState" in text  # a reload or a copied link keeps the user shown
    assert "atBottom(chat)" in text and "scrollDown()" in text  # new messages followed from the bottom only
    # self-contained: no address elsewhere, and the browser is told to load nothing from another site
    assert not re.search(r"(src|href)\s*=|https?://|//cdn|@import|url\(", text)
    assert "default-src 'self'" in policy and "http" not in policy


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


# --- as strict as Telegram ------------------------------------------------------------------------------

async def raw_call(url: str, method: str, params: dict[str, Any], *, token: str = TOKEN) -> tuple[int, str, Any]:
    """A Bot API call without aiogram's own checks: (status, content type, body)."""
    async with aiohttp.ClientSession() as http, http.post(f"{url}/bot{token}/{method}", json=params) as resp:
        text = await resp.text()
        return resp.status, resp.content_type, (await resp.json() if resp.content_type == "application/json" else text)


async def test_a_token_the_sandbox_does_not_know_is_unauthorized(sandbox_url: str) -> None:
    stranger = Bot("1000001:not-the-token-the-sandbox-answers", session=AiohttpSession(
        api=TelegramAPIServer.from_base(sandbox_url)))
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    finally:
        await stranger.session.close()
    status, _, body = await raw_call(sandbox_url, "getMe", {}, token="not-a-token")
    assert (status, body["description"]) == (404, "Not Found")


async def test_chats_that_never_started_the_bot_are_not_found(bot: Bot, sandbox_url: str) -> None:
    for attempt in (bot.send_message(7001, "hello"),
                    bot.send_document(7001, BufferedInputFile(b"x", filename="a.md")),
                    bot.edit_message_text("changed", chat_id=7001, message_id=1)):
        with pytest.raises(TelegramBadRequest) as err:
            await attempt
        assert err.value.message == "Bad Request: chat not found"
    await control(sandbox_url, "/sandbox/send", {"user_id": 7001, "text": "hi"})  # writing starts the chat
    await bot.send_message(7001, "hello")
    await control(sandbox_url, "/sandbox/faults", {"blocked_user_ids": [7002]})
    with pytest.raises(TelegramForbiddenError):  # a user who blocked the bot keeps Telegram's 403
        await bot.send_message(7002, "hello")
    await started(sandbox_url, 7003)  # as if they had pressed Start earlier
    await bot.send_message(7003, "hello")


async def test_editing_to_identical_content_is_refused_as_not_modified(bot: Bot) -> None:
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Acknowledge", callback_data="ack")]])
    sent = await bot.send_message(1001, "<b>Gap</b> in Mopti", parse_mode="HTML", reply_markup=markup)
    not_modified = ("Bad Request: message is not modified: specified new message content and reply markup are "
                    "exactly the same as a current content and reply markup of the message")
    with pytest.raises(TelegramBadRequest) as err:
        await bot.edit_message_text("<b>Gap</b> in Mopti", chat_id=1001, message_id=sent.message_id,
                                    parse_mode="HTML", reply_markup=markup)
    assert err.value.message == not_modified
    with pytest.raises(TelegramBadRequest) as err:
        await bot.edit_message_reply_markup(chat_id=1001, message_id=sent.message_id, reply_markup=markup)
    assert err.value.message == not_modified
    # the same words without the bold are other content; a new keyboard is a change
    await bot.edit_message_text("Gap in Mopti", chat_id=1001, message_id=sent.message_id, parse_mode="HTML",
                                reply_markup=markup)
    edited = await bot.edit_message_reply_markup(chat_id=1001, message_id=sent.message_id)
    assert edited.reply_markup is None and edited.edit_date


async def test_a_press_on_an_old_message_carries_an_inaccessible_message(bot: Bot, sandbox_url: str) -> None:
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="y")]])
    sent = await bot.send_message(1001, "Still in Mopti?", reply_markup=markup)
    await control(sandbox_url, "/sandbox/press", {"user_id": 1001, "message_id": sent.message_id, "data": "y",
                                                  "inaccessible": True})
    query = (await bot.get_updates(timeout=1))[-1].callback_query
    assert isinstance(query.message, InaccessibleMessage)
    assert (query.message.message_id, query.message.date, query.message.chat.id) == (sent.message_id, 0, 1001)
    assert query.data == "y"


async def test_messages_become_inaccessible_after_48_hours() -> None:
    now = [1_800_000_000.0]
    sandbox = Sandbox(bot_username="CMCoordHubBot", wall=lambda: now[0])
    sandbox.mark_started({1001})
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
    message = sandbox.bot_message(1001, text="Still in Mopti?", reply_markup=markup)
    now[0] += 48 * 3600 - 1
    fresh = await sandbox.user_presses(1001, message["message_id"], "y")
    assert fresh["callback_query"]["message"]["text"] == "Still in Mopti?"
    now[0] += 1
    old = await sandbox.user_presses(1001, message["message_id"], "y")
    assert old["callback_query"]["message"] == {"chat": message["chat"], "message_id": message["message_id"], "date": 0}


async def test_callback_queries_are_answered_once_with_at_most_200_characters(bot: Bot, sandbox_url: str) -> None:
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    with pytest.raises(TelegramBadRequest) as err:
        await bot.answer_callback_query("4242")
    assert err.value.message == too_old
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="y")]])
    sent = await bot.send_message(1001, "Still in Mopti?", reply_markup=markup)
    await control(sandbox_url, "/sandbox/press", {"user_id": 1001, "message_id": sent.message_id, "data": "y"})
    query = (await bot.get_updates(timeout=1))[-1].callback_query
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(query.id, text="x" * 201)
    assert await bot.answer_callback_query(query.id, text="x" * 200)
    with pytest.raises(TelegramBadRequest) as err:  # answered already
        await bot.answer_callback_query(query.id)
    assert err.value.message == too_old


async def test_edge_errors_are_html_and_flood_waits_last_as_long_as_told(bot: Bot, sandbox_url: str) -> None:
    await control(sandbox_url, "/sandbox/faults", {"error_body": "html", "error_status": 502, "fail_next": 2})
    status, content_type, body = await raw_call(sandbox_url, "sendMessage", {"chat_id": 1001, "text": "x"})
    assert (status, content_type) == (502, "text/html") and "<title>502 Bad Gateway</title>" in body
    with pytest.raises(ClientDecodeError):  # what aiogram makes of Telegram's nginx page
        await bot.send_message(1001, "x")
    await control(sandbox_url, "/sandbox/faults", {"retry_after": 30, "per_chat_per_sec": 1})
    await bot.send_message(1002, "first")
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(1002, "second")
    assert err.value.retry_after == 30
    await control(sandbox_url, "/sandbox/faults", {"error_status": 429, "fail_next": 1})
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(1001, "flood")
    assert err.value.retry_after == 30


async def test_lengths_count_the_parsed_text_in_utf16_code_units(bot: Bot, sandbox_url: str) -> None:
    await control(sandbox_url, "/sandbox/faults", {"per_chat_per_sec": 0})  # about lengths, not limits
    tags = "<b>" + "x" * 4000 + "</b>" + "y" * 96  # 4096 characters once the tags are parsed out
    sent = await bot.send_message(1001, tags, parse_mode="HTML")
    assert len(sent.text) == 4096 and sent.entities[0].type == "bold"
    await bot.send_message(1001, "😀" * 2048)  # two UTF-16 code units each
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(1001, "😀" * 2049)
    assert err.value.message == "Bad Request: message is too long"
    await bot.send_document(1001, BufferedInputFile(b"x", filename="a.md"), caption="<i>" + "c" * 1024 + "</i>",
                            parse_mode="HTML")
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_document(1001, BufferedInputFile(b"x", filename="a.md"), caption="c" * 1025)
    assert err.value.message == "Bad Request: message caption is too long"
    sent = await bot.send_message(1001, "😀 <b>bold</b> & <a href=\"https://example.org\">link</a>".replace("&", "&amp;"),
                                  parse_mode="HTML")
    assert sent.text == "😀 bold & link"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 3, 4), ("text_link", 10, 4)]
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(1001, "<a>no address</a>", parse_mode="HTML")


async def test_parameters_are_checked_against_the_published_api(bot: Bot, sandbox_url: str) -> None:
    async def refused(method: str, params: dict[str, Any]) -> str:
        status, _, body = await raw_call(sandbox_url, method, params)
        assert status == 400 and body["ok"] is False and body["error_code"] == 400, body
        return str(body["description"])

    assert await refused("sendMessage", {"chat_id": 1001, "text": "x", "colour": "red"}) == \
        'Bad Request: unknown parameter "colour"'
    assert await refused("sendMessage", {"text": "x"}) == "Bad Request: chat_id is empty"
    assert await refused("sendMessage", {"chat_id": 1001}) == "Bad Request: message text is empty"
    assert "must be of type Integer" in await refused("editMessageText", {"chat_id": 1001, "message_id": "first",
                                                                          "text": "x"})
    assert await refused("sendMessage", {"chat_id": 1001, "text": "x", "parse_mode": "XML"}) == \
        "Bad Request: unsupported parse_mode"

    def button(**fields: Any) -> dict[str, Any]:
        return {"inline_keyboard": [[{"text": "Go", **fields}]]}

    assert await refused("sendMessage", {"chat_id": 1001, "text": "x", "reply_markup": button()}) == \
        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
    assert await refused("sendMessage", {"chat_id": 1001, "text": "x", "reply_markup": button(callback_data="d" * 65)}) \
        == "Bad Request: BUTTON_DATA_INVALID"
    assert "must be one of" in await refused("sendMessage", {"chat_id": 1001, "text": "x",
                                                             "reply_markup": button(callback_data="d", style="purple")})
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Contacts", description="Who to call")])
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="c" * 33, description="Who to call")])
    with pytest.raises(TelegramBadRequest) as err:
        await bot.set_webhook("http://bot.example.org/telegram/webhook")
    assert err.value.message == "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
    with pytest.raises(TelegramBadRequest) as err:
        await bot.set_webhook("https://bot.example.org/telegram/webhook", secret_token="not:allowed")
    assert err.value.message == "Bad Request: secret token contains unallowed characters"
