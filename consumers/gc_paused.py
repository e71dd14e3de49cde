"""Pause Python's cyclic garbage collector around a long, bounded fold over the whole log.

A rebuild holds every entity in memory while it replays millions of events; each automatic full collection
walks that whole heap again, which cost about a sixth of the replay time. The folds build no reference cycles
(entities are plain dataclasses, dicts and tuples), so reference counting frees everything they discard; the
collector is re-enabled, as it was, when the block ends, even on error.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
