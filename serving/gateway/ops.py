"""Operational routes: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.gateway.relay import json_response
from serving.gateway.runtime import Gateway

router = APIRouter()


@router.get("/health")
async def health() -> Response:
    """Liveness: the process answers. Never touches an upstream."""
    return json_response({"status": "ok"})


@router.get("/ready")
async def ready(request: Request) -> Response:
    """Readiness: at least one upstream is reachable."""
    gateway: Gateway = request.app.state.gateway
    states = await gateway.ready()
    ok = any(states.values())
    return json_response({"ready": ok, "upstreams": states}, 200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
