"""The body of a streamed answer: relay it, decide whether it finished, and when it breaks
after the client got part of it, continue it on the chain or end it with the dialect's error.

Same-dialect streams are relayed frame by frame through their grammar (frames.py): well-formed
frames go out byte for byte, a malformed frame or an upstream error event breaks the stream
before it, and a stream is complete when its grammar saw the finish and the upstream closed
cleanly; a missing sentinel is then added (`[DONE]`, `message_stop`). Canonical streams are
encoded event by event. Either way a break hands the partial answer to the request's
`Continuer` (policy/continuation.py); a continuation that finishes is announced by an SSE comment
before the finish (the OpenAI and Anthropic SDKs skip comments; google-genai fails on them and
on unknown fields, so Gemini clients only see the `x-serving-continuation` response header):
which target broke and why, who continued, and that the usage adds the parts up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError
from serving.gateway.frames import StreamBroken
from serving.gateway.policy.continuation import Partial, Splice, break_reason, partial_from
from serving.gateway.policy.streams import Watchdog
from serving.gateway.upstreams.base import EventStream, RawStream

if TYPE_CHECKING:
    from serving.gateway.dispatch import Outcome

log = logging.getLogger("serving.gateway.streaming")

Encode = Callable[[c.StreamEvent], bytes]
ErrorFrame = Callable[[Exception], bytes]


@dataclass(slots=True)
class End:
    """How the client's stream ended: the status counted, the error that ended it, and the
    usage known. `comments`: the client's SDK skips SSE comments (google-genai fails on them,
    so Gemini streams get none). `watch`: the stream's timer, whose deadline a continuation
    moves to the whole answer's."""

    status: int = 200
    usage: c.Usage | None = None
    comments: bool = True
    error: Exception | None = None
    watch: Watchdog | None = None

    def fail(self, exc: Exception) -> None:
        self.error = exc
        self.status = exc.status if isinstance(exc, GatewayError) else 502


def _unfinished() -> StreamBroken:
    return StreamBroken("upstream stream ended before it finished", "unfinished")


async def raw_body(
    outcome: Outcome, result: RawStream, error_frame: ErrorFrame, end: End
) -> AsyncGenerator[bytes, None]:
    """A same-dialect stream, relayed as it arrives (`result.first` is already read)."""
    pipeline = result.pipeline
    grammar = pipeline.grammar
    failure: GatewayError | None = None
    yield result.first
    try:
        async for chunk in result.rest:
            out, failure = pipeline.push(chunk)
            if out:
                yield out
            if failure is not None:
                result.on_break()
                break
        else:
            out, failure = pipeline.close()
            if out:
                yield out
    except GatewayError as exc:
        failure = exc  # the dispatcher's guard told the circuit already
    if failure is None and not grammar.finished:
        result.on_break()
        failure = _unfinished()
    if failure is None:
        if not grammar.done and grammar.closing:
            yield grammar.closing  # complete without its sentinel: end it properly
        end.usage = grammar.usage if grammar.usage_seen else None
        return
    await result.aclose()  # free the broken upstream before asking another
    partial = partial_from(grammar)
    encoders: list[Any] = []

    def encode(event: c.StreamEvent) -> bytes:
        # Built only when a continuation is under way: an opaque grammar has no encoder.
        if not encoders:
            encoders.append(grammar.continuation_encoder())
        return bytes(encoders[0].encode(event))

    async with aclosing(resume(outcome, partial, failure, encode, error_frame, end)) as rest:
        async for out in rest:
            yield out


async def event_body(
    outcome: Outcome, events: EventStream, encode: Encode, end: End
) -> AsyncGenerator[bytes, None]:
    """A canonical stream, encoded in the client's dialect event by event."""
    partial = Partial()
    splice = Splice(partial, continuing=False)
    failure: Exception | None = None
    # `first`, then `rest` read directly: `EventStream.__aiter__` would be one more async
    # generator's layer for every event.
    event, source = events.first, events.rest
    while True:
        if isinstance(event, c.Failure):
            failure = event.error
            break
        splice.feed(event)
        if isinstance(event, c.Finish):
            end.usage = event.usage
        out = encode(event)
        if out:  # an event with no frame of its own in this dialect (Gemini's block starts)
            yield out  # is no write: each costs the response's send chain and the watchdog
        try:
            event = await anext(source)
        except StopAsyncIteration:
            break
    if failure is None:
        if partial.finished:
            return
        failure = _unfinished()
    await events.aclose()
    splice.settle()

    def error_frame(exc: Exception) -> bytes:
        return encode(c.Failure(exc))

    async with aclosing(resume(outcome, partial, failure, encode, error_frame, end)) as rest:
        async for out in rest:
            yield out


async def resume(
    outcome: Outcome,
    partial: Partial,
    failure: Exception,
    encode: Encode,
    error_frame: ErrorFrame,
    end: End,
) -> AsyncGenerator[bytes, None]:
    """After a break: continue the answer on the chain, or end the stream with the break."""
    broken = outcome.target.label
    breaks = [*outcome.fallbacks, f"{broken}:{break_reason(failure)}"]
    log.warning("stream from %s broke: %s", broken, failure)
    continuer = outcome.continuer
    while continuer is not None and continuer.possible(partial):
        resumed = await continuer.resume(partial)
        if resumed is None:
            break
        label = resumed.target.label
        if end.watch is not None:
            end.watch.deadline = continuer.deadline
        splice = Splice(partial, continuing=True)
        broke: Exception | None = None
        try:
            async for event in resumed.stream:
                for fitted in splice.fit(event):
                    if isinstance(fitted, c.Failure):
                        broke = fitted.error
                        break
                    if isinstance(fitted, c.Finish):
                        end.usage = fitted.usage
                        if end.comments:
                            yield trailer(breaks, label, fitted.usage, partial.parts + 1)
                    yield encode(fitted)
                if broke is not None or partial.finished:
                    break
        finally:
            await resumed.stream.aclose()
        if partial.finished:
            continuer.succeeded(resumed.target)
            log.info(
                "stream of %s continued on %s after %s", outcome.route.model, label, breaks[-1]
            )
            end.status, end.error = 200, None
            return
        failure = broke or _unfinished()
        splice.settle()
        partial.parts += 1
        breaks.append(f"{label}:{break_reason(failure)}")
        log.warning("continuation on %s broke: %s", label, failure)
    end.fail(failure)
    yield error_frame(failure)


def trailer(breaks: list[str], target: str, usage: c.Usage, parts: int) -> bytes:
    """An SSE comment saying the answer was continued; clients and SDKs skip comments."""
    return (
        f": x-serving-fallback: {','.join(breaks)}\n"
        f": x-serving-target: {target}\n"
        f": x-serving-usage: summed over {parts} parts (input {usage.input_tokens},"
        f" output {usage.output_tokens}; the broken parts' output estimated from their deltas"
        " where they did not report it)\n\n"
    ).encode()
