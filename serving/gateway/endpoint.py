"""The endpoint runner: one request life for every dialect's generation and counting routes.

A dialect supplies a small `Dialect` adapter (its name, stream grammar and error renderer) and,
per route, a parse function: validated wire model → `Exchange` (the canonical request, built
eagerly so a translation error is the client's 400 before any attempt, plus how to render a
whole answer and encode a stream in the client's dialect). A parse may be a coroutine (the
Responses dialect reads the conversation so far from its store). The runner does the rest, the
same way for all of them:

    authenticate → read the body → parse → dispatch (cancelled if the client goes away)
                 → render: relay bytes, encode events, or render a canonical answer

A stateful dialect adds a `Keeper` to its exchange: told which target served, it sees every
answer before its last byte leaves (Responses `store`), so a client's next turn can never
arrive before the previous one is kept.

and fills in the request's `RequestRecord`, which the lifecycle middleware turns into exactly
one metric and one access-log line however the request ends. Errors are raised as
`GatewayError`s and rendered once, by the app's per-dialect handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from serving.gateway import canonical as c
from serving.gateway.deps import authenticate, invalid, read_json
from serving.gateway.disconnect import ClientWatch
from serving.gateway.errors import ClientClosed, GatewayError, InvalidRequest, NotFound
from serving.gateway.lifecycle import RequestRecord, record_of
from serving.gateway.relay import (
    StreamGrammar,
    json_response,
    outcome_headers,
    relay_events,
    relay_raw,
)
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream

if TYPE_CHECKING:
    from serving.gateway.dispatch import Outcome
    from serving.gateway.policy.caller import Caller
    from serving.gateway.runtime import Gateway

log = logging.getLogger("serving.gateway.endpoint")

COUNT_HEADER = "x-serving-token-count"  # "estimated" when no target of the route could count

T = TypeVar("T")
Encoder = Callable[[c.StreamEvent], bytes]


@dataclass(frozen=True, slots=True)
class DialectAdapter:
    """What a client dialect contributes to every one of its routes."""

    name: str
    grammar: StreamGrammar  # how its streams finish, break, and report usage
    render_error: Callable[[GatewayError, str], Response]  # its error envelope (+ request id)


class Keeper(Protocol):
    """A stateful dialect's part in the answer. The runner calls `served` first, then exactly
    one of the others, for the kind of answer the target gave."""

    def served(self, outcome: Outcome, headers: dict[str, str]) -> None:
        """Who served (and whether privately); may add response headers."""

    async def kept_raw(self, result: RawResponse, headers: dict[str, str]) -> None:
        """A same-dialect whole answer, before it is sent."""

    async def kept(self, body: Any, headers: dict[str, str]) -> None:
        """A rendered canonical answer (the client's JSON body), before it is sent."""

    async def relayed(self, stream: RawStream) -> StreamGrammar | None:
        """A same-dialect stream: wrap `stream.rest` to see its end; the grammar for this
        stream when it differs from the dialect's."""

    def encoded(self, stream: EventStream) -> None:
        """A canonical stream: wrap `stream.rest` (called after `encoder()`)."""


@dataclass(slots=True)
class Exchange:
    """A generation request, parsed and translated before any attempt."""

    model: str  # the name the client asked for (a route name or alias)
    call: RawCall  # the client's own body, for a same-dialect upstream
    # the canonical form, or why there is none (then only same-dialect targets can serve it)
    request: c.ChatRequest | InvalidRequest
    render: Callable[[c.ChatResponse], Any]  # a whole canonical answer → the client's JSON body
    encoder: Callable[[], Encoder]  # a fresh encoder of canonical events → the client's SSE
    # response headers that depend on who served (e.g. what a translation could not carry)
    notes: Callable[[Outcome], Mapping[str, str]] | None = None
    keeper: Keeper | None = None
    private: str | None = None  # why the body makes the request private (as the caller's mark)


@dataclass(slots=True)
class CountExchange:
    """A token-counting request, parsed and translated."""

    model: str
    call: RawCall
    request: c.ChatRequest
    render: Callable[[int], Any]  # the count → the client's JSON body


Parse = Callable[[bytes, dict[str, Any]], T | Awaitable[T]]


async def parse_client(parse: Parse[T], body: bytes, parsed: dict[str, Any]) -> T:
    """Run a dialect's parse: anything it raises was caused by the client's input, so it is the
    client's 400 (logged with its traceback when it is not one of ours: that is a bug)."""
    try:
        done = parse(body, parsed)
        if inspect.isawaitable(done):
            return await done
        return done
    except GatewayError:
        raise
    except ValidationError as exc:  # a nested model validated during translation
        raise invalid(exc) from exc
    except RecursionError as exc:
        raise InvalidRequest("request body is nested too deeply") from exc
    except Exception as exc:
        log.warning("parsing a client request raised %s", type(exc).__name__, exc_info=exc)
        raise InvalidRequest(f"request could not be read: {type(exc).__name__}: {exc}") from exc


def translated(build: Callable[[], c.ChatRequest]) -> c.ChatRequest | InvalidRequest:
    """The canonical request, built now; a request other dialects cannot express (`n > 1`) is
    kept for same-dialect targets, its reason returned for the dispatcher to raise if no
    same-dialect target serves."""
    try:
        return build()
    except InvalidRequest as exc:
        return exc


async def generate(request: Request, dialect: DialectAdapter, parse: Parse[Exchange]) -> Response:
    record = record_of(request)
    gateway, caller = authenticate(request)
    body, parsed = await read_json(request, gateway.settings.server.max_body_bytes)
    ex = await parse_client(parse, body, parsed)
    record.stream = ex.call.stream
    _route_label(record, gateway.dispatcher.route, ex.model)
    if ex.private is not None and caller.private is None:
        caller = dataclasses.replace(caller, private=ex.private)
    await gateway.admit(caller, ex.model)
    work = gateway.dispatcher.dispatch(dialect.name, ex.model, ex.call, ex.request, caller)
    outcome = await until_disconnected(request, record, work)
    record.served_by(outcome)
    headers = outcome_headers(outcome)
    if ex.notes is not None:
        headers.update(ex.notes(outcome))
    keeper = ex.keeper
    if keeper is not None:
        keeper.served(outcome, headers)
    result = outcome.result
    if isinstance(result, RawStream | EventStream):
        idle = gateway.settings.server.client_idle
        if isinstance(result, RawStream):
            kept = await keeper.relayed(result) if keeper is not None else None
            grammar = kept or dialect.grammar
            response = relay_raw(outcome, result, grammar, record, headers, idle)
        else:
            encode = ex.encoder()
            if keeper is not None:
                keeper.encoded(result)
            response = relay_events(outcome, result, encode, record, headers, idle)
        if caller.key is not None and caller.key.limited:
            # A stream's usage is known once it has ended: counted after the last byte.
            response.background = BackgroundTask(_settle_stream, gateway, caller, outcome, record)
        return response
    record.usage = result.usage
    # Counted before the answer leaves, so the key's next request already sees it.
    await gateway.settle(caller, outcome, result.usage)
    if isinstance(result, RawResponse):
        if keeper is not None:
            await keeper.kept_raw(result, headers)
        return Response(result.body, result.status, headers=headers, media_type=result.content_type)
    body_out = ex.render(result)
    if keeper is not None:
        await keeper.kept(body_out, headers)
    return json_response(body_out, headers=headers)


async def _settle_stream(
    gateway: Gateway, caller: Caller, outcome: Outcome, record: RequestRecord
) -> None:
    if record.status is None or record.status < 400:
        await gateway.settle(caller, outcome, record.usage)


async def count(request: Request, parse: Parse[CountExchange]) -> Response:
    record = record_of(request)
    gateway, caller = authenticate(request)
    body, parsed = await read_json(request, gateway.settings.server.max_body_bytes)
    ex = await parse_client(parse, body, parsed)
    _route_label(record, gateway.dispatcher.route, ex.model)
    await gateway.admit(caller, ex.model)
    work = gateway.dispatcher.count(ex.model, ex.call, ex.request, caller)
    counted = await until_disconnected(request, record, work)
    if counted.target is not None:
        record.target = f"{counted.target.upstream}/{counted.target.model}"
    record.fallbacks = counted.fallbacks
    headers = {COUNT_HEADER: "estimated"} if counted.target is None else None
    return json_response(ex.render(counted.tokens), headers=headers)


def _route_label(record: RequestRecord, route: Callable[[str], Any], model: str) -> None:
    """The configured route name for metrics, known before dispatch (an unknown model stays
    "unknown"; dispatch raises its 404)."""
    # try/except, not contextlib.suppress: this runs on every request and suppress's
    # context manager costs more than the lookup it guards.
    try:  # noqa: SIM105
        record.route = route(model).model
    except NotFound:
        pass


async def until_disconnected(request: Request, record: RequestRecord, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it when the client goes away first: the upstream call is
    abandoned (its connection closed) instead of running on for nobody. A stream, once
    returned, is watched by its response instead (relay.SSEResponse)."""
    watch = ClientWatch(request.receive)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.caught():
            raise
        record.disconnected = True
        raise ClientClosed("the client closed the connection before the answer") from None
    finally:
        watch.stop()
