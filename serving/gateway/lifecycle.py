"""Every API request's one record: its id, what served it, how it ended; counted and logged once.

`Lifecycle` is a pure ASGI middleware around the whole app. For each request it

- opens a `RequestRecord` (held in the ASGI scope, so the endpoint runner fills in the route,
  target, fallbacks, tokens, and how a stream ended);
- gives the request an id, sends it in every response in the dialect's header (`x-request-id`
  for OpenAI and Gemini, `request-id` for Anthropic, as their SDKs read it) and puts it in every
  log line written while the request runs (`logs.py`);
- is the last safety net: an exception nothing else handled becomes the dialect's own 500
  envelope (never plain text), logged with the request id;
- when the app is done (after the last byte of a stream, too), records exactly one
  `serving_requests_total` increment and one duration observation, and writes one access-log
  line: successes, 4xx, 5xx, streams that broke, and clients that went away (status 499).

Probes (/health, /ready, /metrics) pass through uncounted: they are not API traffic.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError
from serving.gateway.logs import request_id_var
from serving.gateway.metrics import Metrics

if TYPE_CHECKING:
    from serving.gateway.dispatch import Outcome

log = logging.getLogger("serving.gateway")
access = logging.getLogger("serving.gateway.access")

SCOPE_KEY = "serving.record"
DISCONNECTED = 499  # the status nginx made the convention for "client closed the request"
PROBES = frozenset({"/health", "/ready", "/metrics"})
_MAX_PATHS = 1024

Renderer = Callable[[GatewayError, str], Response]


class RequestIds:
    """Request ids: a random prefix drawn once per process, then a counter. Unique, which is
    all an id is for (they are no secret); `os.urandom` per request was a system call on every
    request's path."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = "req_" + os.urandom(6).hex()
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFF:012x}"


@dataclass(slots=True)
class RequestRecord:
    """What one request's metric and access-log line say; filled in as the request runs."""

    request_id: str
    method: str
    path: str
    dialect: str
    started: float
    route: str = "unknown"  # a configured route name, never a client-supplied string
    target: str = "none"
    fallbacks: list[str] = field(default_factory=list)
    stream: bool = False
    status: int | None = None  # the status sent; a broken stream's error status overrides it
    disconnected: bool = False
    usage: c.Usage | None = None
    outcome: Outcome | None = None
    error: str | None = None  # the error's class name, never its text
    key: str | None = None  # the matched client key's name (policy/keys.py), never the key
    first_at: float | None = None
    metrics: Metrics | None = None

    def served_by(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.route = outcome.route.model
        self.target = f"{outcome.target.upstream}/{outcome.target.model}"
        self.fallbacks = outcome.fallbacks

    def first_byte(self) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
            if self.metrics is not None:
                m = self.metrics
                m.child(m.time_to_first_token, self.route, self.dialect).observe(
                    self.first_at - self.started
                )

    def failed(self, exc: BaseException, status: int) -> None:
        self.error = type(exc).__name__
        self.status = status

    @property
    def status_label(self) -> str:
        return str(DISCONNECTED if self.disconnected else (self.status or 500))


def record_of(request: Request) -> RequestRecord:
    """The record the middleware opened for this request."""
    record: RequestRecord = request.scope[SCOPE_KEY]
    return record


class Lifecycle:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        dialect_for: Callable[[str], tuple[str, Renderer]],
        header_for: Callable[[str], bytes],
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._dialect_for = dialect_for
        self._header_for = header_for
        # path -> (dialect, renderer, header name): a prefix scan saved per request; bounded,
        # as Gemini paths carry the model name a client chose
        self._paths: dict[str, tuple[str, Renderer, bytes]] = {}
        self._new_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        dialect, render, header_name = self._dialect_of(path)
        rid = self._new_id()
        record = RequestRecord(
            rid, scope["method"], path, dialect, time.perf_counter(), metrics=self._metrics
        )
        scope[SCOPE_KEY] = record
        header = (header_name, rid.encode())
        started = False

        # A plain function handing back the inner send's awaitable, not a coroutine: every
        # message of every response passes here, and a wrapper coroutine per message (a frame
        # and its await chain; 52 of them for a 50-chunk stream) is pure overhead.
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if record.status is None:
                    record.status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            return send(message)

        token = request_id_var.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error(
                "unhandled %s on %s %s", type(exc).__name__, record.method, path, exc_info=exc
            )
            record.failed(exc, 500)
            if not started:
                error = GatewayError(f"internal error in the gateway (request {rid})")
                await render(error, rid)(scope, receive, send_with_id)
        finally:
            self._finish(record)
            request_id_var.reset(token)

    def _dialect_of(self, path: str) -> tuple[str, Renderer, bytes]:
        found = self._paths.get(path)
        if found is None:
            dialect, render = self._dialect_for(path)
            found = (dialect, render, self._header_for(dialect))
            if len(self._paths) < _MAX_PATHS:
                self._paths[path] = found
        return found

    def _finish(self, record: RequestRecord) -> None:
        m = self._metrics
        status = record.status_label
        elapsed = time.perf_counter() - record.started
        route, target = record.route, record.target
        m.child(m.requests, route, target, record.dialect, status).inc()
        stream = "true" if record.stream else "false"
        m.child(m.request_duration, route, record.dialect, stream).observe(elapsed)
        outcome, usage = record.outcome, record.usage
        charge = None
        if usage is not None and outcome is not None:
            m.child(m.tokens, route, target, "input").inc(usage.input_tokens)
            m.child(m.tokens, route, target, "output").inc(usage.output_tokens)
            if outcome.meter is not None and int(status) < 400:
                # A whole answer was priced up front for its headers; a stream's usage is
                # only known now.
                known = outcome.charge if usage is getattr(outcome.result, "usage", None) else None
                charge = outcome.meter.record(outcome.route, outcome.target, usage, known)
        if outcome is not None and outcome.decisions is not None:
            outcome.decisions.write(outcome, usage, charge, int(status))
        if access.isEnabledFor(logging.INFO):
            # makeRecord + handle is what access.info() does, less the caller lookup (a stack
            # walk per line, for a file and line no format here shows)
            line = access.makeRecord(
                access.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %s",
                (record.method, record.path, status),
                None,
                extra={
                    "access": {
                        "method": record.method,
                        "path": record.path,
                        "dialect": record.dialect,
                        "route": record.route,
                        "target": record.target,
                        "fallbacks": record.fallbacks,
                        "status": int(status),
                        "stream": record.stream,
                        "latency_ms": round(elapsed * 1000, 3),
                        "input_tokens": usage.input_tokens if usage else None,
                        "output_tokens": usage.output_tokens if usage else None,
                        "error": record.error,
                        "key": record.key,
                    }
                },
            )
            access.handle(line)
