"""Keeping what a service holds for long out of the garbage collector's full passes.

A full collection walks every object the collector tracks: at 10,000 people the roster's
directory and the modules every service loads made each one a 0.1-0.2 s stall of the event
loop, about once a second under load (the contacts benchmark's p99). Objects moved to the
permanent generation (`gc.freeze`) are not walked. Reference counting still frees them when
they are let go (a replaced directory is); only garbage in reference cycles among them would
stay. So a `full` call takes the frozen objects back and collects everything first (one full
pass: at a service's start, and at the roster's first directory of each day); a light one
collects only the young generations (milliseconds), and what older cyclic garbage it freezes
waits for the next full call.
"""

from __future__ import annotations

import gc


def freeze_long_lived(*, full: bool) -> None:
    """Move every object alive to the permanent generation, after collecting garbage: all of it
    (what an earlier call froze included) when `full`, else the young generations'."""
    if full:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
