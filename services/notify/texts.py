"""Message texts that fit by construction: a list is cut with "… (+N)", a
long text with "…", never past what a deliver command (and Telegram) takes.
Builders use these; nothing downstream has to refuse a text for its length."""

from __future__ import annotations

from collections.abc import Sequence

from shared.events import TEXT_MAX

ELLIPSIS = "…"


def fit(text: str, limit: int = TEXT_MAX) -> str:
    """The text, or its first `limit` characters ending in "…"."""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def bullets(items: Sequence[str], *, budget: int, empty: str = "", line_max: int = 300) -> str:
    """Items as "• item" lines within `budget` characters; those that do not fit are
    counted in a last "… (+N)" line (no words: it reads alike in every language). Each item is
    cut to `line_max`."""
    if not items:
        return empty
    lines: list[str] = []
    used = 0
    for i, item in enumerate(items):
        line = "• " + fit(" ".join(item.split()), line_max)
        rest = len(items) - i - 1
        tail = len(f"\n{more(rest)}") if rest else 0
        if used + len(line) + (1 if lines else 0) + tail > budget:
            lines.append(more(len(items) - i))
            break
        lines.append(line)
        used += len(line) + (1 if len(lines) > 1 else 0)
    return "\n".join(lines)


def more(n: int) -> str:
    return f"{ELLIPSIS} (+{n})"
