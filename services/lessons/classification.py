"""Who may read what: `public` for anyone, `community` for verified members,
`restricted` for its author, the CMCS desk and the adviser of its region.
Every read path (bot, search, export, digest) asks this module; the store turns
the same rule into SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from shared.regions import resolve_region


class UnknownViewer(ValueError):
    pass


@dataclass(frozen=True)
class Viewer:
    person_id: uuid.UUID | None = None
    member: bool = False  # a verified member of the community (registered with the bot)
    desk: bool = False  # the CMCS desk
    adviser_regions: frozenset[str] = field(default_factory=frozenset)

    def can_see(self, *, classification: str, author_id: uuid.UUID, region: str | None) -> bool:
        if classification == "public":
            return True
        if classification == "community":
            return self.member or self.desk or bool(self.adviser_regions)
        return self.desk or (self.person_id is not None and author_id == self.person_id) or (
            region is not None and region in self.adviser_regions)

    @classmethod
    def parse(cls, spec: str) -> Viewer:
        """The CLI's --as: public, community, desk, adviser:ROWCA, person:<uuid> (an author, a member)."""
        kind, _, arg = spec.strip().partition(":")
        if kind == "public" and not arg:
            return cls()
        if kind == "community" and not arg:
            return cls(member=True)
        if kind == "desk" and not arg:
            return cls(member=True, desk=True)
        if kind == "adviser":
            region = resolve_region(arg)
            if region is None:
                raise UnknownViewer(f"unknown region {arg!r} (e.g. adviser:ROWCA)")
            return cls(member=True, adviser_regions=frozenset({region}))
        if kind == "person":
            try:
                return cls(person_id=uuid.UUID(arg), member=True)
            except ValueError as err:
                raise UnknownViewer(f"not a person id: {arg!r}") from err
        raise UnknownViewer(f"unknown viewer {spec!r}: public, community, desk, adviser:REGION or person:ID")
