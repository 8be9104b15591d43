"""What a service freezes after start (and the roster after each directory it builds): the objects
alive then, never the garbage around them; a full call also frees old garbage and what an earlier
call froze that has become garbage since."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.heap import freeze_long_lived


class _Node:
    def __init__(self) -> None:
        self.other: object = self  # a cycle: only the collector frees it


@pytest.fixture
def collector_by_hand() -> Iterator[None]:
    """No automatic collection moves the test's objects meanwhile; nothing left frozen after."""
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


def _walked() -> set[int]:
    return {id(o) for o in gc.get_objects()}  # what a full collection walks


def _old_garbage() -> weakref.ref[_Node]:
    old = _Node()
    gc.collect()  # it survives a full pass: the oldest generation
    return weakref.ref(old)  # and is garbage once this returns


@pytest.mark.parametrize("full", [True, False], ids=["full", "light"])
def test_the_living_are_frozen_and_young_garbage_is_collected_first(collector_by_hand: None, full: bool) -> None:
    old_gone = _old_garbage()
    young = _Node()
    young_gone = weakref.ref(young)
    del young
    living = [_Node() for _ in range(100)]
    freeze_long_lived(full=full)
    assert young_gone() is None
    assert (old_gone() is None) is full  # a light call leaves old cyclic garbage to the next full one
    assert gc.get_freeze_count() >= len(living)
    assert not _walked() & {id(node) for node in living}


def test_a_full_call_frees_what_an_earlier_call_froze_once_it_is_garbage(collector_by_hand: None) -> None:
    kept = _Node()
    freeze_long_lived(full=False)
    assert id(kept) not in _walked()
    gone = weakref.ref(kept)
    del kept  # frozen, then garbage
    freeze_long_lived(full=False)
    assert gone() is not None  # still frozen: a light call does not take it back
    freeze_long_lived(full=True)
    assert gone() is None
