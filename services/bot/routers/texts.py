"""What several commands answer alike: to someone not registered, to a former member, and the
lines of what a person still owes."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from shared.contracts.notify import PendingNotification


NOT_REGISTERED = __(
    "This bot serves the UN-CMCoord community: officers, focal points and advisers on the CMCS roster.\n"
    "To use it, ask the CMCS desk or your regional adviser for an invitation link, then open it here. "
    "/lang changes the language."
)


def members_only() -> str:
    return _("Sorry, that is for members of the CMCoord community, and your deployment on the roster ended some "
             "time ago, so it is closed to you now. You can still finish what you owe: /aar for your after action "
             "review, /handover for your handover note, /pending for messages waiting for your answer, and /me. "
             "If you think this is a mistake, please write to the CMCS desk.")


def liaison_help() -> str:
    """What a party's liaison can do: answer the humanitarian notifications addressed to their party."""
    return _("<b>CMCoord Hub</b>\nHumanitarian notifications addressed to your organisation come here. Press "
             "Acknowledge receipt on each: it records that you received it, nothing more.\n"
             "/hns4d: the notifications addressed to your organisation, and your answer to each\n"
             "/pending: what still waits for your answer\n"
             "/lang: English, français or العربية")


def former_member_help() -> str:
    return _(
        "<b>CMCoord Hub</b>\n"
        "Your deployment on the roster has ended, so the community's contacts, calls and lessons are closed to you. "
        "What you can still do:\n"
        "/me: your details and what you still owe\n"
        "/aar: your after action review\n"
        "/handover: the handover note for your successor\n"
        "/pending: what still waits for your answer\n"
        "/lang: English, français or العربية"
    )


def owed_lines(items: list[PendingNotification]) -> list[str]:
    """What /me lists under "you still owe"."""
    lines = []
    if any(i.kind.startswith("handover.") for i in items):
        lines.append(_("• your handover note: /handover"))
    answers = [i for i in items if not i.kind.startswith("handover.")]
    if answers:
        lines.append(_("• answers to {n} messages: /pending").format(n=len(answers)))
    return lines
