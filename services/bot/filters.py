from __future__ import annotations

from aiogram.filters import BaseFilter
from aiogram.types import TelegramObject

from shared.contracts.roster import PersonCard


def is_member(person: PersonCard | None) -> bool:
    """Linked, and a member of the community today as the roster says: a deployment not ended, or
    ended within the roster's grace period. A card without `member` (a roster older than the rule)
    counts as a member, as every linked person did before (the card's default)."""
    return person is not None and person.member


class IsRegistered(BaseFilter):
    """Passes for Telegram users linked to a roster person (set by IdentityMiddleware)."""

    async def __call__(self, event: TelegramObject, person: PersonCard | None = None) -> bool:
        return person is not None


class IsMember(BaseFilter):
    """Passes for linked members of the community (contacts, calls, agendas, reports, lessons)."""

    async def __call__(self, event: TelegramObject, person: PersonCard | None = None) -> bool:
        return is_member(person)


class IsFormerMember(BaseFilter):
    """Passes for linked people who are no longer members: they keep /me and their own open duties."""

    async def __call__(self, event: TelegramObject, person: PersonCard | None = None) -> bool:
        return person is not None and not is_member(person)


class IsLiaison(BaseFilter):
    """Passes for a party's liaison: told humanitarian notifications and answering them, nothing else."""

    async def __call__(self, event: TelegramObject, person: PersonCard | None = None) -> bool:
        return person is not None and person.liaison
