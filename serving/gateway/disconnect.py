"""Noticing a client that leaves while its request runs, without a task per request.

Once the body is read, the next ASGI message can only be `http.disconnect`, and only a task
awaiting `receive()` hears it. A `ClientWatch` starts that task only after `WATCH_AFTER`
seconds: most answers are done sooner, and a task per request (its start and cancellation),
or Starlette's task group per streamed response (two tasks and anyio's cancel scopes, about
0.13 ms of CPU per stream here), was a tenth of a short request's cost. A client that leaves
at once is still noticed, `WATCH_AFTER` later.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

# Seconds a request runs before a task starts listening for its client leaving.
WATCH_AFTER = 0.05


class ClientWatch:
    """Cancels the current task when the client disconnects; `caught` tells that cancellation
    apart from any other, and takes it back."""

    __slots__ = ("_receive", "_task", "_timer", "_waiting", "_watcher", "gone")

    def __init__(self, receive: Receive, after: float = WATCH_AFTER) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._receive = receive
        self._waiting = True
        self._watcher: asyncio.Task[None] | None = None
        self.gone = False
        self._timer = asyncio.get_running_loop().call_later(after, self._start)

    def stop(self) -> None:
        """The work is over, however it ended: a disconnect from now on cancels nothing."""
        self._waiting = False
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()

    def caught(self) -> bool:
        """Whether a cancellation just caught was this watch's (the client left); if so the
        task's cancellation is taken back, as `asyncio.timeout` does with its own."""
        if not self.gone:
            return False
        self._task.uncancel()
        return True

    def _start(self) -> None:
        if self._waiting:
            self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if self._waiting:
            self.gone = True
            self._task.cancel()
