"""A `her2-cds serve` worker freezes what it built at start-up and collects its young generation less often."""
from __future__ import annotations

import gc

from cds_service.serve import GC_YOUNG_THRESHOLD, settle_collector


def test_a_worker_freezes_its_start_up_objects_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        settle_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
