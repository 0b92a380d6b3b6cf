"""Turning dispatch outcomes into HTTP responses: JSON bodies and streams.

Streams are relayed as they arrive (no re-buffering); their bodies (completeness, breaks,
continuation) are streaming.py's. Each dialect supplies how to encode canonical events and how
to frame an error. A stream's response (`SSEResponse`) runs one `Watchdog` (policy/streams.py):
the stream's total deadline, and a client that stopped reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from serving.gateway import canonical as c
from serving.gateway.disconnect import ClientWatch
from serving.gateway.errors import GatewayError
from serving.gateway.jsoncodec import dumpb
from serving.gateway.policy.streams import Watchdog, overrun
from serving.gateway.streaming import End, event_body, raw_body
from serving.gateway.upstreams.base import EventStream, RawStream

if TYPE_CHECKING:
    from serving.gateway.dispatch import Outcome
    from serving.gateway.lifecycle import RequestRecord

log = logging.getLogger("serving.gateway.relay")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@dataclass(slots=True)
class StreamGrammar:
    """What a client dialect contributes to relaying a stream: its in-stream error frame. (How
    an upstream's frames read is that dialect's grammar, frames.py; it travels with each
    RawStream.)"""

    error_frame: Callable[[Exception], bytes]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = dumpb(body)
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


async def _closed(stream: RawStream | EventStream) -> None:
    """Close an upstream stream even while the client's cancellation is being delivered: a
    shielded close, so the upstream sees its connection go away now, not at garbage collection.
    A stream read to its end has nothing left to close and skips the cancel scope, which costs
    more than the rest of a short stream's ending."""
    if stream.spent:
        return
    with anyio.CancelScope(shield=True):
        await stream.aclose()


class SSEResponse(StreamingResponse):
    """A streaming response whose writes the stream's `Watchdog` watches: a write that waits
    `server.client_idle` seconds (a client that stopped reading) abandons the response, which
    closes the body and so the upstream stream. The server then drops the connection (uvicorn
    logs that the response was not completed)."""

    def __init__(self, body: AsyncIterator[bytes], watch: Watchdog, **kw: Any) -> None:
        super().__init__(body, **kw)
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Streamed in the request's own task, with a ClientWatch for the client leaving, in
        # place of Starlette's task group (a second task and anyio's scopes per response;
        # uvicorn's ASGI 2.3 does not raise on a write to a gone client, so one must listen).
        client = ClientWatch(receive)
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not client.caught():
                raise
            # The cut may have come during a write, with the body paused at a yield: closed
            # now, so the upstream stream is let go at once, not when the generator is
            # collected.
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            client.stop()
        if self.background is not None:
            await self.background()

    async def stream_response(self, send: Send) -> None:
        watch = self.watch
        watch.start()
        try:
            watch.writing()  # the head is a write too: the deadline never cancels a send
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            watch.written()
            async for chunk in self.body_iterator:
                watch.writing()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                watch.written()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.take("client_idle"):
                raise
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            watch.stop()


def _ended(record: RequestRecord, end: End, watch: Watchdog) -> None:
    """What the request's one metric and log line say about how its stream ended."""
    if end.error is not None:
        record.failed(end.error, end.status)
    record.usage = end.usage
    if watch.fired is not None and record.metrics is not None:
        record.metrics.streams_ended.labels(record.route, watch.fired).inc()
    if watch.fired == "client_idle":
        record.disconnected = True
        record.error = "ClientIdle"


def relay_raw(
    outcome: Outcome,
    result: RawStream,
    grammar: StreamGrammar,
    record: RequestRecord,
    headers: dict[str, str],
    idle: float,
) -> Response:
    """A same-dialect stream, relayed as it arrives: well-formed frames byte for byte; a break
    is continued on the chain or ended with the dialect's error event (streaming.py)."""
    watch = Watchdog(outcome.deadline, idle)

    async def body() -> AsyncIterator[bytes]:
        end = End(comments=record.dialect != "gemini", watch=watch)
        try:
            record.first_byte()
            async with aclosing(raw_body(outcome, result, grammar.error_frame, end)) as parts:
                async for out in parts:
                    yield out
        except GatewayError as exc:  # a failure while continuing, past every safety net
            end.fail(exc)
            yield grammar.error_frame(exc)
        except asyncio.CancelledError:
            if not watch.take("deadline"):
                record.disconnected = True  # the client went away mid-stream
                raise
            late = _overrun(outcome)
            result.on_break()
            end.fail(late)
            yield grammar.error_frame(late)
        except GeneratorExit:
            record.disconnected = True
            raise
        finally:
            await _closed(result)
            _ended(record, end, watch)

    return SSEResponse(
        body(), watch, headers=stream_headers(outcome, headers), media_type=result.content_type
    )


def relay_events(
    outcome: Outcome,
    events: EventStream,
    encode: Callable[[c.StreamEvent], bytes],
    record: RequestRecord,
    headers: dict[str, str],
    idle: float,
) -> Response:
    """Canonical events, encoded into the client's dialect as they arrive."""
    watch = Watchdog(outcome.deadline, idle)

    async def body() -> AsyncIterator[bytes]:
        end = End(comments=record.dialect != "gemini", watch=watch)
        try:
            record.first_byte()
            async with aclosing(event_body(outcome, events, encode, end)) as parts:
                async for out in parts:
                    yield out
        except asyncio.CancelledError:
            if not watch.take("deadline"):
                record.disconnected = True  # the client went away mid-stream
                raise
            late = _overrun(outcome)
            events.on_break()
            end.fail(late)
            yield encode(c.Failure(late))
        except GeneratorExit:
            record.disconnected = True
            raise
        finally:
            await _closed(events)
            _ended(record, end, watch)

    return SSEResponse(
        body(), watch, headers=stream_headers(outcome, headers), media_type="text/event-stream"
    )


def _overrun(outcome: Outcome) -> GatewayError:
    log.warning("stream from %s passed its total time; ended", outcome.target.label)
    return overrun(outcome.target.upstream)


def stream_headers(outcome: Outcome, headers: dict[str, str]) -> dict[str, str]:
    out = {**SSE_HEADERS, **headers}
    if outcome.continuer is not None:
        # Sent before anything can break: should it, the answer may be continued by the next
        # target, and its final usage then sums every part.
        out["x-serving-continuation"] = "prefill; usage=summed"
    return out
