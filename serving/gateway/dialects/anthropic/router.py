"""Anthropic Messages and token counting: the adapter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import endpoint
from serving.gateway.deps import validate
from serving.gateway.dialects.anthropic import protocol as p
from serving.gateway.dialects.anthropic import stream as s
from serving.gateway.dialects.anthropic import translate as t
from serving.gateway.endpoint import CountExchange, DialectAdapter, Exchange
from serving.gateway.errors import GatewayError, Saturated
from serving.gateway.relay import StreamGrammar, json_response
from serving.gateway.upstreams.base import RawCall

router = APIRouter()


def render_error(exc: GatewayError, request_id: str) -> Response:
    """The Anthropic error envelope, with its request id and retry guidance headers."""
    body = p.ErrorResponse(
        error=p.ErrorDetail(type=s.error_type(exc), message=exc.message), request_id=request_id
    )
    headers: dict[str, str] = {}
    if not exc.retryable:
        headers["x-should-retry"] = "false"  # the SDK would otherwise retry some of these
    if exc.retry_after:
        headers["retry-after"] = f"{exc.retry_after:g}"
    # The gateway's own overload is Anthropic's 529, which its SDKs back off from.
    status = 529 if isinstance(exc, Saturated) else exc.status
    return json_response(body.model_dump(), status, headers)


DIALECT = DialectAdapter(
    "anthropic",
    StreamGrammar(b"message_stop", s.error_event, read_usage=s.read_usage),
    render_error,
)


def parse_message(body: bytes, parsed: dict[str, Any]) -> Exchange:
    req = validate(p.MessagesRequest, parsed)
    canonical = endpoint.translated(lambda: t.request_to_canonical(req))
    return Exchange(
        req.model,
        RawCall("/messages", body, parsed, bool(req.stream)),
        canonical,
        render=lambda resp: t.response_from_canonical(resp, req.model),
        encoder=lambda: s.EventEncoder(req.model).encode,
    )


def parse_count(body: bytes, parsed: dict[str, Any]) -> CountExchange:
    req = validate(p.CountTokensRequest, parsed)
    return CountExchange(
        req.model,
        RawCall("/messages/count_tokens", body, parsed, False),
        t.count_request_to_canonical(req),
        render=lambda n: {"input_tokens": n},
    )


@router.post("/v1/messages")
async def create_message(request: Request) -> Response:
    return await endpoint.generate(request, DIALECT, parse_message)


@router.post("/v1/messages/count_tokens")
async def count_message_tokens(request: Request) -> Response:
    """`{"input_tokens": N}`, counted by the route's upstream with its own tokenizer."""
    return await endpoint.count(request, parse_count)
