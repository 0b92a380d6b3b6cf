"""The gateway's long-lived objects, built once per app and held on `app.state.gateway`."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx

from serving.gateway.dispatch import Dispatcher
from serving.gateway.metrics import Metrics
from serving.gateway.settings import Settings, Upstream
from serving.gateway.upstreams.base import UpstreamClient
from serving.gateway.upstreams.registry import build_client


def _http_client(config: Upstream) -> httpx.AsyncClient:
    """One pooled client per upstream; per-read timeout is the stream idle bound."""
    t = config.timeouts
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=t.connect, read=t.stream_idle, write=t.connect, pool=t.connect
        ),
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
        trust_env=False,
    )


class Gateway:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.upstreams: dict[str, UpstreamClient] = {
            u.name: build_client(u, _http_client(u)) for u in settings.upstreams
        }
        self.dispatcher = Dispatcher(settings, self.upstreams, self.metrics)
        self.api_keys = _client_keys(settings)

    async def ready(self) -> dict[str, bool]:
        names = list(self.upstreams)
        states = await asyncio.gather(*(self.upstreams[n].ready() for n in names))
        return dict(zip(names, states, strict=True))

    async def aclose(self) -> None:
        await asyncio.gather(*(u.aclose() for u in self.upstreams.values()))


def _client_keys(settings: Settings) -> frozenset[str]:
    """Keys clients must present; empty means the gateway is open (local use)."""
    env = settings.server.api_keys_env
    if not env:
        return frozenset()
    return frozenset(k.strip() for k in os.environ.get(env, "").split(",") if k.strip())


def request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]
