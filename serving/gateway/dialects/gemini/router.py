"""Gemini `models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and `:countTokens`,
under `/v1beta` (what google-genai calls) and `/v1`: the adapter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import endpoint
from serving.gateway.deps import CallerDep, GatewayDep, validate
from serving.gateway.dialects.gemini import protocol as p
from serving.gateway.dialects.gemini import stream as s
from serving.gateway.dialects.gemini import translate as t
from serving.gateway.endpoint import CountExchange, DialectAdapter, Exchange
from serving.gateway.errors import GatewayError, InvalidRequest, NotFound
from serving.gateway.relay import StreamGrammar, json_response
from serving.gateway.upstreams.base import RawCall

router = APIRouter()

_METHODS = t.METHODS


def render_error(exc: GatewayError, request_id: str) -> Response:
    """The Google RPC error envelope; google-genai raises ClientError (4xx) or ServerError."""
    status, body = s.error_body(exc)
    headers = {"retry-after": f"{exc.retry_after:g}"} if exc.retry_after else None
    return json_response(body, status, headers)


DIALECT = DialectAdapter(
    "gemini",
    StreamGrammar(s.error_frame),
    render_error,
)


@router.get("/v1beta/models")
async def list_models(auth: CallerDep) -> Response:
    """The route names and aliases, as google-genai's `models.list()` reads them (its /v1
    variant is served beside OpenAI's list, in models.py)."""
    gateway, caller = auth
    return json_response({"models": [t.model_info(n) for n in gateway.model_names(caller)]})


@router.get("/v1beta/models/{name:path}")
async def get_model(name: str, gateway: GatewayDep) -> Response:
    gateway.dispatcher.route(name.removeprefix("models/"))  # an unknown name is the client's 404
    return json_response(t.model_info(name.removeprefix("models/")))


def _generate(model: str, stream: bool) -> endpoint.Parse[Exchange]:
    method = "streamGenerateContent" if stream else "generateContent"

    def parse(body: bytes, parsed: dict[str, Any]) -> Exchange:
        req = validate(p.GenerateContentRequest, parsed)
        canonical = endpoint.translated(lambda: t.request_to_canonical(req, model, stream=stream))
        query = "alt=sse" if stream else ""
        return Exchange(
            model,
            RawCall(f"/models/{model}:{method}", body, parsed, stream, query),
            canonical,
            render=lambda resp: t.response_from_canonical(resp, model),
            encoder=lambda: s.ChunkEncoder(model).encode,
        )

    return parse


def _count(model: str) -> endpoint.Parse[CountExchange]:
    def parse(body: bytes, parsed: dict[str, Any]) -> CountExchange:
        req = validate(p.CountTokensRequest, parsed)
        return CountExchange(
            model,
            RawCall(f"/models/{model}:countTokens", body, parsed, False),
            t.count_request_to_canonical(req, model),
            render=lambda n: {"totalTokens": n},
        )

    return parse


@router.post("/v1beta/models/{target:path}")
@router.post("/v1/models/{target:path}")
async def model_method(target: str, request: Request) -> Response:
    model, _, method = target.rpartition(":")
    if not model or method not in _METHODS:
        raise NotFound(f"unknown method {method!r}; served: {', '.join(_METHODS)}")
    model = model.removeprefix("models/")
    if method == "countTokens":
        return await endpoint.count(request, _count(model))
    stream = method == "streamGenerateContent"
    # The SDKs' exact query first: Starlette's QueryParams parses and builds a multidict.
    if (
        stream
        and request.scope["query_string"] != b"alt=sse"
        and request.query_params.get("alt") != "sse"
    ):
        raise InvalidRequest("streamGenerateContent is served as server-sent events only: ?alt=sse")
    return await endpoint.generate(request, DIALECT, _generate(model, stream))
