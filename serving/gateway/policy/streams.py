"""Guards on a stream once it is on its way to the client: the total deadline, and telling the
target's circuit breaker when a stream breaks after it started.

The deadline (`timeouts.total`, from the attempt's start) is checked as each chunk arrives: one
clock read per chunk, no timer per read. A silent upstream is already bounded by
`timeouts.stream_idle` (the read timeout), so a stream overruns its total by at most that much.
Failures surface as `GatewayError`s (raw byte streams) or a final `Failure` event (canonical
streams); relay.py ends the client's stream with the dialect's error event either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError, UpstreamTimeout


def _overrun(name: str, total: float) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"upstream {name!r} stream exceeded its total time of {total:g}s", upstream=name
    )


async def guard_bytes(
    chunks: AsyncIterator[bytes],
    *,
    name: str,
    total: float,
    deadline: float,
    on_failure: Callable[[], None],
) -> AsyncIterator[bytes]:
    clock = asyncio.get_running_loop().time
    try:
        async for chunk in chunks:
            yield chunk
            if clock() > deadline:
                on_failure()
                raise _overrun(name, total)
    except GatewayError:
        on_failure()
        raise
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def guard_events(
    events: AsyncIterator[c.StreamEvent],
    *,
    name: str,
    total: float,
    deadline: float,
    on_failure: Callable[[], None],
) -> AsyncIterator[c.StreamEvent]:
    clock = asyncio.get_running_loop().time
    try:
        async for event in events:
            yield event
            if isinstance(event, c.Failure):
                on_failure()
                return
            if clock() > deadline and not isinstance(event, c.Finish):
                on_failure()
                yield c.Failure(_overrun(name, total))
                return
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
