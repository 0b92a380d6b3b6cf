"""The upstream transport: one pool per upstream, its connections reused across requests, and
none opened again once the gateway has closed it (nobody would close it)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.gateway.upstreams.http1 import PoolClosed
from serving.gateway.upstreams.transport import Transport
from tests.support.servers import serve


async def test_requests_share_one_keep_alive_connection() -> None:
    peers: list[tuple[str, int]] = []

    async def answer(request: Request) -> Response:
        assert request.client is not None
        peers.append((request.client.host, request.client.port))
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])
    transport = Transport(connect=1, read=5)
    with serve(app) as url:
        for _ in range(3):
            r = await transport.post(url + "/v1/chat/completions", b"{}", {})
            assert r.status == 200
            assert await r.read() == b"{}"
            r.release()
        await transport.aclose()
    assert transport.pool.closed
    assert len(peers) == 3
    assert len(set(peers)) == 1  # one connection, kept alive


async def test_a_closed_transport_opens_no_new_connection() -> None:
    transport = Transport(connect=1, read=5)
    await transport.aclose()
    with pytest.raises(PoolClosed):
        await transport.post("http://127.0.0.1:9/v1/chat/completions", b"{}", {})
