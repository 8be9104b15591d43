"""A local server that speaks the Telegram Bot API (for what the bot uses) and a
control API that acts as the users. The bot reaches it through aiogram's own
TelegramAPIServer setting, so the production code path is the one exercised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from aiohttp import web

from services.sandbox.state import ApiError, Sandbox

TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
MAX_TEXT = 4096
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "tg-spoiler",
             "blockquote", "tg-emoji"}
ENTITY = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)")
PAGE = Path(__file__).with_name("page.html")

Params = dict[str, Any]
Method = Callable[[Sandbox, Params], Awaitable[Any]]


class _HtmlCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            raise ApiError(400, f"Bad Request: can't parse entities: Unsupported start tag \"{tag}\"")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            raise ApiError(400, f"Bad Request: can't parse entities: Unmatched end tag \"{tag}\"")


def check_text(text: Any, parse_mode: str | None, *, what: str = "message text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, f"Bad Request: {what} is empty")
    if len(text) > MAX_TEXT:
        raise ApiError(400, "Bad Request: message is too long")
    if parse_mode and parse_mode.upper() == "HTML":
        if ENTITY.search(text):
            raise ApiError(400, "Bad Request: can't parse entities: Character '&' is reserved")
        checker = _HtmlCheck()
        checker.feed(text)
        checker.close()
        if checker.stack:
            raise ApiError(400, f"Bad Request: can't parse entities: Can't find end tag \"{checker.stack[-1]}\"")
    return text


def _json_field(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ApiError(400, "Bad Request: can't parse JSON field") from exc
    return value


def _chat_id(params: Params) -> int:
    try:
        return int(params["chat_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, "Bad Request: chat not found") from exc


def _markup(params: Params) -> dict[str, Any] | None:
    markup = params.get("reply_markup")
    if markup in (None, ""):
        return None
    value = _json_field(markup)
    if not isinstance(value, dict):
        raise ApiError(400, "Bad Request: reply markup must be an object")
    for row in value.get("inline_keyboard", []):
        for button in row:
            if len(str(button.get("callback_data", "")).encode()) > 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return value


async def get_me(sb: Sandbox, p: Params) -> Any:
    return sb.me()


async def get_updates(sb: Sandbox, p: Params) -> Any:
    offset = int(p["offset"]) if p.get("offset") not in (None, "") else None
    return await sb.get_updates(offset=offset, limit=int(p.get("limit") or 100), timeout=float(p.get("timeout") or 0))


async def send_message(sb: Sandbox, p: Params) -> Any:
    chat_id = _chat_id(p)
    text = check_text(p.get("text"), p.get("parse_mode"))
    markup = _markup(p)
    sb.admit_send(chat_id)
    return sb.bot_message(chat_id, text=text, reply_markup=markup, parse_mode=p.get("parse_mode") or None)


async def edit_message_text(sb: Sandbox, p: Params) -> Any:
    chat_id = _chat_id(p)
    text = check_text(p.get("text"), p.get("parse_mode"))
    message = sb.find_bot_message(chat_id, int(p.get("message_id") or 0))
    markup = _markup(p)
    sb.admit_send(chat_id, rate_limited=False)
    message["text"] = text
    message["reply_markup"] = markup
    message["parse_mode"] = p.get("parse_mode") or None
    message["edited"] = True
    return {k: v for k, v in message.items() if k != "outgoing" and v is not None}


async def edit_message_reply_markup(sb: Sandbox, p: Params) -> Any:
    chat_id = _chat_id(p)
    message = sb.find_bot_message(chat_id, int(p.get("message_id") or 0))
    sb.admit_send(chat_id, rate_limited=False)
    message["reply_markup"] = _markup(p)
    return {k: v for k, v in message.items() if k != "outgoing" and v is not None}


async def answer_callback_query(sb: Sandbox, p: Params) -> Any:
    if not p.get("callback_query_id"):
        raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
    sb.callback_answers.append({"id": p["callback_query_id"], "text": p.get("text"), "show_alert": p.get("show_alert")})
    return True


async def send_document(sb: Sandbox, p: Params) -> Any:
    chat_id = _chat_id(p)
    document = p.get("document")
    if isinstance(document, str) and document.startswith("attach://"):
        document = p.get(document.removeprefix("attach://"))  # the uploaded part it points to
    if not document:
        raise ApiError(400, "Bad Request: there is no document in the request")
    name = document if isinstance(document, str) else document["filename"]
    caption = check_text(p["caption"], p.get("parse_mode"), what="caption") if p.get("caption") else None
    sb.admit_send(chat_id)
    return sb.bot_message(chat_id, document={"file_name": name, "file_id": f"doc-{name}", "file_unique_id": name},
                          caption=caption, reply_markup=_markup(p))


async def set_my_commands(sb: Sandbox, p: Params) -> Any:
    commands = _json_field(p.get("commands") or "[]")
    if not isinstance(commands, list) or len(commands) > 100:
        raise ApiError(400, "Bad Request: invalid commands")
    sb.commands[p.get("language_code") or ""] = commands
    return True


async def get_my_commands(sb: Sandbox, p: Params) -> Any:
    """Commands for a language fall back to the default list, as in Telegram."""
    return sb.commands.get(p.get("language_code") or "") or sb.commands.get("", [])


async def always_true(sb: Sandbox, p: Params) -> Any:
    return True


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


async def set_webhook(sb: Sandbox, p: Params) -> Any:
    """An empty URL removes the webhook, as in Telegram; otherwise HTTPS only."""
    url = str(p.get("url") or "")
    if not url:
        await sb.delete_webhook(drop_pending=_flag(p.get("drop_pending_updates")))
        return True
    await sb.set_webhook(url, secret=p.get("secret_token") or None, max_connections=int(p.get("max_connections") or 40),
                         drop_pending=_flag(p.get("drop_pending_updates")))
    return True


async def delete_webhook(sb: Sandbox, p: Params) -> Any:
    await sb.delete_webhook(drop_pending=_flag(p.get("drop_pending_updates")))
    return True


async def get_webhook_info(sb: Sandbox, p: Params) -> Any:
    info: dict[str, Any] = {"url": sb.webhook.url if sb.webhook else "", "has_custom_certificate": False,
                            "pending_update_count": len(sb.updates)}
    if sb.webhook is not None:
        info["max_connections"] = sb.webhook.max_connections
        if sb.webhook.stats.last_error:
            info["last_error_message"] = sb.webhook.stats.last_error
    return info


METHODS: dict[str, Method] = {
    "getme": get_me,
    "getupdates": get_updates,
    "sendmessage": send_message,
    "editmessagetext": edit_message_text,
    "editmessagereplymarkup": edit_message_reply_markup,
    "answercallbackquery": answer_callback_query,
    "senddocument": send_document,
    "setmycommands": set_my_commands,
    "getmycommands": get_my_commands,
    "deletewebhook": delete_webhook,
    "setwebhook": set_webhook,
    "getwebhookinfo": get_webhook_info,
    "sendchataction": always_true,
    "deletemessage": always_true,
    "close": always_true,
    "logout": always_true,
}


async def _params(request: web.Request) -> Params:
    params: Params = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = {"filename": value.filename, "size": len(value.file.read())}
        else:
            params[key] = value
    return params


def build_app(sandbox: Sandbox) -> web.Application:
    async def bot_api(request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        try:
            if not TOKEN.match(token):
                raise ApiError(401, "Unauthorized")
            handler = METHODS.get(method.lower())
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = await handler(sandbox, await _params(request))
        except ApiError as err:
            return web.json_response(err.body(), status=err.code)
        return web.json_response({"ok": True, "result": result})

    async def send(request: web.Request) -> web.Response:
        body = await request.json()
        update = await sandbox.user_sends(int(body["user_id"]), str(body.get("text", "")),
                                          first_name=body.get("first_name"), language_code=body.get("language_code"),
                                          document=body.get("document"))
        return web.json_response({"update_id": update["update_id"], "message_id": update["message"]["message_id"]})

    async def press(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            update = await sandbox.user_presses(int(body["user_id"]), int(body["message_id"]), str(body["data"]),
                                                tampered=bool(body.get("tampered")))
        except ApiError as err:
            return web.json_response(err.body(), status=err.code)
        return web.json_response({"update_id": update["update_id"]})

    async def messages(request: web.Request) -> web.Response:
        chat = sandbox.chat(int(request.match_info["chat_id"]))
        out = []
        for m in chat.messages:
            if not m["outgoing"]:
                continue
            out.append({
                "message_id": m["message_id"],
                "text": m.get("text") or m.get("caption"),
                "reply_markup": m.get("reply_markup"),
                "document": (m.get("document") or {}).get("file_name"),
                "edited": bool(m.get("edited")),
            })
        return web.json_response(out)

    async def wait(request: web.Request) -> web.Response:
        found = await sandbox.wait_for_bot(int(request.match_info["chat_id"]), after=int(request.query.get("after", 0)),
                                           timeout=min(float(request.query.get("timeout", 10)), 60))
        return web.json_response([{"message_id": m["message_id"], "text": m.get("text") or m.get("caption")}
                                  for m in found])

    async def transcript(request: web.Request) -> web.Response:
        chat = sandbox.chat(int(request.match_info["chat_id"]))
        return web.json_response([
            {"message_id": m["message_id"], "from_bot": m["outgoing"], "text": m.get("text") or m.get("caption"),
             "parse_mode": m.get("parse_mode"), "reply_markup": m.get("reply_markup"),
             "document": (m.get("document") or {}).get("file_name")}
            for m in chat.messages
        ])

    async def faults(request: web.Request) -> web.Response:
        body = await request.json()
        f = sandbox.faults
        if "global_per_sec" in body:
            f.global_per_sec = float(body["global_per_sec"])
        if "per_chat_per_sec" in body:
            f.per_chat_per_sec = float(body["per_chat_per_sec"])
        if "error_rate" in body:
            f.error_rate = float(body["error_rate"])
        if "error_status" in body:
            f.error_status = int(body["error_status"])
        if "fail_next" in body:
            f.fail_next = int(body["fail_next"])
        if "blocked_user_ids" in body:
            f.blocked_user_ids = {int(u) for u in body["blocked_user_ids"]}
        return web.json_response({"global_per_sec": f.global_per_sec, "per_chat_per_sec": f.per_chat_per_sec,
                                  "error_rate": f.error_rate, "error_status": f.error_status, "fail_next": f.fail_next,
                                  "blocked_user_ids": sorted(f.blocked_user_ids)})

    async def counts(request: web.Request) -> web.Response:
        """The bot's messages per chat (`?contains=`: with that text only), and when the first and
        last of them were accepted (monotonic seconds): what a fan-out test or benchmark needs in one call."""
        contains = request.query.get("contains", "")
        per_chat: dict[str, int] = {}
        times: list[float] = []
        for chat_id, chat in sandbox.chats.items():
            for m in chat.messages:
                if m["outgoing"] and contains in (m.get("text") or m.get("caption") or ""):
                    per_chat[str(chat_id)] = per_chat.get(str(chat_id), 0) + 1
                    times.append(m["accepted_at"])
        return web.json_response({"per_chat": per_chat, "first_at": min(times, default=None),
                                  "last_at": max(times, default=None)})

    async def stats(request: web.Request) -> web.Response:
        s = sandbox.stats
        return web.json_response({"accepted": s.accepted, "rate_limited": s.rate_limited,
                                  "rate_limited_in_chat": s.rate_limited_in_chat, "errors": s.errors,
                                  "blocked": s.blocked, "pending_updates": len(sandbox.updates)})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"service": "sandbox", "status": "ok", "ready": True})

    app = web.Application(client_max_size=60 * 1024 * 1024)
    app.router.add_route("*", "/bot{token}/{method}", bot_api)
    app.router.add_post("/sandbox/send", send)
    app.router.add_post("/sandbox/press", press)
    app.router.add_get("/sandbox/chats/{chat_id}/messages", messages)
    app.router.add_get("/sandbox/chats/{chat_id}/transcript", transcript)
    app.router.add_get("/sandbox/chats/{chat_id}/wait", wait)
    app.router.add_post("/sandbox/faults", faults)
    app.router.add_get("/sandbox/stats", stats)
    app.router.add_get("/sandbox/counts", counts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/", page)
    return app
