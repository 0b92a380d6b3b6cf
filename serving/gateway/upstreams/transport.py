"""One upstream's HTTP connections: a keep-alive pool of the gateway's own HTTP/1.1 client.

The client is http1.py, not aiohttp or httpx, by the numbers (docs/benchmarks.md, decisions 1
and 7): httpx's pool walked every pooled connection on every request, so its CPU per request
grew with concurrency; aiohttp's stayed flat but cost twice this client's per request,
which at concurrency 1 is latency the caller waits out.

The pool has no connection cap: admission control (admission.py) decides how many requests an
upstream gets and the gateway-wide in-flight limit bounds the total, so a request never waits
here, where a wait would look like a slow upstream. The read timeout is the stream idle bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from serving.gateway.upstreams.http1 import Opener, Pool, Response, TransportError


class Transport:
    """Pooled keep-alive connections to one upstream's endpoints."""

    def __init__(self, *, connect: float, read: float | None, opener: Opener | None = None):
        self.pool = Pool(connect=connect, read=read, opener=opener)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, first_byte: float | None = None
    ) -> Response:
        return await self.pool.request("POST", url, headers, body, first_byte=first_byte)

    async def get_ok(self, url: str, headers: Mapping[str, str], timeout: float) -> bool:
        """A probe: whether a GET of `url` answers 2xx within `timeout`; never raises for the
        network."""
        response: Response | None = None
        try:
            async with asyncio.timeout(timeout):
                response = await self.pool.request("GET", url, headers)
                await response.read()
            return response.status < 300
        except (TransportError, TimeoutError, ValueError):
            return False
        finally:
            if response is not None:
                response.release()

    async def aclose(self) -> None:
        await self.pool.aclose()
