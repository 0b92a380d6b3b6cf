"""The upstream contract: send a canonical request, get a response or a stream of canonical
events; forward a same-dialect body untouched; report readiness; close.

The public methods are the boundary: each runs a subclass's hook inside
`map_upstream_errors` (boundary.py), so every failure leaves an upstream client as a
`GatewayError`, whatever raised it; a stream is returned only once its first token has arrived
(within `timeouts.first_token`), so failover can still happen before the client sees a byte,
and its later failures are mapped too.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import AsyncGeneratorType
from typing import Any

from serving.gateway import canonical as c
from serving.gateway.errors import (
    CapabilityMissing,
    ContextWindowExceeded,
    GatewayError,
    NotFound,
    UpstreamAuthFailed,
    UpstreamError,
    from_status,
)
from serving.gateway.frames import Pipeline
from serving.gateway.policy.streams import overrun
from serving.gateway.redaction import redact
from serving.gateway.settings import Upstream as UpstreamConfig
from serving.gateway.upstreams.boundary import (
    map_exception,
    map_upstream_errors,
    mapped_bytes,
    raise_mapped,
)
from serving.gateway.upstreams.http1 import Response
from serving.gateway.upstreams.transport import Transport


@dataclass(slots=True)
class RawCall:
    """A client request in the client's own dialect, for a same-dialect upstream."""

    path: str  # relative to the upstream base URL, e.g. "/chat/completions"
    body: bytes
    parsed: dict[str, Any]
    stream: bool
    query: str = ""  # raw query string without "?", e.g. "alt=sse"
    native_only: bool = False  # no canonical form (e.g. embeddings): same-dialect targets only


@dataclass(slots=True)
class RawResponse:
    status: int
    body: bytes
    content_type: str
    usage: c.Usage = field(default_factory=c.Usage)


class RawStream:
    """Relays upstream bytes as they come; `first` (up to the first token) is already received
    and read by `pipeline`, which reads the rest as it is relayed."""

    def __init__(
        self,
        first: bytes,
        rest: AsyncIterator[bytes],
        response: Response,
        pipeline: Pipeline,
        finish: Callable[[], Awaitable[None]],
    ) -> None:
        self.first = first
        self.rest = rest
        self.response = response
        self.pipeline = pipeline
        self._finish = finish
        self.content_type = response.headers.get("content-type", "text/event-stream")
        # Called when the relay finds the stream broken (a bad frame, no finish); the
        # dispatcher points it at the target's circuit.
        self.on_break: Callable[[], None] = _nothing

    @property
    def spent(self) -> bool:
        """Read to its end and its connection let go: `aclose` would do nothing."""
        return _finished(self.rest) and self.response.at_eof

    async def aclose(self) -> None:
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()
        self.response.close()  # a no-op once the relay has handed the connection back
        await self._finish()  # a no-op once `rest` has ended


def _nothing() -> None:
    return None


def _finished(rest: object) -> bool:
    """Whether `rest` is an async generator that has ended: every layer under it has run its
    `finally` (an outer layer ends only after its inner one did, or after closing it)."""
    return isinstance(rest, AsyncGeneratorType) and rest.ag_frame is None


class EventStream:
    """Canonical events; `first` is already received and is never a Failure. `held`: events
    received with it, before `rest` (what priming read past the first event), until `bound`
    moves them into `rest`; every stream an upstream client returns has been bound, so its
    readers see only `first` and `rest`.

    Once an upstream client returns it, `rest` is `bounded_events`, one layer that replays
    `held`, ends the stream with one `Failure` whatever breaks below, and applies the bound the
    dispatcher sets here: past `deadline` (loop time; None: none) the stream ends with a
    timeout of `total` seconds, and a break after the first event calls `on_break`."""

    __slots__ = ("deadline", "first", "held", "on_break", "rest", "total")

    def __init__(
        self,
        first: c.StreamEvent,
        rest: AsyncIterator[c.StreamEvent],
        held: list[c.StreamEvent] | None = None,
    ) -> None:
        self.first = first
        self.rest = rest
        self.held = held if held is not None else []
        self.on_break: Callable[[], None] = _nothing  # as for RawStream
        self.deadline: float | None = None
        self.total = 0.0

    async def __aiter__(self) -> AsyncIterator[c.StreamEvent]:
        yield self.first
        async for event in self.rest:
            yield event

    @property
    def spent(self) -> bool:
        """Read to its end: `aclose` would do nothing (its connection went with its end)."""
        return _finished(self.rest)

    async def aclose(self) -> None:
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()


def bound(stream: EventStream, upstream: str) -> EventStream:
    """`stream` with its `rest` bounded (`bounded_events`), its `held` events moved into it."""
    held, stream.held = stream.held, []
    stream.rest = bounded_events(stream, held, stream.rest, upstream)
    return stream


async def bounded_events(
    stream: EventStream,
    held: list[c.StreamEvent],
    events: AsyncIterator[c.StreamEvent],
    upstream: str,
) -> AsyncIterator[c.StreamEvent]:
    """`stream`'s events after its first: `held` (held back while priming), then `events`. Any
    failure below, of any kind, ends it with one `Failure` (an upstream error event's text
    redacted), as the boundary maps a call's; a stream past `stream.deadline` ends with a
    timeout `Failure`; after either, `stream.on_break()` tells the target's circuit.

    One async generator for what were three stacked layers (the held events' replay, the
    boundary's mapping, the dispatcher's guard): each layer cost every event of every
    translated stream a resumption."""
    clock = asyncio.get_running_loop().time
    try:
        while True:
            if held:
                event = held.pop(0)
            else:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return
                except Exception as exc:  # noqa: BLE001 - the boundary: every failure ends it
                    event = c.Failure(map_exception(exc, upstream))
                else:
                    if isinstance(event, c.Failure) and isinstance(event.error, GatewayError):
                        event.error.message = redact(event.error.message)  # may quote upstream
            yield event
            if isinstance(event, c.Failure):
                stream.on_break()
                return
            deadline = stream.deadline
            if deadline is not None and clock() > deadline and not isinstance(event, c.Finish):
                stream.on_break()
                yield c.Failure(overrun(upstream, stream.total))
                return
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def is_first_token(event: c.StreamEvent) -> bool:
    """Content, or the finish of an answer without any: what ends a stream's priming."""
    if isinstance(event, c.BlockStart):
        return event.kind == "tool_call"
    return isinstance(event, c.TextDelta | c.ToolArgsDelta | c.Finish)


async def prime(events: AsyncIterator[c.StreamEvent], *, name: str = "") -> EventStream:
    """Wait for the first token (the events before it are held back); an early failure raises
    so the chain can move on. The wait's bound is the source's own (`sse_events`' reads)."""
    held: list[c.StreamEvent] = []
    try:
        while True:
            event = await anext(events)
            if isinstance(event, c.Failure):
                raise event.error
            held.append(event)
            if is_first_token(event):
                break
    except StopAsyncIteration as exc:
        raise UpstreamError(f"upstream {name!r} stream ended before any content") from exc
    except BaseException:
        with contextlib.suppress(RuntimeError):
            await events.aclose()  # type: ignore[attr-defined]
        raise
    return EventStream(held[0], events, held[1:])


class UpstreamClient(abc.ABC):
    """One upstream; subclasses speak one dialect by implementing the `_`-hooks, which the
    public methods run inside the failure boundary."""

    dialect: str = ""

    def __init__(self, config: UpstreamConfig, transport: Transport) -> None:
        self.config = config
        self.name = config.name
        self.locality = config.locality
        self.transport = transport

    def speaks(self, dialect: str) -> bool:
        """Whether a client request of `dialect` is forwarded to this upstream untouched."""
        return dialect == self.dialect

    async def complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse:
        with map_upstream_errors(self.name):
            return await self._complete(req, model)

    async def stream(self, req: c.ChatRequest, model: str) -> EventStream:
        with map_upstream_errors(self.name):
            events = await self._stream(req, model)
        return bound(events, self.name)

    async def continue_stream(self, req: c.ChatRequest, model: str) -> EventStream:
        """Stream the rest of an answer whose start is `req`'s trailing assistant turn."""
        with map_upstream_errors(self.name):
            events = await self._continue_stream(req, model)
        return bound(events, self.name)

    async def forward(self, call: RawCall, model: str) -> RawResponse | RawStream:
        # The boundary of map_upstream_errors, spelled out: this is every same-dialect
        # request's path, and a generator-based context manager costs a few µs per call.
        try:
            result = await self._forward(call, model)
        except Exception as exc:  # noqa: BLE001 - the boundary: every failure is mapped
            raise_mapped(exc, self.name)
        if isinstance(result, RawStream):
            result.rest = mapped_bytes(result.rest, self.name)
        return result

    async def count_tokens(self, req: c.ChatRequest, model: str) -> int:
        """Input tokens of `req` as the target model counts them (chat template included)."""
        with map_upstream_errors(self.name):
            return await self._count_tokens(req, model)

    @abc.abstractmethod
    async def _complete(self, req: c.ChatRequest, model: str) -> c.ChatResponse: ...

    @abc.abstractmethod
    async def _stream(self, req: c.ChatRequest, model: str) -> EventStream: ...

    async def _continue_stream(self, req: c.ChatRequest, model: str) -> EventStream:
        """Continue the answer whose start is `req`'s trailing assistant turn (a prefill); a
        dialect that continues such a turn natively (Anthropic, Gemini) just streams it."""
        return await self._stream(req, model)

    @abc.abstractmethod
    async def _forward(self, call: RawCall, model: str) -> RawResponse | RawStream: ...

    @abc.abstractmethod
    async def ready(self) -> bool: ...

    async def _count_tokens(self, req: c.ChatRequest, model: str) -> int:
        # NotFound: this upstream has no counting endpoint; the chain passes it over.
        raise NotFound(f"upstream {self.name!r} cannot count tokens", upstream=self.name)

    async def aclose(self) -> None:
        await self.transport.aclose()


_CONTEXT_MARKERS = (
    "maximum context length",
    "context_length_exceeded",
    "prompt is too long",
    "context window",
    "too many tokens",
    "exceeds the maximum number of tokens",  # Gemini
)


# vLLM's refusal of `tools`/`tool_choice` when it was started without a tool parser.
_TOOL_MARKERS = ("--enable-auto-tool-choice", "--tool-call-parser")


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    upstream: str,
    secrets: tuple[str, ...] = (),
) -> GatewayError:
    """An upstream's non-2xx answer → the hierarchy, with what the client may see of it.

    Auth and server failures (401/403, 408, 429, 5xx, 409) are the upstream's business with
    the gateway, not the client's: the client gets the gateway's own message naming the
    upstream and the status, never the upstream's text, which may quote the gateway's key or
    its headers. A client-caused 4xx keeps the upstream's message (it says what to fix) with
    `secrets` and anything key-shaped redacted."""
    retry_after = _retry_after(headers)
    sanitised = _sanitised(status, upstream, retry_after)
    if sanitised is not None:
        return sanitised
    message = redact(_error_message(body) or f"HTTP {status}", secrets)
    text = f"upstream {upstream!r}: {message}"
    lowered = message.lower()
    if status == 400 and any(m in lowered for m in _CONTEXT_MARKERS):
        return ContextWindowExceeded(text, upstream=upstream)
    if status in (400, 422) and any(m in lowered for m in _TOOL_MARKERS):
        # vLLM's flag text means nothing to the client: name the capability instead.
        return CapabilityMissing(
            f"the model behind this route does not support tool calling as deployed (upstream"
            f" {upstream!r} was started without a tool-call parser)",
            param="tools",
            upstream=upstream,
        )
    err = from_status(status, text, retry_after=retry_after)
    err.upstream = upstream
    return err


def _sanitised(status: int, upstream: str, retry_after: float | None) -> GatewayError | None:
    """The gateway's own error for an upstream failure the client did not cause, else None."""
    if status in (401, 403):
        return UpstreamAuthFailed(upstream, status)
    if status == 429:
        message = f"upstream {upstream!r} is rate limiting the gateway (HTTP 429)"
    elif status == 529:
        message = f"upstream {upstream!r} is overloaded (HTTP 529)"
    elif status in (408, 504):
        message = f"upstream {upstream!r} timed out (HTTP {status})"
    elif status >= 500 or status == 409:
        message = f"upstream {upstream!r} failed with HTTP {status}"
    else:
        return None
    err = from_status(status, message, retry_after=retry_after)
    err.upstream = upstream
    return err


def _error_message(body: bytes) -> str:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("msg") or err)
        return str(err)
    return str(data)[:200]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            return None
    return None
