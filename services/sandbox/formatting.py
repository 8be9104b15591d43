"""Telegram's formatting, as the Bot API applies it: HTML parsed into plain text and entities,
lengths counted in UTF-16 code units on the parsed text (what "1-4096 characters after
entities parsing" means), and the errors Telegram answers when the markup is wrong.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from services.sandbox.state import ApiError

# tag -> entity type; "a", "span", "pre", "code", "blockquote" and "tg-emoji" are handled apart
SIMPLE_TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
               "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler"}
OTHER_TAGS = {"a", "span", "pre", "code", "blockquote", "tg-emoji"}
ENTITY = re.compile(r"&(?!(?:amp|lt|gt|quot|#\d+|#x[0-9a-fA-F]+);)")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _HtmlEntities(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.plain: list[str] = []
        self.length = 0  # UTF-16 code units so far
        self.open: list[tuple[str, int, dict[str, Any]]] = []  # tag, offset, entity fields
        self.entities: list[dict[str, Any]] = []

    def handle_data(self, data: str) -> None:
        self.plain.append(data)
        self.length += utf16_len(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in SIMPLE_TAGS:
            fields: dict[str, Any] = {"type": SIMPLE_TAGS[tag]}
        elif tag == "a":
            if not found.get("href"):
                raise ApiError(400, "Bad Request: can't parse entities: Tag \"a\" must have attribute \"href\"")
            fields = {"type": "text_link", "url": found["href"]}
        elif tag == "span":
            if found.get("class") != "tg-spoiler":
                raise ApiError(400, "Bad Request: can't parse entities: Tag \"span\" must have class \"tg-spoiler\"")
            fields = {"type": "spoiler"}
        elif tag == "code":
            fields = {"type": "code"}
            parent = self.open[-1] if self.open else None
            language = (found.get("class") or "").removeprefix("language-")
            if parent and parent[0] == "pre" and language:
                parent[2]["language"] = language
        elif tag == "pre":
            fields = {"type": "pre"}
        elif tag == "blockquote":
            fields = {"type": "expandable_blockquote" if "expandable" in found else "blockquote"}
        elif tag == "tg-emoji":
            if not found.get("emoji-id"):
                raise ApiError(400, "Bad Request: can't parse entities: Tag \"tg-emoji\" must have attribute "
                                    "\"emoji-id\"")
            fields = {"type": "custom_emoji", "custom_emoji_id": found["emoji-id"]}
        else:
            raise ApiError(400, f"Bad Request: can't parse entities: Unsupported start tag \"{tag}\"")
        self.open.append((tag, self.length, fields))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1][0] != tag:
            raise ApiError(400, f"Bad Request: can't parse entities: Unmatched end tag \"{tag}\"")
        _, offset, fields = self.open.pop()
        if self.length > offset:
            self.entities.append({**fields, "offset": offset, "length": self.length - offset})


def parse(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The text as Telegram stores it, and its entities (sorted by offset, as Telegram returns them)."""
    mode = (parse_mode or "").lower()
    if mode not in ("", "html", "markdown", "markdownv2"):
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    if mode != "html":  # the project writes HTML; Markdown is passed through as plain text
        return text, []
    if ENTITY.search(text):
        raise ApiError(400, "Bad Request: can't parse entities: Character '&' is reserved")
    parser = _HtmlEntities()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ApiError(400, f"Bad Request: can't parse entities: Can't find end tag corresponding to start tag "
                            f"\"{parser.open[-1][0]}\"")
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return "".join(parser.plain), entities


def parse_text(text: Any, parse_mode: str | None, *, limit: int = 4096,
               too_long: str = "message is too long", empty: str = "message text is empty",
               may_be_empty: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """Parse and check length the way Telegram does: after entities parsing, in UTF-16 code units."""
    if not isinstance(text, str):
        raise ApiError(400, f"Bad Request: {empty}")
    plain, entities = parse(text, parse_mode)
    if not plain.strip() and not may_be_empty:
        raise ApiError(400, f"Bad Request: {empty}")
    if utf16_len(plain) > limit:
        raise ApiError(400, f"Bad Request: {too_long}")
    return plain, entities
