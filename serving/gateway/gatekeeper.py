"""The door of the process: a gateway-wide limit on API requests in flight, the refusal of new
requests while draining, and the cut of whatever is still running at the drain deadline.

`Gatekeeper` holds the state (built once per app, on the `Gateway`); `GateMiddleware` is the
pure ASGI middleware that applies it, inside `Lifecycle` so every refusal is counted and logged
once with its request id. Refusals are rendered in the caller's dialect: over the in-flight
limit it is the overload answer (`Saturated`: OpenAI/Gemini 429, Anthropic 529), while
draining a 503 (`ShuttingDown`), both with `retry-after`.

A request still running at the drain deadline is cancelled and answered, never silently cut:
before its response started it gets the dialect's 503; a stream that already started gets the
dialect's error event as its last frame. Probes (/health, /ready, /metrics) are never limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.gateway.errors import GatewayError, NotFound, Saturated, ShuttingDown
from serving.gateway.lifecycle import PROBES, SCOPE_KEY, Renderer, RequestRecord
from serving.gateway.metrics import Metrics
from serving.gateway.settings import Server

log = logging.getLogger("serving.gateway.drain")

ErrorFrame = Callable[[Exception], bytes]


@dataclass(slots=True, eq=False)
class _Active:
    task: asyncio.Task[object] | None
    started: bool = False  # the response has begun
    sse: bool = False  # ... and it is an event stream
    cut: bool = False  # cancelled by the drain deadline


class Gatekeeper:
    """In-flight requests of this process, and whether it is draining."""

    def __init__(self, server: Server, metrics: Metrics) -> None:
        self._server = server
        self._metrics = metrics
        self._active: set[_Active] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False
        self.cut_count = 0
        self.ops_port: int | None = None  # the bound ops port, when ops listen apart
        # Read when /metrics is scraped: no locked gauge write on every request's way in and out.
        metrics.in_flight.set_function(lambda: self.in_flight)

    @property
    def in_flight(self) -> int:
        return len(self._active)

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            self._metrics.draining.set(1)
            log.info(
                "draining: /ready fails, new requests get 503; %d in flight", len(self._active)
            )

    async def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight, False if something still is after `timeout`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        return not self._active

    def cut(self) -> int:
        """Cancel every request still in flight (each is answered by the middleware)."""
        n = 0
        for entry in list(self._active):
            if entry.task is not None and not entry.cut:
                entry.cut = True
                entry.task.cancel()
                n += 1
        self.cut_count += n
        return n

    def enter(self) -> _Active:
        entry = _Active(asyncio.current_task())
        self._active.add(entry)
        self._idle.clear()
        return entry

    def leave(self, entry: _Active) -> None:
        self._active.discard(entry)
        if not self._active:
            self._idle.set()

    @property
    def drain_retry_after(self) -> float:
        return self._server.drain.retry_after

    def refusal(self) -> GatewayError | None:
        """Why a new API request is refused now, if it is."""
        server = self._server
        if self.draining:
            self._metrics.admission_rejected.labels("gateway", "draining").inc()
            return ShuttingDown(
                "the gateway is shutting down; retry (another replica will serve)",
                retry_after=server.drain.retry_after,
            )
        if len(self._active) >= server.max_in_flight:
            self._metrics.admission_rejected.labels("gateway", "in_flight").inc()
            return Saturated(
                f"the gateway is at its limit of {server.max_in_flight} requests in flight",
                retry_after=server.overload_retry_after,
            )
        return None


class GateMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keeper: Gatekeeper,
        dialect_for: Callable[[str], tuple[str, Renderer]],
        frame_for: Callable[[str], ErrorFrame],
    ) -> None:
        self.app = app
        self._keeper = keeper
        self._dialect_for = dialect_for
        self._frame_for = frame_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        keeper = self._keeper
        if keeper.ops_port is not None and _local_port(scope) == keeper.ops_port:
            await self._refuse(
                NotFound("the ops port serves /health, /ready and /metrics only"),
                scope,
                receive,
                send,
            )
            return
        refusal = keeper.refusal()
        if refusal is not None:
            await self._refuse(refusal, scope, receive, send)
            return
        entry = keeper.enter()

        def tracked(message: Message) -> Awaitable[None]:  # no coroutine per message
            if message["type"] == "http.response.start":
                entry.started = True
                ctype = dict(message.get("headers", ())).get(b"content-type", b"")
                entry.sse = b"text/event-stream" in ctype
            return send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not entry.cut or task is None:
                raise
            task.uncancel()
            await self._answer_cut(entry, scope, receive, send)
        finally:
            keeper.leave(entry)

    async def _refuse(self, exc: GatewayError, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._dialect_for(scope["path"])[1](exc, _record_id(scope))
        record = scope.get(SCOPE_KEY)
        if isinstance(record, RequestRecord):
            record.failed(exc, response.status_code)
        await response(scope, receive, send)

    async def _answer_cut(self, entry: _Active, scope: Scope, receive: Receive, send: Send) -> None:
        exc = ShuttingDown(
            "the gateway is shutting down and this request ran past its drain deadline",
            retry_after=self._keeper.drain_retry_after,
        )
        record = scope.get(SCOPE_KEY)
        if isinstance(record, RequestRecord):
            record.disconnected = False  # the relay saw a cancellation; it was ours
        log.warning("drain deadline: cut %s %s", scope["method"], scope["path"])
        with contextlib.suppress(OSError, RuntimeError):  # the client may be gone as well
            if not entry.started:
                await self._refuse(exc, scope, receive, send)
                return
            if isinstance(record, RequestRecord):
                record.failed(exc, exc.status)
            frame = self._frame_for(scope["path"])(exc) if entry.sse else b""
            await send({"type": "http.response.body", "body": frame, "more_body": False})


def _local_port(scope: Scope) -> int | None:
    server = scope.get("server")
    return server[1] if server else None


def _record_id(scope: Scope) -> str:
    record = scope.get(SCOPE_KEY)
    return record.request_id if isinstance(record, RequestRecord) else ""
