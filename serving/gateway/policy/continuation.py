"""Mid-stream continuation: when a stream breaks after the client got part of the answer, ask
the next capable target of the chain to continue it from where it stopped.

The continuation request is the original request plus the partial answer as a trailing
assistant turn (prefill). Each upstream client renders that its own way: vLLM gets
`continue_final_message: true` and `add_generation_prompt: false`, Anthropic Messages a trailing
assistant message, Gemini a trailing `model` turn. The continuation's canonical events are then
fitted into the client's stream (`Splice`): no second start, dense block indices, the open text
block carried on, one finish whose usage adds both parts up.

Bounded: the route's `continuation.max_continuations`, a total deadline for the whole answer,
never after a tool call started (its arguments cannot be resumed mid-way), and only on targets
whose `continuation` is `prefill`. A continuation that fails, or that a target rejects (a 400
about prefill), is never shown to the client: the client gets the original break instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError, UpstreamTimeout
from serving.gateway.frames import Grammar, StreamBroken
from serving.gateway.metrics import Metrics
from serving.gateway.policy.circuit import Circuits
from serving.gateway.policy.fallback import classify, counts_against_circuit
from serving.gateway.settings import Route, Settings, Target
from serving.gateway.upstreams.base import EventStream, UpstreamClient
from serving.gateway.upstreams.health import PoolHealth

log = logging.getLogger("serving.gateway.continuation")

Mode = Literal["prefill", "none"]


def break_reason(exc: Exception) -> str:
    """The break as named in `x-serving-fallback`: stream_cut, stream_stalled, ..."""
    if isinstance(exc, StreamBroken):
        return f"stream_{exc.kind}"
    if isinstance(exc, UpstreamTimeout):
        return "stream_stalled"
    return "stream_cut"


def mode_of(target: Target, settings: Settings) -> Mode:
    """A target's declared `continuation`, else its dialect's default: Anthropic and Gemini
    continue a trailing assistant/model turn; of the OpenAI dialect only local engines do
    (vLLM's `continue_final_message`): hosted OpenAI has no prefill."""
    if target.continuation is not None:
        return target.continuation
    upstream = settings.upstream(target.upstream)
    if upstream.dialect == "openai" and upstream.locality == "hosted":
        return "none"
    return "prefill"


def continuation_request(
    req: c.ChatRequest, prefix: str, produced: int, budget: int | None = None
) -> c.ChatRequest:
    """The original request with the partial answer as the assistant's unfinished turn.

    Trailing whitespace is left out of the prefill (Anthropic rejects it, and it tokenizes
    badly); the splice drops the continuation's leading whitespace to match. The output budget
    (`budget`: the target's, when routing lowered it to fit its window) shrinks by what the
    broken part already produced."""
    messages = [*req.messages, c.Message("assistant", [c.Text(prefix.rstrip())])]
    sampling = req.sampling
    limit = sampling.max_tokens if budget is None else budget
    if limit is not None:
        sampling = replace(sampling, max_tokens=max(1, limit - produced))
    return replace(req, messages=messages, sampling=sampling, stream=True)


@dataclass(slots=True)
class Partial:
    """What the client has received of the answer so far (the parts before the current one)."""

    text: list[str] = field(default_factory=list)  # every part's text, the current one too
    content: int = 0  # content deltas (an estimate of output tokens when none were reported)
    tool_open: bool = False  # a tool call (or anything but text) started: not continued
    finished: bool = False
    next_index: int = 0  # the next dense block index
    open_text: int | None = None  # the text block still open
    input_tokens: int = 0
    output_tokens: int = 0  # as reported by the broken parts (often nothing)
    parts: int = 1

    @property
    def prefix(self) -> str:
        return "".join(self.text)

    def continuable(self) -> bool:
        return not self.tool_open and not self.finished and bool(self.prefix.strip())

    def output_estimate(self) -> int:
        return max(self.output_tokens, self.content)


def partial_from(grammar: Grammar) -> Partial:
    """The partial answer of a relayed (same-dialect) stream, as its grammar read it."""
    usage = grammar.usage
    return Partial(
        text=list(grammar.text),
        content=grammar.content,
        tool_open=grammar.tool_open,
        finished=grammar.finished,
        next_index=grammar.blocks,
        open_text=grammar.open_text,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens if grammar.usage_seen else 0,
    )


class Splice:
    """Canonical events of one part of the answer → events that fit the client's stream.

    The first part passes through as it is (and is only watched); a continuation loses its
    `Start`, has its block indices moved on densely, its first text block merged into the one
    left open, and its finish's usage summed with the parts before it."""

    __slots__ = ("_content", "_first", "_input", "_map", "_strip", "partial")

    def __init__(self, partial: Partial, *, continuing: bool) -> None:
        self.partial = partial
        self._first = not continuing
        self._map: dict[int, int] = {}
        self._strip = continuing
        self._input = 0  # this part's input tokens, from its start
        self._content = 0

    def feed(self, event: c.StreamEvent) -> c.StreamEvent | None:
        """One event of the first part (returned as it is, watched)."""
        p = self.partial
        if isinstance(event, c.TextDelta):
            p.text.append(event.text)
            self._content += 1
        elif isinstance(event, c.ToolArgsDelta):
            self._content += 1
            p.tool_open = True
        elif isinstance(event, c.BlockStart):
            p.next_index = event.index + 1
            if event.kind == "text":
                p.open_text = event.index
            else:
                p.open_text = None
                p.tool_open = True
        elif isinstance(event, c.BlockStop):
            if p.open_text == event.index:
                p.open_text = None
        elif isinstance(event, c.Start):
            self._input = event.input_tokens
        elif isinstance(event, c.Finish):
            p.finished = True
        return event

    def fit(self, event: c.StreamEvent) -> list[c.StreamEvent]:
        """One event of a continuation, fitted to the stream relayed so far."""
        p = self.partial
        if isinstance(event, c.TextDelta):
            text = event.text
            if self._strip:
                text = text.lstrip()
                if not text:
                    return []
                self._strip = False
            p.text.append(text)
            self._content += 1
            return [c.TextDelta(self._map.get(event.index, event.index), text)]
        if isinstance(event, c.BlockStart):
            if event.kind == "text" and p.open_text is not None:
                self._map[event.index] = p.open_text  # carried on in the open block
                return []
            out: list[c.StreamEvent] = self._close_open()
            index = self._map[event.index] = p.next_index
            p.next_index = index + 1
            if event.kind == "text":
                p.open_text = index
            else:
                p.tool_open = True
            return [*out, replace(event, index=index)]
        if isinstance(event, c.ToolArgsDelta):
            self._content += 1
            return [c.ToolArgsDelta(self._map.get(event.index, event.index), event.fragment)]
        if isinstance(event, c.BlockStop):
            index = self._map.get(event.index, event.index)
            if p.open_text == index:
                p.open_text = None
            return [c.BlockStop(index)]
        if isinstance(event, c.Start):
            self._input = event.input_tokens
            return []
        if isinstance(event, c.Finish):
            p.finished = True
            usage = event.usage
            total = c.Usage(
                p.input_tokens + (usage.input_tokens or self._input),
                p.output_estimate() + usage.output_tokens,
                usage.cached_input_tokens,
            )
            return [*self._close_open(), c.Finish(event.stop, total)]
        return [event]  # a Failure: the caller decides

    def _close_open(self) -> list[c.StreamEvent]:
        p = self.partial
        if p.open_text is None:
            return []
        index, p.open_text = p.open_text, None
        return [c.BlockStop(index)]

    def settle(self) -> Partial:
        """The part broke: count what it produced into the partial answer."""
        p = self.partial
        p.content += self._content
        p.input_tokens += self._input
        self._content = self._input = 0
        return p


@dataclass(slots=True)
class Resumed:
    stream: EventStream
    target: Target


class Continuer:
    """The rest of a request's chain, ready to continue its stream if it breaks."""

    def __init__(
        self,
        route: Route,
        targets: list[Target],
        *,
        request: c.ChatRequest,
        budgets: Mapping[str, int],
        settings: Settings,
        upstreams: Mapping[str, UpstreamClient],
        circuits: Circuits,
        health: Mapping[str, PoolHealth],
        metrics: Metrics,
        deadline: float,
    ) -> None:
        self.route = route
        self._targets = [t for t in targets if mode_of(t, settings) == "prefill"]
        self._request = request
        self._budgets = budgets
        self._settings = settings
        self._upstreams = upstreams
        self._circuits = circuits
        self._health = health
        self._metrics = metrics
        self.deadline = deadline  # for the whole answer, continuations included (loop time)
        self._left = route.continuation.max_continuations

    def possible(self, partial: Partial) -> bool:
        return bool(self._targets) and self._left > 0 and partial.continuable()

    async def resume(self, partial: Partial) -> Resumed | None:
        """A primed continuation stream from the next target that takes one, or None."""
        if not self.possible(partial):
            return None
        loop = asyncio.get_running_loop()
        self._left -= 1
        while self._targets:
            target = self._targets.pop(0)
            budget = self._budgets.get(target.label)
            req = continuation_request(self._request, partial.prefix, partial.content, budget)
            left = self.deadline - loop.time()
            if left <= 0:
                log.debug("route %s: no continuation, answer deadline passed", self.route.model)
                return None
            pool = self._health.get(target.upstream)
            breaker = self._circuits[target.label]
            if (pool is not None and not pool.any_healthy()) or not breaker.allow():
                continue
            self._metrics.continuations_attempted.labels(self.route.model, target.label).inc()
            try:
                async with asyncio.timeout(left):
                    stream = await self._upstreams[target.upstream].continue_stream(
                        req, target.model
                    )
            except (GatewayError, TimeoutError) as exc:
                reason = classify(exc) if isinstance(exc, GatewayError) else "timeout"
                if counts_against_circuit(reason):
                    breaker.record(failed=True)
                else:
                    breaker.release()  # e.g. the target rejects prefill: not its fault
                log.info(
                    "route %s: continuation on %s failed (%s): %s",
                    self.route.model,
                    target.label,
                    reason,
                    exc,
                )
                continue
            breaker.record(failed=False)

            def broke(label: str = target.label) -> None:
                self._circuits[label].record(failed=True)

            # Bounded by its `rest` (upstreams/base.bounded_events), as the dispatcher's.
            stream.on_break = broke
            stream.deadline = self.deadline
            stream.total = self._settings.upstream(target.upstream).timeouts.total
            return Resumed(stream, target)
        return None

    def succeeded(self, target: Target) -> None:
        self._metrics.continuations_succeeded.labels(self.route.model, target.label).inc()
