"""The admin router: circuit control for failover drills (`serving drill`).

Mounted under /admin only when `admin.enabled` is true, and every route needs the admin key
(`authorization: Bearer KEY` or `x-admin-key: KEY`) read from `admin.key_env` / `admin.key_file`;
with no key set, every admin request is refused. Client API keys never open these routes.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from serving.gateway.errors import AuthenticationFailed, NotFound, PermissionDenied
from serving.gateway.policy.circuit import Breaker
from serving.gateway.relay import json_response
from serving.gateway.runtime import Gateway

log = logging.getLogger("serving.gateway.admin")


def admin_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    expected = gateway.admin_key
    if not expected:
        raise PermissionDenied("the admin key is not set on this gateway (admin.key_env)")
    h = request.headers
    auth = h.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else h.get("x-admin-key", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationFailed("invalid or missing admin key")
    return gateway


router = APIRouter(prefix="/admin", dependencies=[Depends(admin_gateway)])


def _breaker(gateway: Gateway, target: str) -> Breaker:
    breaker = gateway.dispatcher.circuits.get(target)
    if breaker is None:
        known = ", ".join(sorted(gateway.dispatcher.circuits.states()))
        raise NotFound(f"no target {target!r}; targets are upstream/model: {known}")
    return breaker


@router.get("/circuits")
async def circuits(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return json_response({"circuits": gateway.dispatcher.circuits.states()})


@router.post("/circuits/{target:path}/open")
async def open_circuit(target: str, request: Request) -> Response:
    breaker = _breaker(request.app.state.gateway, target)
    breaker.force_open()
    log.warning("admin forced the circuit of %s open", target)
    return json_response({"target": target, "state": "open", "forced": True})


@router.post("/circuits/{target:path}/close")
async def close_circuit(target: str, request: Request) -> Response:
    breaker = _breaker(request.app.state.gateway, target)
    breaker.close()
    log.warning("admin closed the circuit of %s", target)
    return json_response({"target": target, "state": "closed", "forced": False})
