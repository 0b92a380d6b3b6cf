"""HTTP clients in isolation: the CPU one asyncio process (uvloop, as under uvicorn) spends per
upstream request with httpx (the gateway's first client, its pool sized as the gateway sized it,
and with every connection kept alive), aiohttp (its second), the gateway's own HTTP/1.1 client
(serving/gateway/upstreams/http1.py, its third), and a bare pooled keep-alive client (asyncio
protocol + httptools' parser, one write per request, no error handling: the floor), against
the scripted upstream, at several concurrencies, JSON and a 6-chunk stream. CPU is this
process's own (time.process_time), so the upstream's cost is not in it. Writes
reports/bench/iso-http-clients.json.

    python scripts/bench/iso_http_clients.py [--requests 2000] [--concurrency 1,16,64,256]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httptools
import httpx
import targets as t
import uvloop
from common import REPORTS, free_port, load_average, stop, versions, write_json

from serving.gateway.upstreams.http1 import Pool

Call = Callable[[bytes], Awaitable[bytes]]
CLIENTS = ("httpx", "httpx-keepalive", "aiohttp", "http1", "raw")


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; a response is done when the parser says so."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.done: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(b"".join(self.body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))


class RawPool:
    """Idle connections in a deque; a request takes one (or opens one) and gives it back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: collections.deque[_Conn] = collections.deque()

    async def post(self, path: str, body: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        if self.idle:
            conn = self.idle.pop()
        else:
            _, conn = await loop.create_connection(_Conn, "127.0.0.1", self.port)
        conn.body, conn.done = [], loop.create_future()
        head = (
            f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode()
        assert conn.transport is not None
        conn.transport.write(head + body)
        result = await conn.done
        self.idle.append(conn)
        return result


async def run_client(
    name: str, port: int, body: bytes, requests: int, concurrency: int
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    close: Callable[[], Awaitable[None]]
    if name.startswith("httpx"):
        # the gateway's pool settings (serving/gateway/runtime.py); `httpx-keepalive` keeps
        # every connection, to tell pool scans from connection churn past 64 in flight
        keep = 512 if name == "httpx-keepalive" else 64
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=keep)
        hx = httpx.AsyncClient(limits=limits, timeout=30, trust_env=False)

        async def call(b: bytes) -> bytes:
            async with hx.stream("POST", url, content=b) as resp:
                return b"".join([chunk async for chunk in resp.aiter_raw()])

        close = hx.aclose
    elif name == "aiohttp":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

        async def call(b: bytes) -> bytes:
            async with session.post(url, data=b) as resp:
                return await resp.read()

        close = session.close
    elif name == "http1":
        gateway_pool = Pool(connect=5, read=30)
        headers = {"content-type": "application/json"}

        async def call(b: bytes) -> bytes:
            resp = await gateway_pool.request("POST", url, headers, b)
            try:
                return await resp.read()
            finally:
                resp.release()

        close = gateway_pool.aclose
    else:
        pool = RawPool(port)

        async def call(b: bytes) -> bytes:
            return await pool.post("/v1/chat/completions", b)

        async def close() -> None:
            for conn in pool.idle:
                assert conn.transport is not None
                conn.transport.close()

    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            await call(body)

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up: pool filled
    remaining = iter(range(requests))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await close()
    return {"cpu_ms_per_request": round(cpu * 1000 / requests, 4), "rps": round(requests / wall)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,16,64,256")
    parser.add_argument("--out", type=Path, default=REPORTS / "iso-http-clients.json")
    args = parser.parse_args()
    port = free_port()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    up = t.start_upstream(port, args.out.parent / "iso-upstream.log")
    report: dict[str, Any] = {
        "versions": versions("httpx", "httpcore", "aiohttp", "httptools", "uvloop"),
        "load_average_start": load_average(),
        "requests": args.requests,
        "cells": [],
    }
    try:
        for mode in ("json", "stream6"):
            body = t.request("openai", mode).body
            for c in (int(x) for x in args.concurrency.split(",")):
                for name in CLIENTS:
                    row = uvloop.run(run_client(name, port, body, args.requests, c))
                    row |= {"client": name, "mode": mode, "concurrency": c}
                    report["cells"].append(row)
                    print(row, flush=True)
    finally:
        stop([up])
    report["load_average_end"] = load_average()
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
