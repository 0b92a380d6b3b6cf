"""The upstream transport: one pooled session per upstream, reused across requests, and none
opened again once the gateway has closed it (nobody would close it)."""

from __future__ import annotations

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
            async with transport.session.post(url + "/v1/chat/completions", data=b"{}") as r:
                assert r.status == 200
                await r.read()
        connector = transport.session.connector
        assert connector is not None
        await transport.aclose()
    assert connector.closed
    assert len(peers) == 3
    assert len(set(peers)) == 1  # one connection, kept alive


async def test_a_closed_transport_opens_no_new_session() -> None:
    transport = Transport(connect=1, read=5)
    session = transport.session
    await transport.aclose()
    assert session.closed
    with pytest.raises(aiohttp.ClientConnectionError):
        _ = transport.session
