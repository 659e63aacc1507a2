"""The cycle collector paused while a large hook body is in use.

Why: a 5,000-resource prefetch parses into some 300,000 dicts and lists. The body is a tree, freed by
reference counting when the call ends, but the cycle collector cannot know that: the call's own
allocations trigger collections that traverse it, the young generation first, then the older ones.
On a 2.7 MB body that was about a fifth of the call and all of its slow outliers (in-process:
p50 121 -> 96 ms, slowest of 15 263 -> 128 ms). Calls with small bodies, nearly all of them, leave
the collector alone: there it costs nothing measurable.

The collector is one per process, so the pause is counted: the first large call pauses it, the
last one to end resumes it (only if it was running before). Calls that overlap without end would
keep it paused, so every `FULL_COLLECTION_EVERY` large calls within one pause a full collection runs.
Our own calls leave nothing for it (a test checks that); a call through werkzeug's router leaves a
handful of objects.
"""
from __future__ import annotations

import gc
import threading

#: A body at least this large (bytes) pauses the collector: ~500 resources and up. The default body
#: limit (HER2CDS_MAX_BODY_BYTES) is 1 MiB; larger prefetches need it raised.
LARGE_BODY_BYTES = 256 * 1024
FULL_COLLECTION_EVERY = 256


class CollectorPause:
    """`hold()` when a large body arrives, `release()` when its call ends (always, errors included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._calls = 0
        self._resume = False

    def hold(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._resume = gc.isenabled()
                self._calls = 0
                gc.disable()
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            self._calls += 1
            if self._holders == 0:
                if self._resume:
                    gc.enable()
            elif self._calls % FULL_COLLECTION_EVERY == 0:
                gc.collect()
