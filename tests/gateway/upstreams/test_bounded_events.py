"""`bound` / `bounded_events`, the one layer over a canonical stream after its first event:
what priming held back comes first, any failure below ends the stream with one mapped
`Failure`, a stream past the dispatcher's deadline ends with a timeout, and a break tells
`on_break` once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from serving.gateway import canonical as c
from serving.gateway.errors import UpstreamError, UpstreamTimeout
from serving.gateway.upstreams.base import EventStream, bound

FIRST = c.Start("id", "m")
FINISH = c.Finish(c.Stop(c.StopReason.END_TURN), c.Usage(1, 2))


class Source:
    """An upstream's events, then optionally an exception; notes whether it was closed."""

    def __init__(self, events: list[c.StreamEvent], fail: Exception | None = None) -> None:
        self.events = events
        self.fail = fail
        self.closed = False

    async def run(self) -> AsyncIterator[c.StreamEvent]:
        try:
            for event in self.events:
                await asyncio.sleep(0)
                yield event
            if self.fail is not None:
                raise self.fail
        finally:
            self.closed = True


def bounded(
    source: Source, held: list[c.StreamEvent] | None = None
) -> tuple[EventStream, list[str]]:
    breaks: list[str] = []
    stream = bound(EventStream(FIRST, source.run(), held), "up")
    stream.on_break = lambda: breaks.append("broke")
    return stream, breaks


async def read(stream: EventStream) -> list[c.StreamEvent]:
    return [event async for event in stream.rest]


async def test_the_held_events_come_first_then_the_rest_and_a_healthy_end_breaks_nothing() -> None:
    source = Source([c.TextDelta(0, "b"), FINISH])
    stream, breaks = bounded(source, held=[c.TextDelta(0, "a")])
    assert stream.held == []  # moved into `rest`: a reader of `rest` sees them once
    assert await read(stream) == [c.TextDelta(0, "a"), c.TextDelta(0, "b"), FINISH]
    assert breaks == []
    assert source.closed


async def test_an_odd_exception_below_ends_the_stream_with_one_mapped_failure() -> None:
    source = Source([c.TextDelta(0, "a")], fail=KeyError("choices"))
    stream, breaks = bounded(source)
    events = await read(stream)
    assert events[0] == c.TextDelta(0, "a")
    assert len(events) == 2 and isinstance(events[1], c.Failure)
    error = events[1].error
    assert isinstance(error, UpstreamError) and error.reason == "shape"
    assert "unexpected shape" in error.message and error.upstream == "up"
    assert breaks == ["broke"]
    assert source.closed


async def test_an_upstream_error_event_is_passed_on_with_its_secrets_redacted() -> None:
    leaked = UpstreamError("overloaded; retry with key sk-live0123456789abcdef", upstream="up")
    source = Source([c.TextDelta(0, "a"), c.Failure(leaked), c.TextDelta(0, "never")])
    stream, breaks = bounded(source)
    events = await read(stream)
    assert events[:1] == [c.TextDelta(0, "a")] and len(events) == 2
    failure = events[1]
    assert isinstance(failure, c.Failure)
    assert "sk-live" not in str(failure.error) and "[redacted]" in str(failure.error)
    assert breaks == ["broke"]
    assert source.closed  # nothing after the failure is read


async def test_a_stream_past_its_deadline_ends_with_a_timeout_but_a_finish_is_let_through() -> None:
    source = Source([c.TextDelta(0, "a"), c.TextDelta(0, "b")])
    stream, breaks = bounded(source)
    stream.deadline, stream.total = asyncio.get_running_loop().time() - 1, 5.0
    events = await read(stream)
    assert events[0] == c.TextDelta(0, "a") and len(events) == 2
    timeout = events[1]
    assert isinstance(timeout, c.Failure) and isinstance(timeout.error, UpstreamTimeout)
    assert "exceeded its total time of 5s" in str(timeout.error)
    assert breaks == ["broke"]

    finishing, breaks = bounded(Source([FINISH]))
    finishing.deadline = asyncio.get_running_loop().time() - 1
    assert await read(finishing) == [FINISH]  # the answer is complete: nothing to time out
    assert breaks == []


async def test_without_a_deadline_a_slow_stream_is_never_cut() -> None:
    stream, breaks = bounded(Source([c.TextDelta(0, "a"), FINISH]))
    assert stream.deadline is None
    assert await read(stream) == [c.TextDelta(0, "a"), FINISH]
    assert breaks == []
