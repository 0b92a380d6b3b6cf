"""Typed dependencies that keep handler signatures short."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from serving.gateway.errors import AuthenticationFailed, InvalidRequest, RequestTooLarge
from serving.gateway.policy.caller import presented_key
from serving.gateway.runtime import Gateway

M = TypeVar("M", bound=BaseModel)


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    if (
        gateway.api_keys
        and presented_key(request.headers, request.scope.get("query_string", b""))
        not in gateway.api_keys
    ):
        raise AuthenticationFailed("invalid or missing API key")
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def read_json(request: Request, limit: int) -> tuple[bytes, dict[str, Any]]:
    """The raw body (kept for pass-through) and its parsed JSON object."""
    body = await request.body()
    if len(body) > limit:
        raise RequestTooLarge(f"request body is {len(body)} bytes; the limit is {limit}")
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body, parsed


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate against a wire model; the first problem becomes a clear 400 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        message = f"{where}: {err['msg']}{more}" if where else f"{err['msg']}{more}"
        raise InvalidRequest(message, param=where or None) from exc
