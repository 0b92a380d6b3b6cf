"""Anthropic Messages routes: parse, dispatch, render."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import canonical as c
from serving.gateway.counting import count_tokens
from serving.gateway.deps import GatewayDep, read_json, validate
from serving.gateway.dialects.anthropic import protocol as p
from serving.gateway.dialects.anthropic import stream as s
from serving.gateway.dialects.anthropic import translate as t
from serving.gateway.errors import GatewayError
from serving.gateway.relay import (
    Accounting,
    StreamGrammar,
    json_response,
    outcome_headers,
    relay_events,
    relay_raw,
)
from serving.gateway.runtime import request_id
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream

router = APIRouter()

GRAMMAR = StreamGrammar(b"message_stop", s.error_event, read_usage=s.read_usage)


def render_error(exc: GatewayError) -> Response:
    """The Anthropic error envelope, with `request-id` and retry guidance headers."""
    rid = request_id()
    body = {
        "type": "error",
        "error": {"type": s.error_type(exc), "message": exc.message},
        "request_id": rid,
    }
    headers = {"request-id": rid}
    if not exc.retryable:
        headers["x-should-retry"] = "false"  # the SDK would otherwise retry some of these
    if exc.retry_after:
        headers["retry-after"] = f"{exc.retry_after:g}"
    return json_response(body, exc.status, headers)


@router.post("/v1/messages")
async def create_message(request: Request, gateway: GatewayDep) -> Response:
    started = time.perf_counter()
    body, parsed = await read_json(request, gateway.settings.server.max_body_bytes)
    req = validate(p.MessagesRequest, parsed)
    stream = bool(req.stream)
    acct = Accounting(gateway.metrics, "anthropic", started, stream)
    call = RawCall("/messages", body, parsed, stream)
    outcome = await gateway.dispatcher.dispatch(
        "anthropic", req.model, call, lambda: t.request_to_canonical(req)
    )
    headers = {**outcome_headers(outcome), "request-id": request_id()}
    result = outcome.result
    if isinstance(result, RawResponse | RawStream):
        return relay_raw(outcome, result, GRAMMAR, acct, headers)
    if isinstance(result, EventStream):
        encoder = s.EventEncoder(req.model)
        return relay_events(outcome, result, encoder.encode, acct, headers)
    assert isinstance(result, c.ChatResponse)
    acct.finish(outcome, outcome.route.model, 200, result.usage)
    return json_response(t.response_from_canonical(result, req.model), headers=headers)


@router.post("/v1/messages/count_tokens")
async def count_message_tokens(request: Request, gateway: GatewayDep) -> Response:
    """`{"input_tokens": N}`, counted by the route's upstream with its own tokenizer."""
    body, parsed = await read_json(request, gateway.settings.server.max_body_bytes)
    req = validate(p.CountTokensRequest, parsed)
    call = RawCall("/messages/count_tokens", body, parsed, False)
    total = await count_tokens(gateway, t.count_request_to_canonical(req), call)
    return json_response({"input_tokens": total}, headers={"request-id": request_id()})
