"""OpenAI Chat Completions (and the legacy completions and embeddings relays): the adapter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import endpoint
from serving.gateway.deps import validate
from serving.gateway.dialects.openai import protocol as p
from serving.gateway.dialects.openai import stream as s
from serving.gateway.dialects.openai import translate as t
from serving.gateway.endpoint import DialectAdapter, Exchange
from serving.gateway.errors import GatewayError, InvalidRequest
from serving.gateway.relay import StreamGrammar, json_response
from serving.gateway.upstreams.base import RawCall

router = APIRouter()

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def render_error(exc: GatewayError, request_id: str) -> Response:
    """The OpenAI error envelope: `code` is a string or null, as the SDKs and apps read it."""
    body = p.ErrorResponse(
        error=p.ErrorDetail(
            message=exc.message,
            type=_TYPES.get(exc.status, "server_error"),
            param=exc.param,
            code=exc.code,
        )
    )
    headers = {"retry-after": f"{exc.retry_after:g}"} if exc.retry_after else None
    return json_response(body.model_dump(), exc.status, headers)


DIALECT = DialectAdapter("openai", StreamGrammar(s.error_frame), render_error)


def parse_chat(body: bytes, parsed: dict[str, Any]) -> Exchange:
    req = validate(p.ChatCompletionRequest, parsed)
    stream = bool(req.stream)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    canonical = endpoint.translated(lambda: t.request_to_canonical(req))
    return Exchange(
        req.model,
        RawCall("/chat/completions", body, parsed, stream),
        canonical,
        render=lambda resp: t.response_from_canonical(resp, req.model),
        encoder=lambda: s.ChunkEncoder(req.model, include_usage=include_usage).encode,
    )


def _relay_only(path: str) -> endpoint.Parse[Exchange]:
    """Endpoints with no canonical form: relayed to the route's OpenAI-compatible targets."""

    def parse(body: bytes, parsed: dict[str, Any]) -> Exchange:
        model = parsed.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model: a model name is required", param="model")
        none = InvalidRequest(
            f"/v1{path} is only served by OpenAI-compatible upstreams, and no target of"
            f" {model!r} is one",
            param="model",
        )
        return Exchange(
            model,
            RawCall(path, body, parsed, parsed.get("stream") is True, native_only=True),
            none,
            render=_unreachable,
            encoder=_unreachable,
        )

    return parse


def _unreachable(*_: object) -> Any:
    raise AssertionError("a relay-only endpoint never has a canonical answer")


_completions = _relay_only("/completions")
_embeddings = _relay_only("/embeddings")


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await endpoint.generate(request, DIALECT, parse_chat)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await endpoint.generate(request, DIALECT, _completions)


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    return await endpoint.generate(request, DIALECT, _embeddings)
