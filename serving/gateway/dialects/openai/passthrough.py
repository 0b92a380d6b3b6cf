"""`POST /v1/completions` and `POST /v1/embeddings`: relayed to the route's OpenAI-compatible
upstreams, walking the same chain as chat. Neither has a canonical form, so a target of another
dialect cannot serve them and the request is refused with a clear 400."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway import canonical as c
from serving.gateway.deps import GatewayDep, read_json
from serving.gateway.dialects.openai.router import GRAMMAR
from serving.gateway.errors import InvalidRequest, UpstreamError
from serving.gateway.relay import Accounting, outcome_headers, relay_raw
from serving.gateway.runtime import Gateway
from serving.gateway.upstreams.base import RawCall, RawResponse, RawStream

router = APIRouter()


@router.post("/v1/completions")
async def completions(request: Request, gateway: GatewayDep) -> Response:
    return await _relay(request, gateway, "/completions")


@router.post("/v1/embeddings")
async def embeddings(request: Request, gateway: GatewayDep) -> Response:
    return await _relay(request, gateway, "/embeddings")


async def _relay(request: Request, gateway: Gateway, path: str) -> Response:
    started = time.perf_counter()
    body, parsed = await read_json(request, gateway.settings.server.max_body_bytes)
    model = parsed.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: a model name is required", param="model")
    stream = bool(parsed.get("stream"))
    acct = Accounting(gateway.metrics, "openai", started, stream)

    def no_canonical_form() -> c.ChatRequest:
        raise InvalidRequest(
            f"/v1{path} is only served by OpenAI-compatible upstreams, and the first target of"
            f" {model!r} is not one",
            param="model",
        )

    call = RawCall(path, body, parsed, stream, native_only=True)
    outcome = await gateway.dispatcher.dispatch("openai", model, call, no_canonical_form)
    if not isinstance(outcome.result, RawResponse | RawStream):
        raise UpstreamError(f"/v1{path} got a chat result from {outcome.target.upstream!r}")
    return relay_raw(outcome, outcome.result, GRAMMAR, acct, outcome_headers(outcome))
