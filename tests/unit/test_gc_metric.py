"""The operator's garbage-collector metric: pauses of Python's cyclic collector, by generation."""

from __future__ import annotations

import gc
import itertools

import pytest
from prometheus_client import REGISTRY

from modeldeploy.observability import track_gc

pytestmark = pytest.mark.unit


def gc_seconds(generation: str) -> float:
    value = REGISTRY.get_sample_value("modeldeploy_gc_seconds_total", {"generation": generation})
    assert value is not None, "the series exist from the start"
    return value


def test_full_collections_are_timed_once_however_often_tracking_starts() -> None:
    track_gc()
    track_gc()
    assert sum(1 for c in gc.callbacks if c.__module__ == "modeldeploy.observability") == 1
    before = gc_seconds("2")
    garbage = [[] for _ in range(50_000)]
    for a, b in itertools.pairwise(garbage):
        a.append(b)  # a chain the collector walks
    gc.collect(2)
    assert gc_seconds("2") > before
    del garbage
