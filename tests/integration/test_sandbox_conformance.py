"""The sandbox against the published Bot API (services/sandbox/spec/api.json): every method the bot
uses is driven through it with aiogram's real client, and each request on the wire and each answer
is checked against the spec file here, on its own terms (not with the sandbox's own checker)."""

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)
from aiohttp import web

from services.sandbox.app import METHODS, build_app
from services.sandbox.state import SANDBOX_TOKEN, Faults, Sandbox
from shared.natsserver import free_port
from tests.helpers import REPO

SPEC = json.loads((REPO / "services/sandbox/spec/api.json").read_text(encoding="utf-8"))
# an aiogram shortcut on a received object -> the Bot API method it calls
SHORTCUTS = {"answer": "sendMessage", "reply": "sendMessage", "answer_document": "sendDocument",
             "edit_text": "editMessageText", "edit_reply_markup": "editMessageReplyMarkup", "delete": "deleteMessage"}
Call = tuple[str, dict[str, Any], int, Any]


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w.capitalize() for w in rest)


def methods_the_bot_uses() -> set[str]:
    """Read from the bot's code: `bot.<method>(...)`, and aiogram's shortcuts on a message or callback."""
    found = {"getMe", "getUpdates"}  # aiogram's own start-up and the polling loop
    for path in (REPO / "services/bot").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"\bbot\.([a-z][a-z_]*)\(", text):
            found.add("getMe" if name == "me" else camel(name))
        for receiver, name in re.findall(r"\b(\w*(?:message|callback|query)\w*)\.([a-z_]+)\(", text):
            if receiver.startswith("callback") and name == "answer":
                found.add("answerCallbackQuery")
            elif name in SHORTCUTS:
                found.add(SHORTCUTS[name])
    return found


# --- the spec, read independently ----------------------------------------------------------------------

def fits(value: Any, type_name: str, where: str, *, form: bool = False) -> list[str]:
    """What is wrong with `value` as `type_name` ([] when it fits). `form`: a form field, a string."""
    if type_name.startswith("Array of "):
        value = json.loads(value) if form and isinstance(value, str) else value
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        return [p for i, item in enumerate(value) for p in fits(item, type_name[9:], f"{where}[{i}]")]
    if form and isinstance(value, str) and type_name in SPEC["types"]:
        value = json.loads(value)
    checks: dict[str, Callable[[Any], bool]] = {
        "Integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
        or (form and isinstance(v, str) and re.fullmatch(r"-?\d+", v) is not None),
        "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "Boolean": lambda v: isinstance(v, bool) or (form and v in ("true", "false")),
        "String": lambda v: isinstance(v, str),
        "InputFile": lambda v: isinstance(v, dict) and "upload" in v,
    }
    if type_name in checks:
        return [] if checks[type_name](value) else [f"{where}: not {type_name} ({value!r:.60})"]
    kind = SPEC["types"][type_name]
    if kind.get("subtypes"):
        if any(not fits(value, sub, where) for sub in kind["subtypes"]):
            return []
        return [f"{where}: none of {kind['subtypes']}"]
    if not isinstance(value, dict):
        return [f"{where}: not an object ({type_name})"]
    fields = {f["name"]: f for f in kind.get("fields") or []}
    problems = [f"{where}.{k}: not a field of {type_name}" for k in value if k not in fields]
    problems += [f"{where}.{k}: missing" for k, f in fields.items() if f["required"] and k not in value]
    for k, v in value.items():
        if k in fields and all(fits(v, t, f"{where}.{k}") for t in fields[k]["types"]):
            problems.append(f"{where}.{k}: not {' or '.join(fields[k]['types'])} ({v!r:.60})")
    return problems


def request_problems(method: str, params: dict[str, Any]) -> list[str]:
    fields = {f["name"]: f for f in SPEC["methods"][method].get("fields") or []}
    attached = {v[len("attach://"):] for v in params.values() if isinstance(v, str) and v.startswith("attach://")}
    problems = [f"{method}({k}): not a parameter" for k in params if k not in fields and k not in attached]
    problems += [f"{method}({k}): missing" for k, f in fields.items() if f["required"] and k not in params]
    for k, v in params.items():
        if k in fields:
            value = params[v[len("attach://"):]] if isinstance(v, str) and v.startswith("attach://") else v
            if all(fits(value, t, f"{method}({k})", form=True) for t in fields[k]["types"]):
                problems.append(f"{method}({k}): not {' or '.join(fields[k]['types'])} ({v!r:.60})")
    return problems


def answer_problems(method: str, body: Any) -> list[str]:
    if not isinstance(body, dict) or body.get("ok") is not True or set(body) != {"ok", "result"}:
        return [f"{method}: not a successful answer: {body!r:.200}"]
    returns = SPEC["methods"][method]["returns"]
    for type_name in returns:
        if type_name == "Boolean" and body["result"] is True or type_name != "Boolean" and not fits(
                body["result"], type_name, method):
            return []
    return [p for t in returns if t != "Boolean" for p in fits(body["result"], t, method)] or [f"{method}: {body}"]


# --- the sandbox, recording what crosses the wire -----------------------------------------------------------

@pytest.fixture
async def recorded() -> AsyncIterator[tuple[str, list[Call]]]:
    calls: list[Call] = []

    @web.middleware
    async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        if not request.path.startswith("/bot"):
            return await handler(request)
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.body_exists:
            for key, value in (await request.post()).items():
                params[key] = {"upload": value.filename} if isinstance(value, web.FileField) else value
        response = await handler(request)
        assert isinstance(response, web.Response) and response.body is not None
        calls.append((request.match_info["method"], params, response.status, json.loads(bytes(response.body))))
        return response

    app = build_app(Sandbox(bot_username="CMCoordHubBot", faults=Faults(per_chat_per_sec=0)))
    app.middlewares.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", calls
    await runner.cleanup()


async def control(url: str, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http, http.post(url + path, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def test_the_sandbox_serves_exactly_the_methods_of_its_spec_file() -> None:
    assert SPEC["version"].startswith("Bot API ")
    assert {m.lower() for m in SPEC["methods"]} == set(METHODS)
    assert methods_the_bot_uses() <= set(SPEC["methods"]), methods_the_bot_uses() - set(SPEC["methods"])


async def test_every_method_the_bot_uses_conforms_to_the_spec(recorded: tuple[str, list[Call]]) -> None:
    url, calls = recorded
    bot = Bot(SANDBOX_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)),
              default=DefaultBotProperties(parse_mode=ParseMode.HTML))  # as services/bot/bootstrap.py builds it
    try:
        await bot.get_me()
        await control(url, "/sandbox/send", {"user_id": 1001, "text": "/start", "first_name": "Aminata",
                                             "language_code": "fr"})
        await bot.get_updates(timeout=0)
        markup = InlineKeyboardMarkup(inline_keyboard=[
            [InlineKeyboardButton(text="Acknowledge", callback_data="ack:42")],
            [InlineKeyboardButton(text="Guidelines", url="https://www.unocha.org/")]])
        sent = await bot.send_message(1001, "<b>Gap alert</b>: Mopti &amp; Gao 😀", reply_markup=markup)
        await bot.send_chat_action(1001, "typing")
        await bot.edit_message_text("<i>Gap alert</i>: Mopti", chat_id=1001, message_id=sent.message_id,
                                    reply_markup=markup)
        await control(url, "/sandbox/press", {"user_id": 1001, "message_id": sent.message_id, "data": "ack:42"})
        await control(url, "/sandbox/press", {"user_id": 1001, "message_id": sent.message_id, "data": "ack:42",
                                              "inaccessible": True})
        updates = await bot.get_updates(timeout=0)
        await bot.answer_callback_query(updates[-2].callback_query.id, text="Thank you: recorded.")
        await bot.answer_callback_query(updates[-1].callback_query.id)
        await bot.edit_message_reply_markup(chat_id=1001, message_id=sent.message_id, reply_markup=None)
        await bot.send_document(1001, BufferedInputFile(b"# Digest\n", filename="digest.md"),
                                caption="<b>Quarterly</b> digest")
        await bot.delete_message(1001, sent.message_id)
        await bot.set_my_commands([BotCommand(command="contacts", description="Who to call")])
        await bot.set_my_commands([BotCommand(command="contacts", description="Qui appeler")], language_code="fr",
                                  scope=BotCommandScopeAllPrivateChats())
        await bot.get_my_commands(language_code="fr")
        await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)  # all confirmed before the webhook
        await bot.set_webhook("https://127.0.0.1:9/telegram/webhook", secret_token="s3cret-for-the-test",
                              drop_pending_updates=True)
        await bot.get_webhook_info()
        await bot.delete_webhook(drop_pending_updates=False)
        await bot.close()
        await bot.log_out()
    finally:
        await bot.session.close()

    served = {SPEC_NAME[m.lower()] for m, _, status, _ in calls if status == 200}
    assert served == set(SPEC["methods"]), set(SPEC["methods"]) - served  # the whole spec file walked
    assert methods_the_bot_uses() <= served
    problems = [p for method, params, status, body in calls for p in
                request_problems(SPEC_NAME[method.lower()], params) + answer_problems(SPEC_NAME[method.lower()], body)]
    assert problems == []
    assert all(status == 200 for _, _, status, _ in calls), [c for c in calls if c[2] != 200]


SPEC_NAME = {m.lower(): m for m in SPEC["methods"]}
