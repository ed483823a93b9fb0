"""Process-wide tuning for a process that serves requests (the server, a send, a worker)."""

from __future__ import annotations

import gc

# gc.set_threshold for a serving process: young collections every 10,000 net allocations
# instead of 700, full ones after 100 middle ones instead of 10.
GC_THRESHOLDS = (10_000, 10, 100)


def tune_garbage_collector() -> None:
    """Make the cyclic garbage collector's pauses rare, for a process that serves requests.

    - The objects that live as long as the process are hidden from it (``gc.freeze``). Each
      batch request allocates thousands of short-lived dicts, which keep triggering full
      collections; each one walked the whole startup heap (modules, the app, its routes):
      about 60 ms on a 2-core machine, stalling every request in flight and setting the p99.
      Frozen, a full collection walks only what was allocated since (about 2 ms).
    - Collections run less often (:data:`GC_THRESHOLDS`). The caches (profile views, tiles,
      grids, images) keep replacing entries that lived long enough to reach the oldest
      generation, so full collections of 30–100 ms came every few seconds under open-time
      load; with these thresholds the slowest open of ``make bench-render`` fell from
      90–100 ms to about 40 ms (docs/benchmarks.md). The price is cyclic garbage that waits
      longer to be freed; little of what requests allocate is cyclic.

    Calling it again (a second app in one process) only freezes what exists by then, so no
    flag is kept.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
