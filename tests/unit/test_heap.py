"""What a service freezes after start (and the roster after each directory it builds): the objects
alive then, not the young garbage around them."""

from __future__ import annotations

import gc
import weakref

from shared.heap import freeze_long_lived


class _Node:
    def __init__(self) -> None:
        self.other: object = None


def test_the_living_are_frozen_and_a_young_cycle_of_garbage_is_collected_first() -> None:
    living = [_Node() for _ in range(100)]
    garbage = _Node()
    garbage.other = garbage  # a cycle: only the collector can free it
    gone = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    try:
        freeze_long_lived()
        assert gone() is None
        assert gc.get_freeze_count() >= before + len(living)
        walked = {id(o) for o in gc.get_objects()}  # what a full collection walks
        assert not walked & {id(node) for node in living}
    finally:
        gc.unfreeze()
