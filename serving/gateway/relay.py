"""Turning dispatch outcomes into HTTP responses: JSON bodies and streams.

Streams are relayed as they arrive (no re-buffering). Each dialect supplies how to encode
canonical events, how to frame an error, and which marker shows a stream finished cleanly; a
stream that ends without that marker is ended with the dialect's error event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import Response, StreamingResponse

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError, UpstreamError
from serving.gateway.sse import SSEDecoder
from serving.gateway.upstreams.base import EventStream, RawStream

if TYPE_CHECKING:
    from serving.gateway.dispatch import Outcome
    from serving.gateway.lifecycle import RequestRecord

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
        try:
            events = self._decoder.feed(chunk)
        except UnicodeDecodeError:
            # Relayed untouched all the same; only the usage of this stream goes uncounted.
            log.debug("relayed stream frame is not UTF-8; usage not counted from here on")
            self._grammar = StreamGrammar(self._grammar.done_marker, self._grammar.error_frame)
            return
        for event in events:
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
    decision = outcome.decision
    if decision is not None and decision.rule not in (None, "escalate"):
        headers["x-serving-route"] = f"{outcome.route.model}; rule={decision.rule}"
        if decision.score is not None:
            headers["x-serving-route"] += f"; tier={decision.score.tier}"
    elif outcome.escalated_from is not None:
        headers["x-serving-route"] = outcome.route.model
    if outcome.max_tokens is not None:
        headers["x-serving-max-tokens-lowered"] = f"{outcome.target.label}={outcome.max_tokens}"
    return headers


async def _closed(close: Callable[[], Awaitable[None]]) -> None:
    """Close an upstream stream even while the client's cancellation is being delivered: a
    shielded close, so the upstream sees its connection go away now, not at garbage collection."""
    with anyio.CancelScope(shield=True):
        await close()


def relay_raw(
    result: RawStream, grammar: StreamGrammar, record: RequestRecord, headers: dict[str, str]
) -> Response:
    """A same-dialect stream, relayed as it arrives; a cut is ended with the dialect's error."""

    async def body() -> AsyncIterator[bytes]:
        marker = grammar.done_marker
        finished = marker in result.first
        # the marker may straddle two network chunks: keep the bytes that could start it
        tail = result.first[-(len(marker) - 1) :]
        tap = UsageTap(grammar)
        tap.feed(result.first)
        try:
            record.first_byte()
            yield result.first
            async for chunk in result.rest:
                if not finished:
                    finished = marker in tail + chunk
                    tail = (tail + chunk)[-(len(marker) - 1) :]
                tap.feed(chunk)
                yield chunk
            if not finished:
                raise UpstreamError("upstream stream ended before it finished", reason="stream")
        except GatewayError as exc:
            record.failed(exc, exc.status)
            log.warning("stream from %s broke: %s", record.target, exc)
            yield grammar.error_frame(exc)
        except (asyncio.CancelledError, GeneratorExit):
            record.disconnected = True  # the client went away mid-stream
            raise
        finally:
            await _closed(result.aclose)
            record.usage = tap.usage if tap.seen else None

    return StreamingResponse(
        body(), headers={**SSE_HEADERS, **headers}, media_type=result.content_type
    )


def relay_events(
    events: EventStream,
    encode: Callable[[c.StreamEvent], bytes],
    record: RequestRecord,
    headers: dict[str, str],
) -> Response:
    """Canonical events, encoded into the client's grammar as they arrive."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                if isinstance(event, c.Finish):
                    record.usage = event.usage
                elif isinstance(event, c.Failure):
                    status = getattr(event.error, "status", 500)
                    record.failed(event.error, status if isinstance(status, int) else 500)
                    log.warning("stream from %s broke: %s", record.target, event.error)
                record.first_byte()
                yield encode(event)
        except (asyncio.CancelledError, GeneratorExit):
            record.disconnected = True  # the client went away mid-stream
            raise
        finally:
            await _closed(events.aclose)

    return StreamingResponse(
        body(), headers={**SSE_HEADERS, **headers}, media_type="text/event-stream"
    )
