"""The review cycle (NATO lessons learned): an observation or AAR is `new`; a reviewer
promotes it to `identified` (a lesson identified), then to `learned` once an action
is recorded (guidance updated, curriculum changed); a duplicate is `merged` into
another item. Tags can be changed at any step before a merge."""

from __future__ import annotations

from typing import Literal

Action = Literal["tagged", "merged", "identified", "learned"]
STATUSES = ("new", "identified", "learned", "merged")


class ReviewRefused(ValueError):
    pass


def after(status: str, action: Action, *, note: str = "") -> str:
    """The status after `action`, or ReviewRefused saying why not."""
    if status == "merged":
        raise ReviewRefused("this item was merged into another: review that one")
    if action == "tagged":
        return status
    if action == "merged":
        if status == "learned":
            raise ReviewRefused("a lesson learned is not merged away")
        return "merged"
    if action == "identified":
        if status != "new":
            raise ReviewRefused(f"only a new item becomes a lesson identified (this one is {status})")
        return "identified"
    if action == "learned":
        if status != "identified":
            raise ReviewRefused(f"only a lesson identified becomes a lesson learned (this one is {status})")
        if not note.strip():
            raise ReviewRefused("say which action was taken (e.g. guidance updated, curriculum changed)")
        return "learned"
    raise ReviewRefused(f"unknown review action {action!r}")
