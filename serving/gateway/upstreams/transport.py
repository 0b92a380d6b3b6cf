"""One upstream's HTTP connections: an aiohttp session, opened on first use in the running loop.

aiohttp, not httpx, by the numbers (docs/benchmarks.md, `scripts/bench/iso_http_clients.py`):
httpx's pool walks every pooled connection on every request, so its CPU per request grew with
concurrency (3.3 ms at c=1, 4.8 ms at c=64 on the loaded bench machine) while aiohttp's stayed
low and flat (0.68 / 0.33 ms); httpx was 28-47% of the gateway's profile samples.

The pool has no connection cap: admission control (admission.py) decides how many requests an
upstream gets and the gateway-wide in-flight limit bounds the total, so a request never waits
here, where a wait would look like a slow upstream. Per-read timeout is the stream idle bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

# Tests replace the network under an upstream with their own connector (aiohttp's seam, e.g. one
# whose connect raises); it is built lazily too, in the loop that serves.
ConnectorFactory = Callable[[], aiohttp.BaseConnector]


class Transport:
    """Pooled keep-alive connections to one upstream's endpoints."""

    def __init__(
        self,
        *,
        connect: float,
        read: float | None,
        limit: int = 0,
        connector: ConnectorFactory | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)
        self._limit = limit
        self._connector = connector
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session, created in the running loop on first use (aiohttp binds it there)."""
        if self._closed:  # a late caller must not open a pool that nobody will close
            raise aiohttp.ClientConnectionError("the gateway is shutting down")
        if self._session is None:
            connector = (
                self._connector()
                if self._connector is not None
                else aiohttp.TCPConnector(limit=self._limit, limit_per_host=0)
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                trust_env=False,  # no proxy or netrc lookups from the environment
                cookie_jar=aiohttp.DummyCookieJar(),  # upstreams' cookies are not kept
                skip_auto_headers=("User-Agent",),
                raise_for_status=False,
            )
        return self._session

    async def get_ok(
        self, url: str, headers: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> bool:
        """A probe: whether a GET of `url` answers 2xx within `timeout`; never raises for the
        network."""
        try:
            async with self.session.get(url, headers=headers, timeout=timeout) as response:
                return response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
            # The sockets close in the loop's next turns; let them, so none outlives the loop.
            await asyncio.sleep(0)
