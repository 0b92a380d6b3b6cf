"""HTTP plumbing every upstream client shares: the endpoint pool, the first-byte, first-token and
total timeouts, error mapping at the boundary, SSE decoding into canonical events, and the byte
relay for same-dialect streams (both through the frame pipeline, frames.py).

A dialect's client only says which headers authenticate it, which paths it posts to and how its
bodies translate; everything that can fail on the wire fails here, as a `GatewayError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from serving.gateway import canonical as c
from serving.gateway.admission import UpstreamGate
from serving.gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from serving.gateway.frames import FrameReader, Grammar, OpaqueGrammar, Pipeline, StreamBroken
from serving.gateway.jsoncodec import dumpb, loads
from serving.gateway.settings import Upstream as UpstreamConfig
from serving.gateway.upstreams.base import (
    EventStream,
    RawCall,
    RawResponse,
    RawStream,
    UpstreamClient,
    error_from_response,
    is_first_token,
    prime,
)
from serving.gateway.upstreams.boundary import CONNECT_ERRORS, map_transport_error
from serving.gateway.upstreams.health import PoolHealth
from serving.gateway.upstreams.http1 import ReadTimeout, Response, TransportError
from serving.gateway.upstreams.transport import Transport

_PROBE_TIMEOUT = 2.0
_SETTLE = 0.5  # seconds a stream's end may take after its [DONE]


class StreamDecoder(Protocol):
    """A dialect's upstream stream decoder: one parsed `data:` object in, canonical events out."""

    def feed(self, data: dict[str, Any]) -> list[c.StreamEvent]: ...

    def done(self) -> list[c.StreamEvent]: ...


class HTTPUpstream(UpstreamClient):
    """A pool of one or more endpoints of one upstream.

    Each request goes to the endpoint with the fewest requests in flight (least outstanding
    requests), which keeps a slow engine from queueing more work.
    """

    def __init__(self, config: UpstreamConfig, transport: Transport) -> None:
        super().__init__(config, transport)
        self._urls = config.urls
        key = config.api_key()
        self._headers = self.auth_headers(key)
        self._post_headers = {**self._headers, "content-type": "application/json"}
        self._secrets = (key,) if key else ()  # masked in any upstream error text
        self._timeouts = config.timeouts
        self.health: PoolHealth | None = None  # set by the gateway when the pool is checked
        # Admission slots per endpoint; the gateway rebuilds it with its metrics.
        self.gate = UpstreamGate(self.name, len(self._urls), config.limits, None, self.health_flags)
        self.probe: Transport | None = None  # readiness probes' own connections

    def health_flags(self) -> list[bool] | None:
        return self.health.healthy if self.health is not None else None

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """Headers sent on every request; the default is a bearer token when a key is set."""
        return {"authorization": f"Bearer {key}"} if key else {}

    async def _post(
        self, url_path: str, body: bytes, root: bool, deadline: float | None = None
    ) -> tuple[int, Response]:
        """POST, once an endpoint's slot is ours: the slot and the response once its headers
        arrived and its status is 2xx. Both go back with `_done`, which a failure here has
        already called. The head is awaited within `timeouts.first_byte` and, with
        `deadline` (loop time: the whole call's), not past it.

        `url_path` is relative to the base URL, or to the server root when `root` is set (vLLM
        serves /tokenize beside /v1, not under it).
        """
        i = await self.gate.acquire()  # may wait in the queue, or raise Saturated
        response: Response | None = None
        try:
            base = self._urls[i].removesuffix("/v1") if root else self._urls[i]
            wait = self._timeouts.first_byte
            total = False  # whether the deadline, not the first-byte bound, is the nearer
            if deadline is not None:
                left = deadline - asyncio.get_running_loop().time()
                if left < wait:
                    wait, total = max(left, 0.0), True
            try:
                response = await self.transport.post(
                    base + url_path, body, self._post_headers, first_byte=wait
                )
            except ReadTimeout as exc:
                said = "timed out" if total else f"sent no response within {wait:g}s"
                raise UpstreamTimeout(f"upstream {self.name!r} {said}", upstream=self.name) from exc
            except TransportError as exc:
                if self.health is not None and isinstance(exc, CONNECT_ERRORS):
                    self.health.connection_failed(i)
                raise map_transport_error(exc, self.name) from exc
            if response.status >= 300:
                raw = await self._read(response, deadline)
                raise error_from_response(
                    response.status, raw, response.headers, self.name, self._secrets
                )
        except BaseException:
            self._done(i, response)
            raise
        return i, response

    def _done(self, i: int, response: Response | None) -> None:
        try:
            if response is not None:
                response.release()
        finally:
            self.gate.release(i)

    async def _read(self, response: Response, deadline: float | None = None) -> bytes:
        try:
            return await response.read(deadline)
        except TransportError as exc:  # a read timeout, the deadline's included: "timed out"
            raise map_transport_error(exc, self.name) from exc

    async def post_json(
        self, url_path: str, body: bytes, *, root: bool = False
    ) -> tuple[bytes, dict[str, Any], str]:
        """POST a JSON body; the raw answer, its parsed object and its content type. The whole
        call is bounded by `timeouts.total` from its start: a deadline that the head's and the
        reads' own timers enforce (a queue wait for a slot keeps its own bound), where an
        `asyncio.timeout` cost a timer, a cancellation scope and their bookkeeping per call."""
        # `_post` and `_done` in try/finally: no context manager's generator per call.
        deadline = asyncio.get_running_loop().time() + self._timeouts.total
        i, response = await self._post(url_path, body, root, deadline)
        try:
            raw = await self._read(response, deadline)
            ctype = response.headers.get("content-type", "")
        finally:
            self._done(i, response)
        if "json" not in ctype:
            raise UpstreamError(f"upstream {self.name!r} answered with content type {ctype!r}")
        try:
            parsed = loads(raw)
        except ValueError as exc:
            raise UpstreamError(f"upstream {self.name!r} sent malformed JSON") from exc
        if not isinstance(parsed, dict):
            raise UpstreamError(f"upstream {self.name!r} sent JSON that is not an object")
        return raw, parsed, ctype

    async def sse_events(
        self, url_path: str, body: bytes, decoder: StreamDecoder
    ) -> AsyncIterator[c.StreamEvent]:
        """Canonical events from an upstream SSE stream; a break becomes a final `Failure`.
        Until the first token, no read ends later than `timeouts.first_token` after the call's
        start, on the reads' own timers (as `forward_stream`'s). The connection's reads and
        the frames are plain calls: no generator layers under this one."""
        limit = self._timeouts.first_token_limit
        deadline: float | None = asyncio.get_running_loop().time() + limit
        try:
            i, response = await self._post(url_path, body, False)
        except GatewayError as exc:
            yield c.Failure(exc)
            return
        failure: GatewayError | None = None
        reader = FrameReader()
        try:
            check_stream_type(response, self.name)
            ended = False
            while not ended:
                chunk = await self._next_chunk(response, deadline, limit)
                ended = chunk is None
                for frame in reader.close() if chunk is None else reader.feed(chunk):
                    if frame.data == b"[DONE]":
                        await _settle(response)
                        ended = True
                        break
                    for event in decoder.feed(decode_data(frame.data)):
                        if deadline is not None and is_first_token(event):
                            deadline = None
                        yield event
                        if isinstance(event, c.Failure):
                            return
        except GatewayError as exc:
            failure = exc
        finally:
            self._done(i, response)
        if failure is not None:
            yield c.Failure(failure)
            return
        for event in decoder.done():
            yield event

    async def primed(self, events: AsyncIterator[c.StreamEvent]) -> EventStream:
        """A canonical stream once its first token arrived (`sse_events` bounds the wait)."""
        return await prime(events, name=self.name)

    async def _next_chunk(
        self, response: Response, deadline: float | None, limit: float
    ) -> bytes | None:
        """A stream's next piece (None at its end); while `deadline` (loop time) is set, the
        first token's, not later than it."""
        left: float | None = None
        try:
            if deadline is None:
                return await response.next_chunk()
            left = deadline - asyncio.get_running_loop().time()
            return await response.next_chunk(left)
        except ReadTimeout as exc:
            read = response.read_timeout
            if left is not None and (read is None or left <= read):  # the first token's bound
                raise UpstreamTimeout(
                    f"upstream {self.name!r} sent no first token within {limit:g}s",
                    upstream=self.name,
                ) from exc
            raise map_transport_error(exc, self.name) from exc
        except TransportError as exc:
            raise map_transport_error(exc, self.name) from exc

    async def forward_stream(self, url_path: str, body: bytes, grammar: Grammar) -> RawStream:
        """Relay a same-dialect stream byte for byte, once its first token has arrived (within
        `timeouts.first_token` of the request's start); what came before it is held back, so
        a stream that stalls, breaks or is garbled before its first token can still fail over."""
        limit = self._timeouts.first_token_limit
        deadline = asyncio.get_running_loop().time() + limit
        i, response = await self._post(url_path, body, False)
        pipeline = Pipeline(grammar, self._secrets)
        try:
            check_stream_type(response, self.name)
            first = await self._first_token(response, pipeline, deadline, limit)
        except BaseException:
            self._done(i, response)
            raise

        done = False

        async def finish() -> None:
            """Release the connection and the upstream's slot, once: from the end of `rest`,
            or from `RawStream.aclose` when `rest` never started (an async generator closed
            before its first step skips its `finally`)."""
            nonlocal done
            if not done:
                done = True
                self._done(i, response)

        async def rest() -> AsyncIterator[bytes]:
            # The connection's reads directly, not through `response.chunks()`: one async
            # generator's layer less for every chunk of every relayed stream.
            try:
                while (chunk := await response.next_chunk()) is not None:
                    yield chunk
            except TransportError as exc:
                raise map_transport_error(exc, self.name) from exc
            finally:
                await finish()

        return RawStream(first, rest(), response, pipeline, finish)

    async def _first_token(
        self, response: Response, pipeline: Pipeline, deadline: float, limit: float
    ) -> bytes:
        """The stream's bytes up to and including its first content (or its finish), none of
        them later than `deadline` (loop time): each read's own timer enforces it, where an
        `asyncio.timeout` cost a timer and a cancellation scope per stream."""
        grammar = pipeline.grammar
        held: list[bytes] = []
        while (chunk := await self._next_chunk(response, deadline, limit)) is not None:
            out, failure = pipeline.push(chunk)
            if failure is not None:
                raise failure
            held.append(out)
            if grammar.content or grammar.finished:
                return b"".join(held)
        out, failure = pipeline.close()
        if failure is not None:
            raise failure
        if not grammar.finished:
            raise UpstreamError(f"upstream {self.name!r} stream ended before any content")
        return b"".join(held) + out

    async def relay(
        self, url_path: str, body: bytes, stream: bool, grammar: Grammar | None = None
    ) -> RawResponse | RawStream:
        """A same-dialect call: the answer's bytes, or its stream, as the upstream sent them
        (read by `grammar`, the dialect's; an endpoint without one is relayed opaquely)."""
        if not stream:
            raw, parsed, ctype = await self.post_json(url_path, body)
            if not self.answer_ok(url_path, parsed):
                raise UpstreamError(
                    f"upstream {self.name!r} answered {url_path} in an unexpected shape",
                    reason="shape",
                    upstream=self.name,
                )
            return RawResponse(200, raw, ctype, self.usage_of(parsed))
        return await self.forward_stream(url_path, body, grammar or OpaqueGrammar())

    def answer_ok(self, url_path: str, body: dict[str, Any]) -> bool:
        """Whether a same-dialect answer has its endpoint's shape: a few key lookups, so a
        garbled answer fails over instead of reaching the client. Dialects override it."""
        return True

    def usage_of(self, body: dict[str, Any]) -> c.Usage:
        """Token usage in a same-dialect answer body (for metrics); dialects override it."""
        return c.Usage()

    def int_field(self, body: dict[str, Any], key: str, what: str) -> int:
        """An integer the upstream must answer with, e.g. a token count."""
        value = body.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise UpstreamError(f"upstream {self.name!r} answered {what} without {key!r}")
        return value

    async def get_ok(self, url: str) -> bool:
        """Readiness probe: a GET that answers 2xx within two seconds."""
        return await (self.probe or self.transport).get_ok(url, self._headers, _PROBE_TIMEOUT)


def with_model(call: RawCall, model: str) -> bytes:
    """The client's body, byte for byte unless the target's model name differs."""
    if call.parsed.get("model") == model:
        return call.body
    return dumpb({**call.parsed, "model": model})


async def _settle(response: Response) -> None:
    """Read what follows a stream's `[DONE]`, normally only its body's end (often in the next
    packet), so the connection goes back to the pool: dropped, it costs a later request a new
    connection. An upstream that sends on is left to `_done`'s close after `_SETTLE` seconds."""
    clock = asyncio.get_running_loop().time
    end = clock() + _SETTLE
    try:
        while not response.at_eof and clock() < end:
            if await response.next_chunk(end - clock()) is None:
                return
    except TransportError:
        return  # `_done` closes it


def check_stream_type(response: Response, name: str) -> None:
    ctype = response.headers.get("content-type", "")
    if "text/event-stream" not in ctype:
        raise UpstreamError(f"upstream {name!r} answered a stream request with {ctype!r}")


def decode_data(data: bytes) -> dict[str, Any]:
    try:
        obj = loads(data)
    except ValueError as exc:
        raise StreamBroken(
            f"upstream sent malformed stream data: {data[:80]!r}", "malformed"
        ) from exc
    if not isinstance(obj, dict):
        raise StreamBroken("upstream sent a stream chunk that is not an object", "malformed")
    return obj
