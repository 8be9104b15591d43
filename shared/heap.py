"""Keeping what a service holds for long out of the garbage collector's full passes.

A full collection walks every object the collector tracks: at 10,000 people the roster's
directory and the modules every service loads made each one a 0.1-0.2 s stall of the event
loop, once a second or so under load (the contacts benchmark's p99). Objects moved to the
permanent generation (`gc.freeze`) are not walked; reference counting still frees them when
they are let go (a replaced directory), so only garbage in reference cycles among them would
stay: young garbage is collected first, so that little is frozen with them.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Move every object tracked now to the permanent generation, after collecting the two
    young generations (milliseconds, not the full pass this avoids)."""
    gc.collect(1)
    gc.freeze()
