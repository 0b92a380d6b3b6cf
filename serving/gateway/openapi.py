"""The OpenAPI document of the routes as they really are: each POST route's request body (the
dialect's wire model) and its error responses (the dialect's envelope).

Bodies are read by hand, not by FastAPI body parameters (the raw bytes are needed for
pass-through, and the error envelope is the dialect's), so FastAPI cannot see them; this module
adds them to the generated document from the same pydantic models that validate requests.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from serving.gateway.dialects.anthropic import protocol as anthropic
from serving.gateway.dialects.gemini import protocol as gemini
from serving.gateway.dialects.openai import protocol as openai
from serving.gateway.dialects.responses import protocol as responses

_ERROR_STATUSES = {
    "400": "The request is invalid (bad JSON, a wrong type, an unknown field value)",
    "401": "Missing or invalid API key",
    "404": "Unknown model or path",
    "405": "Method not allowed (the `Allow` header lists the allowed ones)",
    "413": "Request body too large",
    "429": "Rate limited upstream (`retry-after` says when to try again)",
    "500": "Internal error in the gateway",
    "502": "Every upstream answered badly",
    "503": "No target could serve (circuits open, unreachable, or a private request)",
    "504": "Upstream timeout",
}
_RELAY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["model"],
    "properties": {"model": {"type": "string", "minLength": 1}},
    "additionalProperties": True,
}

_NO_BODY: dict[str, Any] = {"type": "object", "maxProperties": 0}  # a POST that reads no body

# path -> (request body models, error envelope model)
_ROUTES: dict[str, tuple[tuple[type[BaseModel], ...] | dict[str, Any], type[BaseModel]]] = {
    "/v1/chat/completions": ((openai.ChatCompletionRequest,), openai.ErrorResponse),
    "/v1/completions": (_RELAY_BODY, openai.ErrorResponse),
    "/v1/embeddings": (_RELAY_BODY, openai.ErrorResponse),
    "/v1/responses": ((responses.ResponsesRequest,), openai.ErrorResponse),
    "/v1/responses/{response_id}/cancel": (_NO_BODY, openai.ErrorResponse),
    "/v1/messages": ((anthropic.MessagesRequest,), anthropic.ErrorResponse),
    "/v1/messages/count_tokens": ((anthropic.CountTokensRequest,), anthropic.ErrorResponse),
    "/v1beta/models/{target}": (
        (gemini.GenerateContentRequest, gemini.CountTokensRequest),
        gemini.ErrorResponse,
    ),
    "/v1/models/{target}": (
        (gemini.GenerateContentRequest, gemini.CountTokensRequest),
        gemini.ErrorResponse,
    ),
}


_PREFIXES = {
    openai.__name__: "OpenAI.",
    anthropic.__name__: "Anthropic.",
    gemini.__name__: "Gemini.",
    responses.__name__: "Responses.",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` to the model's schema, its definitions hoisted into the components, each name
    prefixed with its dialect (both Anthropic and Gemini have a `CountTokensRequest`)."""
    prefix = _PREFIXES[model.__module__]
    template = "#/components/schemas/" + prefix + "{model}"
    schema = model.model_json_schema(ref_template=template, by_alias=True)
    components.update((prefix + k, v) for k, v in schema.pop("$defs", {}).items())
    components[prefix + model.__name__] = schema
    return {"$ref": template.format(model=model.__name__)}


def _body(models: tuple[type[BaseModel], ...] | dict[str, Any], components: dict[str, Any]) -> Any:
    if isinstance(models, dict):
        return models
    refs = [_schema(m, components) for m in models]
    return refs[0] if len(refs) == 1 else {"anyOf": refs}


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    for path, (models, error) in _ROUTES.items():
        post = doc.get("paths", {}).get(path, {}).get("post")
        if post is None:
            continue
        post["requestBody"] = {
            "required": models is not _NO_BODY,
            "content": {"application/json": {"schema": _body(models, components)}},
        }
        ref = _schema(error, components)
        responses = post.setdefault("responses", {})
        responses.pop("422", None)  # FastAPI's own validation shape is never sent
        for status, what in _ERROR_STATUSES.items():
            responses[status] = {
                "description": what,
                "content": {"application/json": {"schema": ref}},
            }
    return doc


def install(app: FastAPI) -> None:
    """Serve the real document at /openapi.json (built once, on first request)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not cache:
            cache.update(build(app))
        return cache

    app.openapi = openapi  # type: ignore[method-assign]
