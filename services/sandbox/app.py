"""A local server that speaks the Telegram Bot API (for what the bot uses) and a
control API that acts as the users. The bot reaches it through aiogram's own
TelegramAPIServer setting, so the production code path is the one exercised.
Every call is checked against the published Bot API (spec/api.json, see botapi.py)
and answered as Telegram does, errors included.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from services.sandbox import botapi
from services.sandbox.formatting import parse_text
from services.sandbox.mail import MailCatcher
from services.sandbox.state import ApiError, Sandbox, public

TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]{20,}$")
PAGE = Path(__file__).with_name("page.html")
PAGE_POLICY = ("default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; "
               "base-uri 'none'; form-action 'none'")
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are exactly "
                "the same as a current content and reply markup of the message")
# what Telegram's nginx edge answers for a 5xx, instead of the Bot API's JSON
EDGE_PAGE = ("<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n"
             "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")

Params = dict[str, Any]
Method = Callable[[Sandbox, Params], Awaitable[Any]]
log = structlog.get_logger("sandbox")


def _chat_id(params: Params) -> int:
    """The sandbox has private chats only: a @username is a chat it does not know."""
    if "chat_id" not in params:
        raise ApiError(400, "Bad Request: chat_id is empty")
    if not isinstance(params["chat_id"], int):
        raise ApiError(400, "Bad Request: chat not found")
    return params["chat_id"]


def _edited_message(sb: Sandbox, p: Params) -> dict[str, Any]:
    if "inline_message_id" in p:
        raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")  # no inline mode in the sandbox
    chat_id = _chat_id(p)
    if "message_id" not in p:
        raise ApiError(400, "Bad Request: message identifier is not specified")
    sb.check_chat(chat_id)
    return sb.find_bot_message(chat_id, p["message_id"])


def _same_markup(new: Any, old: Any) -> bool:
    def norm(markup: Any) -> Any:
        return None if not markup or markup == {"inline_keyboard": []} else markup
    return bool(norm(new) == norm(old))


async def get_me(sb: Sandbox, p: Params) -> Any:
    return sb.me()


async def get_updates(sb: Sandbox, p: Params) -> Any:
    offset = int(p["offset"]) if p.get("offset") not in (None, "") else None
    return await sb.get_updates(offset=offset, limit=int(p.get("limit") or 100), timeout=float(p.get("timeout") or 0))


async def send_message(sb: Sandbox, p: Params) -> Any:
    chat_id = _chat_id(p)
    parsed = parse_text(p["text"], p.get("parse_mode"))
    sb.admit_send(chat_id)
    return sb.bot_message(chat_id, text=p["text"], parsed=parsed, reply_markup=p.get("reply_markup"),
                          parse_mode=p.get("parse_mode") or None)


async def edit_message_text(sb: Sandbox, p: Params) -> Any:
    parsed = parse_text(p["text"], p.get("parse_mode"))
    message = _edited_message(sb, p)
    if "text" not in message:
        raise ApiError(400, "Bad Request: there is no text in the message to edit")
    markup = p.get("reply_markup")
    if parsed == message.get("parsed") and _same_markup(markup, message.get("reply_markup")):
        raise ApiError(400, NOT_MODIFIED)
    sb.admit_send(message["chat"]["id"], rate_limited=False)
    message.update(text=p["text"], parsed=parsed, reply_markup=markup, parse_mode=p.get("parse_mode") or None,
                   edited=True, edit_date=int(sb.wall()))
    return public(message)


async def edit_message_reply_markup(sb: Sandbox, p: Params) -> Any:
    message = _edited_message(sb, p)
    markup = p.get("reply_markup")
    if _same_markup(markup, message.get("reply_markup")):
        raise ApiError(400, NOT_MODIFIED)
    sb.admit_send(message["chat"]["id"], rate_limited=False)
    message.update(reply_markup=markup, edited=True, edit_date=int(sb.wall()))
    return public(message)


async def answer_callback_query(sb: Sandbox, p: Params) -> Any:
    sb.answer_query(p["callback_query_id"])
    sb.callback_answers.append({"id": p["callback_query_id"], "text": p.get("text"), "show_alert": p.get("show_alert")})
    return True


async def send_document(sb: Sandbox, p: Params) -> Any:
    chat_id = _chat_id(p)
    document = p["document"]  # an uploaded part, or a file_id or URL
    name = document["filename"] if isinstance(document, dict) else str(document).rsplit("/", 1)[-1]
    caption = p.get("caption") or None
    parsed = parse_text(caption, p.get("parse_mode"), limit=1024, too_long="message caption is too long",
                        may_be_empty=True) if caption else None
    sb.admit_send(chat_id)
    return sb.bot_message(chat_id, document={"file_name": name, "file_id": f"doc-{name}", "file_unique_id": name},
                          caption=caption, parsed=parsed, parse_mode=p.get("parse_mode") or None,
                          reply_markup=p.get("reply_markup"))


async def set_my_commands(sb: Sandbox, p: Params) -> Any:
    sb.commands[p.get("language_code") or ""] = p["commands"]
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
        try:
            body = await request.json()
        except ValueError as exc:
            raise ApiError(400, "Bad Request: can't parse JSON encoded request body") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Bad Request: JSON object expected as request body")
        params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = {"filename": value.filename, "size": len(value.file.read())}
        else:
            params[key] = value
    return params


def build_app(sandbox: Sandbox, *, mail: MailCatcher | None = None) -> web.Application:
    async def bot_api(request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        try:
            if not TOKEN_SHAPE.match(token):
                raise ApiError(404, "Not Found")
            if token != sandbox.token:
                raise ApiError(401, "Unauthorized")
            handler, name = METHODS.get(method.lower()), botapi.method_names().get(method.lower())
            if handler is None or name is None:
                raise ApiError(404, "Not Found: method not found")
            params = botapi.check_request(name, await _params(request))
            result = await handler(sandbox, params)
        except ApiError as err:
            if err.html:
                status = f"{err.code} {err.description}"
                return web.Response(text=EDGE_PAGE.format(status=status), status=err.code, content_type="text/html")
            return web.json_response(err.body(), status=err.code)
        try:
            botapi.check_result(name, result)
        except botapi.SpecViolation as exc:  # the sandbox's own mistake: loud, never a silent misfit
            log.error("sandbox_answer_outside_spec", method=name, problem=str(exc))
            return web.json_response({"ok": False, "error_code": 500, "description": f"Internal Server Error: the "
                                      f"sandbox's answer does not fit Bot API {botapi.version()}: {exc}"}, status=500)
        return web.json_response({"ok": True, "result": result})

    async def send(request: web.Request) -> web.Response:
        body = await request.json()
        location = body.get("location")  # {"latitude": …, "longitude": …}, as Telegram's Location
        try:
            update = await sandbox.user_sends(
                int(body["user_id"]), str(body.get("text", "")), first_name=body.get("first_name"),
                language_code=body.get("language_code"), document=body.get("document"), username=body.get("username"),
                location=(float(location["latitude"]), float(location["longitude"])) if location else None)
        except ApiError as err:
            return web.json_response(err.body(), status=err.code)
        return web.json_response({"update_id": update["update_id"], "message_id": update["message"]["message_id"]})

    async def press(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            update = await sandbox.user_presses(int(body["user_id"]), int(body["message_id"]), str(body["data"]),
                                                tampered=bool(body.get("tampered")),
                                                inaccessible=bool(body.get("inaccessible")))
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
             "document": (m.get("document") or {}).get("file_name"), "location": m.get("location")}
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
        if "error_body" in body:
            if body["error_body"] not in ("json", "html"):
                return web.json_response({"error": "error_body is json or html"}, status=400)
            f.error_body = body["error_body"]
        if "retry_after" in body:
            f.retry_after = int(body["retry_after"])
        if "inaccessible_after_seconds" in body:
            f.inaccessible_after_seconds = float(body["inaccessible_after_seconds"])
        return web.json_response({"global_per_sec": f.global_per_sec, "per_chat_per_sec": f.per_chat_per_sec,
                                  "error_rate": f.error_rate, "error_status": f.error_status, "fail_next": f.fail_next,
                                  "blocked_user_ids": sorted(f.blocked_user_ids), "error_body": f.error_body,
                                  "retry_after": f.retry_after,
                                  "inaccessible_after_seconds": f.inaccessible_after_seconds})

    async def users(request: web.Request) -> web.Response:
        """Users who pressed Start earlier: the bot may write to them (test setup)."""
        body = await request.json()
        sandbox.mark_started({int(u) for u in body.get("started", [])})
        return web.json_response({"started": len(sandbox.started)})

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
        # everything the page needs is in it, and the browser is told to load nothing from elsewhere (no CDN):
        # the page works offline, and a script or font added from another site fails at once, on any machine
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html",
                            headers={"Content-Security-Policy": PAGE_POLICY})

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
    app.router.add_post("/sandbox/users", users)
    app.router.add_get("/sandbox/stats", stats)
    app.router.add_get("/sandbox/counts", counts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/", page)
    if mail is not None:
        mail.routes(app)
    return app
