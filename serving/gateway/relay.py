"""Turning dispatch outcomes into HTTP responses: JSON bodies and streams.

Streams are relayed as they arrive (no re-buffering). Each dialect supplies how to encode
canonical events, how to frame an error, and which marker shows a stream finished cleanly; a
stream that ends without that marker is ended with the dialect's error event.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response, StreamingResponse

from serving.gateway import canonical as c
from serving.gateway.dispatch import Outcome
from serving.gateway.errors import GatewayError, UpstreamError
from serving.gateway.metrics import Metrics
from serving.gateway.sse import SSEDecoder
from serving.gateway.upstreams.base import EventStream, RawResponse, RawStream

log = logging.getLogger("serving.gateway.relay")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


# Updates the running usage from one decoded stream event that mentions usage.
UsageReader = Callable[[dict[str, Any], c.Usage], None]


@dataclass(slots=True)
class StreamGrammar:
    """What a dialect contributes to relaying a stream."""

    done_marker: bytes  # present in a same-dialect stream that finished cleanly
    error_frame: Callable[[Exception], bytes]
    read_usage: UsageReader | None = None
    usage_key: str = '"usage"'  # only events whose data contain this are parsed


class UsageTap:
    """Reads usage out of relayed bytes for metrics and cost, without touching what is sent:
    frames are split as they pass, and only the few that mention usage are parsed."""

    __slots__ = ("_decoder", "_grammar", "seen", "usage")

    def __init__(self, grammar: StreamGrammar) -> None:
        self._decoder = SSEDecoder()
        self._grammar = grammar
        self.usage = c.Usage()
        self.seen = False

    def feed(self, chunk: bytes) -> None:
        read = self._grammar.read_usage
        if read is None:
            return
        for event in self._decoder.feed(chunk):
            if self._grammar.usage_key not in event.data:
                continue
            try:
                data = json.loads(event.data)
            except ValueError:
                log.debug("relayed stream event with usage is not JSON; usage not counted")
                continue
            if isinstance(data, dict):
                read(data, self.usage)
                self.seen = True


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status, headers=headers, media_type="application/json")


def outcome_headers(outcome: Outcome) -> dict[str, str]:
    headers = {"x-serving-target": f"{outcome.target.upstream}/{outcome.target.model}"}
    if outcome.fallbacks:
        headers["x-serving-fallback"] = ",".join(outcome.fallbacks)
    if outcome.charge is not None and outcome.charge.cost is not None:
        # Whole answers only: a stream's headers leave before its usage is known.
        headers["x-serving-cost-usd"] = f"{outcome.charge.cost:.8f}"
    if outcome.private is not None:
        headers["x-serving-private"] = "true"
    if outcome.escalated_from is not None:
        headers["x-serving-route"] = outcome.route.model
    return headers


class Accounting:
    """Per-request bookkeeping, finished once when the last byte is out."""

    def __init__(self, metrics: Metrics, dialect: str, started: float, stream: bool) -> None:
        self.metrics = metrics
        self.dialect = dialect
        self.started = started
        self.stream = stream
        self.first_at: float | None = None

    def first_byte(self, route: str) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
            self.metrics.time_to_first_token.labels(route, self.dialect).observe(
                self.first_at - self.started
            )

    def finish(
        self, outcome: Outcome | None, route: str, status: int, usage: c.Usage | None
    ) -> None:
        target = f"{outcome.target.upstream}/{outcome.target.model}" if outcome else "none"
        m = self.metrics
        m.requests.labels(route, target, self.dialect, str(status)).inc()
        m.request_duration.labels(route, self.dialect, str(self.stream).lower()).observe(
            time.perf_counter() - self.started
        )
        if usage is not None and outcome is not None:
            m.tokens.labels(route, target, "input").inc(usage.input_tokens)
            m.tokens.labels(route, target, "output").inc(usage.output_tokens)
            if outcome.meter is not None and status < 400:
                outcome.meter.record(outcome.route, outcome.target, usage)


def relay_raw(
    outcome: Outcome,
    result: RawResponse | RawStream,
    grammar: StreamGrammar,
    acct: Accounting,
    headers: dict[str, str],
) -> Response:
    route = outcome.route.model
    if isinstance(result, RawResponse):
        acct.finish(outcome, route, result.status, result.usage)
        return Response(result.body, result.status, headers=headers, media_type=result.content_type)

    async def body() -> AsyncIterator[bytes]:
        status = 200
        marker = grammar.done_marker
        finished = marker in result.first
        # the marker may straddle two network chunks: keep the bytes that could start it
        tail = result.first[-(len(marker) - 1) :]
        tap = UsageTap(grammar)
        tap.feed(result.first)
        try:
            acct.first_byte(route)
            yield result.first
            async for chunk in result.rest:
                if not finished:
                    finished = marker in tail + chunk
                    tail = (tail + chunk)[-(len(marker) - 1) :]
                tap.feed(chunk)
                yield chunk
            if not finished:
                raise UpstreamError("upstream stream ended before it finished")
        except GatewayError as exc:
            status = exc.status
            log.warning("stream from %s broke: %s", headers.get("x-serving-target"), exc)
            yield grammar.error_frame(exc)
        finally:
            await result.aclose()
            acct.finish(outcome, route, status, tap.usage if tap.seen else None)

    return StreamingResponse(
        body(), headers={**SSE_HEADERS, **headers}, media_type=result.content_type
    )


def relay_events(
    outcome: Outcome,
    events: EventStream,
    encode: Callable[[c.StreamEvent], bytes],
    acct: Accounting,
    headers: dict[str, str],
) -> Response:
    route = outcome.route.model

    async def body() -> AsyncIterator[bytes]:
        status = 200
        usage: c.Usage | None = None
        try:
            async for event in events:
                if isinstance(event, c.Finish):
                    usage = event.usage
                elif isinstance(event, c.Failure):
                    status = getattr(event.error, "status", 500)
                    log.warning(
                        "stream from %s broke: %s", headers.get("x-serving-target"), event.error
                    )
                acct.first_byte(route)
                yield encode(event)
        finally:
            await events.aclose()
            acct.finish(outcome, route, status, usage)

    return StreamingResponse(
        body(), headers={**SSE_HEADERS, **headers}, media_type="text/event-stream"
    )
