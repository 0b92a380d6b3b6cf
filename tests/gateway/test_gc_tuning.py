"""The gateway process raises the collector's thresholds before it serves (commands.tune_gc)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from serving.gateway.commands import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_sets_the_gateway_thresholds_above_the_default() -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # the young generation is collected less often
