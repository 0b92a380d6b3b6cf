"""OpenAI routes: parse, dispatch, render."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import canonical as c
from serving.gateway.deps import GatewayDep, read_json, validate
from serving.gateway.dialects.anthropic.router import render_error as anthropic_render_error
from serving.gateway.dialects.gemini import translate as gemini
from serving.gateway.dialects.openai import protocol as p
from serving.gateway.dialects.openai import stream as s
from serving.gateway.dialects.openai import translate as t
from serving.gateway.errors import GatewayError
from serving.gateway.relay import (
    Accounting,
    StreamGrammar,
    json_response,
    outcome_headers,
    relay_events,
    relay_raw,
)
from serving.gateway.upstreams.base import EventStream, RawCall, RawResponse, RawStream

router = APIRouter()

GRAMMAR = StreamGrammar(b"[DONE]", s.error_frame, read_usage=s.read_usage)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def render_error(exc: GatewayError) -> Response:
    """The OpenAI error envelope; the status is kept so the SDK raises the matching class."""
    code: str | int | None = exc.status
    if exc.status == 404 and exc.param == "model":
        code = "model_not_found"
    body = {
        "error": {
            "message": exc.message,
            "type": _TYPES.get(exc.status, "server_error"),
            "param": exc.param,
            "code": code,
        }
    }
    headers = {"retry-after": f"{exc.retry_after:g}"} if exc.retry_after else None
    return json_response(body, exc.status, headers)


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, gateway: GatewayDep) -> Response:
    started = time.perf_counter()
    body, parsed = await read_json(request, gateway.settings.server.max_body_bytes)
    req = validate(p.ChatCompletionRequest, parsed)
    stream = bool(req.stream)
    acct = Accounting(gateway.metrics, "openai", started, stream)
    call = RawCall("/chat/completions", body, parsed, stream)
    outcome = await gateway.dispatcher.dispatch(
        "openai", req.model, call, lambda: t.request_to_canonical(req)
    )
    headers = outcome_headers(outcome)
    result = outcome.result
    if isinstance(result, RawResponse | RawStream):
        return relay_raw(outcome, result, GRAMMAR, acct, headers)
    if isinstance(result, EventStream):
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        encoder = s.ChunkEncoder(req.model, include_usage=include_usage)
        return relay_events(outcome, result, encoder.encode, acct, headers)
    assert isinstance(result, c.ChatResponse)
    acct.finish(outcome, outcome.route.model, 200, result.usage)
    return json_response(t.response_from_canonical(result, req.model), headers=headers)


@router.get("/v1/models")
async def list_models(request: Request, gateway: GatewayDep) -> Response:
    """The route names and aliases, in the shape of whichever SDK asks: `/v1/models` is shared
    by OpenAI, Anthropic and (google-genai's default API version is v1) Gemini."""
    names = gateway.dispatcher.model_names()
    if is_google(request):
        return json_response({"models": [gemini.model_info(n) for n in names]})
    if "anthropic-version" in request.headers:  # the Anthropic SDK's models.list()
        models = [_anthropic_model(n) for n in names]
        return json_response(
            {"data": models, "has_more": False, "first_id": names[0], "last_id": names[-1]}
        )
    return json_response({"object": "list", "data": [_openai_model(n) for n in names]})


@router.get("/v1/models/{name:path}")
async def get_model(name: str, request: Request, gateway: GatewayDep) -> Response:
    """One route name, in the asking SDK's shape. Errors on /v1/models/ paths are rendered in
    Gemini's envelope (app.py), so a 404 here is rendered for the asker instead."""
    model = name.removeprefix("models/")
    try:
        gateway.dispatcher.route(model)
    except GatewayError as exc:
        if is_google(request):
            raise
        anthropic = "anthropic-version" in request.headers
        return anthropic_render_error(exc) if anthropic else render_error(exc)
    if is_google(request):
        return json_response(gemini.model_info(model))
    if "anthropic-version" in request.headers:
        return json_response(_anthropic_model(model))
    return json_response(_openai_model(model))


def is_google(request: Request) -> bool:
    return "x-goog-api-key" in request.headers or "x-goog-api-client" in request.headers


def _openai_model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "serving"}


def _anthropic_model(name: str) -> dict[str, object]:
    return {"type": "model", "id": name, "display_name": name, "created_at": "2024-01-01T00:00:00Z"}
