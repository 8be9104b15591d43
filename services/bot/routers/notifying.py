"""What /movement and /site share: reading a typed position or time, and the texts about a
humanitarian notification (receipt, never approval) in the reader's language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import escape

from aiogram.utils.i18n import gettext as _

from shared.contracts.hns4d import Submitted

PROBLEMS_SHOWN = 10  # problems listed at most (a route of 50 points each outside the country)
MAX_TEXT = 200
TYPED_POINT = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*[,; ]\s*(-?\d{1,3}(?:\.\d+)?)\s*$")
TIME_FORMS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


def shown_point(lat: float, lon: float) -> str:
    return f"{lat:.5f}, {lon:.5f}"


def shown_time(iso: str) -> str:
    """A time kept in the conversation (ISO 8601, UTC) as the summary shows it: 2026-12-02 06:00."""
    return iso[:16].replace("T", " ")


def typed_point(text: str) -> tuple[float, float] | None:
    """"latitude, longitude" as typed, or None (whether it is a position on Earth: `position_problem`)."""
    found = TYPED_POINT.match(text)
    return (float(found.group(1)), float(found.group(2))) if found else None


def position_problem(lat: float, lon: float) -> str | None:
    """Why (`lat`, `lon`) is no position on Earth, in the reader's language; None when it is one."""
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return None
    return _("That is not a position: latitude goes from -90 to 90, longitude from -180 to 180, latitude first.")


def typed_time(text: str) -> datetime | None:
    """A day and time typed in UTC ("2026-12-02 06:00"), or None."""
    for form in TIME_FORMS:
        try:
            return datetime.strptime(text.strip(), form).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def point_help() -> str:
    return _("I did not understand that point. Share it as a location (📎, then Location), or type \"latitude, "
             "longitude\", for example: 14.4843, -4.1827")


def time_help() -> str:
    return _("I did not understand that time. Write the day and time in UTC, for example: 2026-12-02 06:00")


def unreachable() -> str:
    return _("I could not reach the humanitarian notification service. Your answers are kept: press Submit again "
             "in a moment.")


def receipt_only() -> str:
    """Under a summary: who sends it, and what an acknowledgement is (receipt, never approval)."""
    return _("The CMCoord officer sends it to every party to the conflict in the country and asks each to "
             "acknowledge receipt. An acknowledgement is receipt only: it is not an approval and guarantees nothing.")


def problems_list(answer: Submitted) -> str:
    return "\n".join(f"• {escape(p)}" for p in answer.problems[:PROBLEMS_SHOWN])


def submitted(answer: Submitted) -> str:
    """The reference given, and the warning that came with it (an emergency notified late)."""
    assert answer.reference is not None
    text = _("<b>{reference}</b> submitted. A CMCoord officer reviews it and sends it to the parties; /hns4d "
             "shows each party's acknowledgement of receipt.").format(reference=escape(answer.reference))
    if answer.warning:
        text += "\n" + _("Warning: {warning}").format(warning=escape(answer.warning))
    return text
