"""Operational routes: liveness, readiness, Prometheus metrics.

`/health` is always open. `/metrics` and the detailed `/ready` (which names the upstreams) are
ops data: when the config gives them a port of their own (`ops.port`) or a key (`ops.key_env` /
`ops.key_file`), they are served only on that port or to a request presenting the key as a
bearer token; elsewhere `/ready` answers just whether the gateway is ready (what a load
balancer's probe needs) and `/metrics` is not there. With neither configured (local use) they
are open, as before. While draining, `/ready` fails at once.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway.errors import AuthenticationFailed, NotFound
from serving.gateway.relay import json_response
from serving.gateway.runtime import Gateway

router = APIRouter()


def ops_access(request: Request, gateway: Gateway) -> bool:
    """Whether this request may see ops data (see the module docstring)."""
    port = gateway.keeper.ops_port
    server = request.scope.get("server")
    if port is not None and server is not None and server[1] == port:
        return True
    key = gateway.ops_key
    if key:
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else ""
        if token and hmac.compare_digest(token.encode(), key.encode()):
            return True
    return port is None and not key and gateway.settings.ops.port is None


@router.get("/health")
async def health() -> Response:
    """Liveness: the process answers. Never touches an upstream."""
    return json_response({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> Response:
    """Readiness: not draining, and at least one upstream is reachable."""
    gateway: Gateway = request.app.state.gateway
    if gateway.keeper.draining:
        return json_response({"ready": False, "draining": True}, 503)
    states = await gateway.ready()
    ok = any(states.values())
    body: dict[str, object] = {"ready": ok}
    if ops_access(request, gateway):
        body["upstreams"] = states
    return json_response(body, 200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    if not ops_access(request, gateway):
        if gateway.ops_key:
            raise AuthenticationFailed("/metrics needs the ops key (Authorization: Bearer ...)")
        raise NotFound("/metrics is served on the ops port")
    return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
