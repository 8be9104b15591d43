"""The published Bot API (spec/api.json) applied to every call: a request's parameters are
checked against the method's fields before it is served, and an answer against the type the
method returns. Lengths and enumerations are read from the spec's own descriptions
("1-64 bytes", "can be either "private", ..."), so they move with the spec file.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from services.sandbox.formatting import utf16_len
from services.sandbox.state import ApiError

SPEC_FILE = Path(__file__).with_name("spec") / "api.json"
LENGTH = re.compile(r"(\d+)-(\d+) (characters|bytes)")
ENUM_START = re.compile(r"(?:can be(?: either)?|must be(?: one of)?|one of|always)\s+(?=\")", re.IGNORECASE)
ENUM_WORD = re.compile(r"\bmust be ([a-z_]+)$")
QUOTED = re.compile(r"\"([^\"\s]+)\"")

# Telegram's own words where a spec limit is broken (the generic wording otherwise)
LIMIT_ERRORS = {
    ("InlineKeyboardButton", "callback_data"): "BUTTON_DATA_INVALID",
    ("BotCommand", "command"): "BOT_COMMAND_INVALID",
    ("BotCommand", "description"): "BOT_COMMAND_DESCRIPTION_INVALID",
    ("answerCallbackQuery", "text"): "MESSAGE_TOO_LONG",
    ("setWebhook", "secret_token"): "secret token contains unallowed characters",
}
COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class SpecViolation(Exception):
    """A value that does not fit the spec: `where` is the path to it, for the message."""

    def __init__(self, where: str, problem: str, *, owner: str = "", field: str = "") -> None:
        super().__init__(f"{where}: {problem}")
        self.where, self.problem, self.owner, self.field = where, problem, owner, field


@functools.cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def method_names() -> dict[str, str]:
    """Lower-case method name -> the spec's spelling (Telegram matches methods case-insensitively)."""
    return {name.lower(): name for name in spec()["methods"]}


def version() -> str:
    return str(spec()["version"])


@functools.cache
def enum_values(description: str) -> frozenset[str] | None:
    """The values a String field may take, when its description lists them."""
    start = ENUM_START.search(description)
    if start is not None:
        sentence = re.split(r"\.\s", description[start.end():], maxsplit=1)[0]
        values = QUOTED.findall(sentence)
        return frozenset(values) if values else None
    word = ENUM_WORD.search(description)
    return frozenset({word.group(1)}) if word else None


@functools.cache
def length_limits(description: str) -> tuple[int, int, str] | None:
    """(min, max, "characters" | "bytes") unless counted after entities parsing (the handler does)."""
    if "after entities parsing" in description:
        return None
    found = LENGTH.search(description)
    return (int(found.group(1)), int(found.group(2)), found.group(3)) if found else None


def _check_string(value: str, field: dict[str, Any], where: str, owner: str) -> None:
    values = enum_values(field["description"])
    if values is not None and value not in values:
        raise SpecViolation(where, f"must be one of {sorted(values)}", owner=owner, field=field["name"])
    limits = length_limits(field["description"])
    if limits is not None:
        low, high, unit = limits
        size = len(value.encode()) if unit == "bytes" else utf16_len(value)
        if not low <= size <= high:
            raise SpecViolation(where, f"must be {low}-{high} {unit}", owner=owner, field=field["name"])


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _decode(value: Any, type_name: str, where: str, *, loose: bool) -> Any:
    """`value` as `type_name`, or SpecViolation. `loose`: a form field, where everything is a string
    (numbers and booleans spelt out, objects and arrays JSON-serialized), as Telegram accepts them."""
    if type_name.startswith("Array of "):
        items = _json(value) if loose else value
        if not isinstance(items, list):
            raise SpecViolation(where, f"must be of type {type_name}")
        inner = type_name.removeprefix("Array of ")
        return [_decode(item, inner, f"{where}[{i}]", loose=False) for i, item in enumerate(items)]
    if type_name == "Integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if loose and isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise SpecViolation(where, "must be of type Integer")
    if type_name == "Float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if loose and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise SpecViolation(where, "must be of type Float")
    if type_name == "Boolean":
        if isinstance(value, bool):
            return value
        if loose and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise SpecViolation(where, "must be of type Boolean")
    if type_name == "String":
        if isinstance(value, str):
            return value
        raise SpecViolation(where, "must be of type String")
    if type_name == "InputFile":
        if isinstance(value, dict) and "filename" in value:  # an uploaded part
            return value
        raise SpecViolation(where, "must be a file uploaded with multipart/form-data")
    return check_object(type_name, _json(value) if loose else value, where)


def _decode_any(value: Any, field: dict[str, Any], where: str, owner: str, *, loose: bool) -> Any:
    problems = []
    for type_name in field["types"]:
        try:
            decoded = _decode(value, type_name, where, loose=loose)
        except SpecViolation as exc:
            problems.append(exc)
            continue
        if isinstance(decoded, str):
            _check_string(decoded, field, where, owner)
        return decoded
    deepest = max(problems, key=lambda p: len(p.where))
    if deepest.where != where:
        raise deepest  # the type that fitted furthest: its reason is the useful one
    raise SpecViolation(where, f"must be of type {' or '.join(field['types'])}", owner=owner, field=field["name"])


def check_object(type_name: str, value: Any, where: str | None = None) -> dict[str, Any]:
    """`value` checked as an object of the spec's `type_name`: no unknown fields, the required ones
    present, each of its type (an abstract type: one of its subtypes)."""
    where = where or type_name
    kind = spec()["types"].get(type_name)
    if kind is None:
        raise SpecViolation(where, f"unknown type {type_name}")
    if kind.get("subtypes"):
        problems = []
        for subtype in kind["subtypes"]:
            try:
                return check_object(subtype, value, where)
            except SpecViolation as exc:
                problems.append(str(exc))
        raise SpecViolation(where, f"is none of {', '.join(kind['subtypes'])} ({'; '.join(problems)})")
    if not isinstance(value, dict):
        raise SpecViolation(where, f"must be an object ({type_name})")
    fields = {f["name"]: f for f in kind.get("fields") or []}
    for name in value:
        if name not in fields:
            raise SpecViolation(f"{where}.{name}", f"is not a field of {type_name}", owner=type_name, field=name)
    for name, field in fields.items():
        if field["required"] and name not in value:
            raise SpecViolation(f"{where}.{name}", "is required", owner=type_name, field=name)
    return {name: _decode_any(v, fields[name], f"{where}.{name}", type_name, loose=False)
            for name, v in value.items()}


def check_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a call to `method` (its spec name), decoded; ApiError 400 if Telegram would
    refuse them. Unknown parameters are refused too: Telegram ignores them silently, which hides a
    misspelt parameter, so the sandbox says so instead."""
    fields = {f["name"]: f for f in spec()["methods"][method].get("fields") or []}
    attached = {v.removeprefix("attach://") for v in params.values() if isinstance(v, str)
                and v.startswith("attach://")}
    decoded: dict[str, Any] = {}
    for name, value in params.items():
        if name in attached:
            continue  # an uploaded part another parameter points to
        field = fields.get(name)
        if field is None:
            raise ApiError(400, f"Bad Request: unknown parameter \"{name}\"")
        if isinstance(value, str) and value.startswith("attach://") and "InputFile" in field["types"]:
            part = params.get(value.removeprefix("attach://"))
            if not isinstance(part, dict):
                raise ApiError(400, f"Bad Request: file \"{value}\" is not found in the request")
            value = part
        try:
            decoded[name] = _decode_any(value, field, name, method, loose=True)
        except SpecViolation as exc:
            raise ApiError(400, "Bad Request: " + _wording(exc)) from exc
    for name, field in fields.items():
        if field["required"] and name not in decoded:
            raise ApiError(400, "Bad Request: " + MISSING.get(name, f"parameter \"{name}\" is required"))
    _method_rules(method, decoded)
    return decoded


# what Telegram says when a required parameter is missing
MISSING = {"chat_id": "chat_id is empty", "text": "message text is empty", "message_id": "message identifier is "
           "not specified", "document": "there is no document in the request", "callback_query_id": "query is too "
           "old and response timeout expired or query ID is invalid", "commands": "commands are empty"}


def _wording(exc: SpecViolation) -> str:
    known = LIMIT_ERRORS.get((exc.owner, exc.field))
    if known and exc.problem.startswith("must be"):
        return known
    if exc.owner in ("InlineKeyboardButton", "InlineKeyboardMarkup"):
        return f"can't parse inline keyboard button: field {exc.where} {exc.problem}"
    if exc.where.startswith("reply_markup"):
        return f"can't parse reply keyboard markup JSON object: field {exc.where} {exc.problem}"
    return f"field {exc.where} {exc.problem}"


def _method_rules(method: str, p: dict[str, Any]) -> None:
    """What the spec says in words rather than in types."""
    markup = p.get("reply_markup")
    if isinstance(markup, dict):
        for row in markup.get("inline_keyboard") or []:
            for button in row:
                if not any(k in button for k in ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
                                                  "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
                                                  "copy_text", "callback_game", "pay")):
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button: Text buttons are "
                                        "unallowed in the inline keyboard")
                if not button.get("text"):
                    raise ApiError(400, "Bad Request: can't parse inline keyboard button: Field \"text\" must be "
                                        "of type String")
    if method == "setMyCommands":
        commands = p.get("commands") or []
        if len(commands) > 100:
            raise ApiError(400, "Bad Request: too many commands")
        if any(not COMMAND.match(c["command"]) for c in commands):
            raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
    if method == "setWebhook":
        url = p.get("url", "")
        if url and not url.lower().startswith("https://"):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if "secret_token" in p and not SECRET_TOKEN.match(p["secret_token"]):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")


def check_result(method: str, result: Any) -> None:
    """An answer checked against what `method` returns; SpecViolation if the sandbox built it wrong."""
    returns = spec()["methods"][method]["returns"]
    problems = []
    for type_name in returns:
        if type_name == "Boolean" and result is True:
            return
        if type_name == "Boolean":
            problems.append(f"{method}: must be True")
            continue
        try:
            _decode(result, type_name, method, loose=False)
            return
        except SpecViolation as exc:
            problems.append(str(exc))
    raise SpecViolation(method, "; ".join(problems))
