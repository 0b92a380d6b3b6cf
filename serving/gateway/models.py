"""`GET /v1/models` and `/v1/models/{name}`: the route names and aliases, in the shape of
whichever SDK asks. The path is shared by OpenAI, Anthropic and (google-genai's default API
version is v1) Gemini, so the asker is told apart by the headers its SDK always sends."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway.deps import CallerDep, GatewayDep
from serving.gateway.dialects.anthropic import router as anthropic
from serving.gateway.dialects.gemini import translate as gemini
from serving.gateway.dialects.openai import router as openai
from serving.gateway.errors import GatewayError
from serving.gateway.lifecycle import record_of
from serving.gateway.relay import json_response

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request, auth: CallerDep) -> Response:
    gateway, caller = auth
    names = gateway.model_names(caller)  # a key limited to some models lists only those
    if is_google(request):
        return json_response({"models": [gemini.model_info(n) for n in names]})
    if is_anthropic(request):  # the Anthropic SDK's models.list()
        models = [_anthropic_model(n) for n in names]
        return json_response(
            {
                "data": models,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
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
        rid = record_of(request).request_id
        if is_anthropic(request):
            return anthropic.render_error(exc, rid)
        return openai.render_error(exc, rid)
    if is_google(request):
        return json_response(gemini.model_info(model))
    if is_anthropic(request):
        return json_response(_anthropic_model(model))
    return json_response(_openai_model(model))


def is_google(request: Request) -> bool:
    return "x-goog-api-key" in request.headers or "x-goog-api-client" in request.headers


def is_anthropic(request: Request) -> bool:
    return "anthropic-version" in request.headers


def _openai_model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "serving"}


def _anthropic_model(name: str) -> dict[str, object]:
    return {"type": "model", "id": name, "display_name": name, "created_at": "2024-01-01T00:00:00Z"}
