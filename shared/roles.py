"""The roles a person holds in the roster: the events' `Role`, and the choices the commands offer.
The standard library only: a command's help lists them before anything heavier is imported."""

from __future__ import annotations

from typing import Literal

Role = Literal["cmcoord_officer", "focal_point", "surge", "regional_adviser", "cmcs_desk"]
ROLES: tuple[str, ...] = Role.__args__  # type: ignore[attr-defined]
