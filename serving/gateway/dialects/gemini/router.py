"""Gemini routes: `models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and
`:countTokens`, under `/v1beta` (what google-genai calls) and `/v1`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import canonical as c
from serving.gateway.counting import count_tokens
from serving.gateway.deps import GatewayDep, read_json, validate
from serving.gateway.dialects.gemini import protocol as p
from serving.gateway.dialects.gemini import stream as s
from serving.gateway.dialects.gemini import translate as t
from serving.gateway.errors import GatewayError, InvalidRequest, NotFound
from serving.gateway.relay import (
    Accounting,
    StreamGrammar,
    json_response,
    outcome_headers,
    relay_events,
    relay_raw,
)
from serving.gateway.runtime import Gateway
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream

router = APIRouter()

GRAMMAR = StreamGrammar(
    s.DONE_MARKER, s.error_frame, read_usage=s.read_usage, usage_key='"usageMetadata"'
)

_METHODS = t.METHODS


def render_error(exc: GatewayError) -> Response:
    """The Google RPC error envelope; google-genai raises ClientError (4xx) or ServerError."""
    status, body = s.error_body(exc)
    headers = {"retry-after": f"{exc.retry_after:g}"} if exc.retry_after else None
    return json_response(body, status, headers)


@router.get("/v1beta/models")
async def list_models(gateway: GatewayDep) -> Response:
    """The route names and aliases, as google-genai's `models.list()` reads them (its /v1
    variant is served beside OpenAI's list, in dialects/openai/router.py)."""
    return json_response({"models": [t.model_info(n) for n in gateway.dispatcher.model_names()]})


@router.get("/v1beta/models/{name:path}")
async def get_model(name: str, gateway: GatewayDep) -> Response:
    gateway.dispatcher.route(name)  # an unknown name is the client's 404
    return json_response(t.model_info(name))


@router.post("/v1beta/models/{target:path}")
@router.post("/v1/models/{target:path}")
async def model_method(target: str, request: Request, gateway: GatewayDep) -> Response:
    model, _, method = target.rpartition(":")
    if not model or method not in _METHODS:
        raise NotFound(f"unknown method {method!r}; served: {', '.join(_METHODS)}")
    body, parsed = await read_json(request, gateway.settings.server.max_body_bytes)
    if method == "countTokens":
        req = validate(p.CountTokensRequest, parsed)
        call = RawCall(f"/models/{model}:countTokens", body, parsed, False)
        total = await count_tokens(gateway, t.count_request_to_canonical(req, model), call)
        return json_response({"totalTokens": total})
    stream = method == "streamGenerateContent"
    if stream and request.query_params.get("alt") != "sse":
        raise InvalidRequest("streamGenerateContent is served as server-sent events only: ?alt=sse")
    return await _generate(gateway, model, body, parsed, stream)


async def _generate(
    gateway: Gateway, model: str, body: bytes, parsed: dict[str, object], stream: bool
) -> Response:
    started = time.perf_counter()
    req = validate(p.GenerateContentRequest, parsed)
    acct = Accounting(gateway.metrics, "gemini", started, stream)
    method = "streamGenerateContent" if stream else "generateContent"
    call = RawCall(f"/models/{model}:{method}", body, parsed, stream, "alt=sse" if stream else "")
    outcome = await gateway.dispatcher.dispatch(
        "gemini", model, call, lambda: t.request_to_canonical(req, model, stream=stream)
    )
    headers = outcome_headers(outcome)
    result = outcome.result
    if isinstance(result, RawResponse | RawStream):
        return relay_raw(outcome, result, GRAMMAR, acct, headers)
    if isinstance(result, EventStream):
        encoder = s.ChunkEncoder(model)
        return relay_events(outcome, result, encoder.encode, acct, headers)
    assert isinstance(result, c.ChatResponse)
    acct.finish(outcome, outcome.route.model, 200, result.usage)
    return json_response(t.response_from_canonical(result, model), headers=headers)
