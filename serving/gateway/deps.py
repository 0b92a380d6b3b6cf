"""Reading a request: who is calling (authentication, caller facts) and its JSON body."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from serving.gateway.errors import AuthenticationFailed, InvalidRequest, RequestTooLarge
from serving.gateway.lifecycle import SCOPE_KEY, RequestRecord
from serving.gateway.policy.caller import Caller, presented_key
from serving.gateway.policy.hints import read_hints
from serving.gateway.runtime import Gateway

M = TypeVar("M", bound=BaseModel)


def authenticate(request: Request) -> tuple[Gateway, Caller]:
    """The app's gateway once the caller's key is accepted, and what the transport says about
    the caller: the matched key's policy, and whether the request is marked private (a
    header, or a key whose policy makes its requests private)."""
    gateway: Gateway = request.app.state.gateway
    headers = first_values(request.scope["headers"])
    policy = None
    if len(gateway.keys):
        key = presented_key(headers, request.scope.get("query_string", b""))
        policy = gateway.keys.find(key)
        if policy is None:
            raise AuthenticationFailed("invalid or missing API key")
        record: RequestRecord | None = request.scope.get(SCOPE_KEY)
        if record is not None:
            record.key = policy.id
    private = policy is not None and policy.private
    defaults = policy.route_hints if policy is not None else None
    hints = read_hints(headers, gateway.settings.routing, defaults)
    marked = gateway.dispatcher.privacy.marked(headers, private)
    return gateway, Caller(marked, policy, hints)


def first_values(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers by name, each name's first value, as Starlette's `Headers.get`
    answers (ASGI names are lowercase). Built once: each `Headers.get` scans the whole list,
    and authentication asks for five or six names."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(raw)}


def get_gateway(request: Request) -> Gateway:
    return authenticate(request)[0]


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
# The gateway and the accepted caller, for routes whose answer depends on the key's policy.
CallerDep = Annotated[tuple[Gateway, Caller], Depends(authenticate)]


async def read_json(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    """The raw body (kept for pass-through) and its parsed JSON object. Anything a client can
    send that is not a JSON object of valid Unicode is its 400 here, before any other work."""
    body = await read_body(request, limit)
    try:
        # The standard library, not orjson: its RecursionError is what bounds a body's nesting
        # for everything after it (orjson reads 1,000 levels that later walks cannot).
        parsed = json.loads(body)
    except RecursionError as exc:
        raise InvalidRequest("request body is nested too deeply") from exc
    except ValueError as exc:  # UnicodeDecodeError included: the body is not UTF-8
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("request body must be a JSON object")
    if b"\\u" in body:
        _refuse_lone_surrogates(parsed)
    return body, parsed


async def read_body(request: Request, limit: int) -> bytes:
    """The body, never more than `limit` bytes of it in memory: a declared `Content-Length`
    over the limit is refused before a byte is read, and a chunked (or lying) body is refused
    as soon as what arrived passes the limit; the rest is never read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest(f"Content-Length is not a number: {declared[:40]!r}") from None
        if size > limit:
            raise RequestTooLarge(f"request body is {size} bytes; the limit is {limit}")
    # The ASGI messages themselves, not `request.stream()`: an async generator is registered
    # with the loop on its first step, a cost on every request.
    chunks: list[bytes] = []
    received = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        received += len(chunk)
        if received > limit:
            raise RequestTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _refuse_lone_surrogates(parsed: dict[str, Any]) -> None:
    """JSON may escape half of a UTF-16 pair (`\\ud800`), which is no Unicode text: nothing
    downstream could encode it. Only bodies with escapes get this check (it re-encodes)."""
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            "request body contains a lone UTF-16 surrogate escape (e.g. \\ud800), which is not"
            " valid Unicode text"
        ) from exc
    except RecursionError as exc:
        raise InvalidRequest("request body is nested too deeply") from exc


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate against a wire model; the first problem becomes a clear 400 naming the field."""
    try:
        return model.model_validate(data)
    except RecursionError as exc:
        raise InvalidRequest("request body is nested too deeply") from exc
    except ValidationError as exc:
        raise invalid(exc) from exc


def invalid(exc: ValidationError) -> InvalidRequest:
    """A wire model's complaint as the client's 400, naming the first field at fault."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    message = f"{where}: {err['msg']}{more}" if where else f"{err['msg']}{more}"
    return InvalidRequest(message, param=where or None)
