"""Graceful shutdown of `serving gateway`: what SIGTERM (or Ctrl-C) starts.

    t=0         /ready fails; new requests get the dialect's 503 + retry-after (gatekeeper.py);
                the listener stays up, so a load balancer that has not yet noticed gets an
                answer it can retry elsewhere, never a refused connection
    t=window    the earliest the listener closes (`server.drain.window`)
    ...         requests and streams in flight run on until done, or until
    t=deadline  (`server.drain.deadline`): any still running are cut, each answered with its
                dialect's 503 or, for a stream, its error event as the last frame
    then        uvicorn closes the listener and the process exits: 0 after a clean drain,
                `ExitCode.DRAIN_INCOMPLETE` when something had to be cut

uvicorn's own handling (close the listener at once, then re-raise the signal so the process
dies of it, status 143) is replaced for the first signal; a second one falls back to it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

from serving.gateway.gatekeeper import Gatekeeper
from serving.gateway.settings import Drain

log = logging.getLogger("serving.gateway.drain")

CUT_GRACE_S = 5.0  # for cut requests to write their last frame


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, keeper: Gatekeeper, drain: Drain) -> None:
        super().__init__(config)
        self._keeper = keeper
        self._drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._task is not None or self._loop is None or not self.started:
            super().handle_exit(sig, frame)  # a second signal, or one before startup
            return
        log.info("received %s: draining", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="drain")

    async def _run(self) -> None:
        keeper, drain = self._keeper, self._drain
        loop = asyncio.get_running_loop()
        begun = loop.time()
        keeper.begin_drain()
        idle = await keeper.wait_idle(drain.deadline)
        rest = drain.window - (loop.time() - begun)
        if rest > 0:
            await asyncio.sleep(rest)
        if not idle:
            n = keeper.cut()
            log.warning(
                "drain deadline of %gs reached: cut %d request(s) still in flight",
                drain.deadline,
                n,
            )
            await keeper.wait_idle(CUT_GRACE_S)
        else:
            log.info("drained: nothing in flight")
        self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), bound before uvicorn starts so the ops port
    and the API port are both known and both served by one server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
