"""The load driver: `concurrency` workers on one aiohttp session (cheaper per request than httpx,
so the client steals less of the shared cores), bounded by a request count and a deadline,
whichever comes first. Per request it records the total time and the time to the first body
byte (for a stream, the first event); failures are counted, never fatal."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    wall: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies)


async def _drive(
    url: str,
    body: bytes,
    headers: dict[str, str],
    requests: int,
    concurrency: int,
    seconds: float,
) -> Run:
    run = Run()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    deadline = time.perf_counter() + seconds
    remaining = iter(range(requests))
    hdrs = {"content-type": "application/json", **headers}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for _ in remaining:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=hdrs) as resp:
                        first = await resp.content.readany()
                        t1 = time.perf_counter()
                        rest = await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"HTTP {resp.status}: {(first + rest)[:300]!r}")
                except Exception as exc:  # noqa: BLE001 (counted, the run goes on)
                    run.errors += 1
                    run.first_error = run.first_error or f"{type(exc).__name__}: {exc}"[:400]
                    continue
                t2 = time.perf_counter()
                run.ttfb.append(t1 - t0)
                run.latencies.append(t2 - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.wall = time.perf_counter() - started
    return run


def drive(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    requests: int,
    concurrency: int,
    seconds: float,
) -> Run:
    return asyncio.run(_drive(url, body, headers, requests, concurrency, seconds))


def summary(run: Run) -> dict[str, Any]:
    from common import pct

    return {
        "requests": run.done,
        "errors": run.errors,
        "first_error": run.first_error,
        "throughput_rps": round(run.done / run.wall, 1) if run.wall else None,
        "p50_ms": pct(run.latencies, 50),
        "p90_ms": pct(run.latencies, 90),
        "p99_ms": pct(run.latencies, 99),
        "ttfb_p50_ms": pct(run.ttfb, 50),
        "ttfb_p99_ms": pct(run.ttfb, 99),
    }
