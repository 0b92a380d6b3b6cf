"""Request ids: unique within a process and across processes, in one fixed shape."""

from __future__ import annotations

import re

from serving.gateway.lifecycle import RequestIds

SHAPE = re.compile(r"req_[0-9a-f]{24}")


def test_ids_are_unique_and_shaped() -> None:
    ids = RequestIds()
    seen = [ids() for _ in range(10_000)]
    assert len(set(seen)) == len(seen)
    assert all(SHAPE.fullmatch(i) for i in seen)


def test_each_process_draws_its_own_prefix() -> None:
    # Two generators stand for two processes (or two workers): their prefixes are random.
    prefixes = {RequestIds()()[:16] for _ in range(50)}
    assert len(prefixes) == 50
