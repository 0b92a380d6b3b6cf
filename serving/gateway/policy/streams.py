"""Guards on a stream once it is on its way to the client: the total deadline, a client that
stopped reading, and telling the target's circuit breaker when a stream breaks after it started.

The deadline (`timeouts.total`, from the attempt's start) is enforced twice, both cheaply: as
each chunk arrives (one clock read; a canonical stream then ends with a `Failure` event, in
`upstreams/base.bounded_events`, which reads the bound from the stream; a byte stream
raises), and by one timer per stream (`Watchdog`), so a stream that trickles or goes quiet is
ended at its deadline too, not only when its next chunk is pulled. The same timer
ends a stream whose client stopped reading (`server.client_idle`): a write that has waited that
long means the client's socket is full and nobody drains it, so the response is abandoned and
the upstream connection released instead of being held open for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Literal

from serving.gateway.errors import GatewayError, UpstreamTimeout


def overrun(name: str, total: float | None = None) -> UpstreamTimeout:
    limit = "" if total is None else f" of {total:g}s"
    return UpstreamTimeout(
        f"upstream {name!r} stream exceeded its total time{limit}", upstream=name
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
                raise overrun(name, total)
    except GatewayError:
        on_failure()
        raise
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


Fired = Literal["deadline", "client_idle"]


class Watchdog:
    """One timer per client stream, re-armed only when it fires (never per chunk).

    The response marks each write (`writing()` / `written()`: an attribute store and a clock
    read); everything else is reading. When the timer fires it cancels the stream's task if a
    read has run past `deadline` (the caller turns that into the stream's timeout error event),
    or if a write has waited `idle` seconds (the caller abandons the response). Like
    `asyncio.timeout`, the cancellation is taken back (`task.uncancel()`) by whoever handles it,
    so a client's own disconnect is never mistaken for either.
    """

    __slots__ = ("_clock", "_handle", "_loop", "_task", "deadline", "fired", "idle", "since")

    def __init__(self, deadline: float | None, idle: float) -> None:
        self.deadline = deadline  # loop time; None: no deadline (not a stream of an upstream)
        self.idle = idle
        self.since: float | None = None  # when the write now waiting started
        self.fired: Fired | None = None
        self._loop = asyncio.get_running_loop()
        self._clock = self._loop.time
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._task = asyncio.current_task()
        self._arm(self._clock())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def writing(self) -> None:
        self.since = self._clock()

    def written(self) -> None:
        self.since = None

    def take(self, reason: Fired) -> bool:
        """Whether a cancellation just caught was this watchdog's for `reason`; if so it is
        taken back from the task, which carries on (to end the stream its own way)."""
        if self.fired != reason:
            return False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True

    def _arm(self, now: float) -> None:
        at = now + self.idle if self.since is None else self.since + self.idle
        if self.deadline is not None and self.since is None:
            at = min(at, self.deadline)
        self._handle = self._loop.call_at(max(at, now), self._check)

    def _check(self) -> None:
        self._handle = None
        now = self._clock()
        if self.since is not None:
            if now - self.since >= self.idle:
                self._fire("client_idle")
                return
        elif self.deadline is not None and now >= self.deadline:
            self._fire("deadline")
            return
        self._arm(now)

    def _fire(self, reason: Fired) -> None:
        self.fired = reason
        if self._task is not None and not self._task.done():
            self._task.cancel()
